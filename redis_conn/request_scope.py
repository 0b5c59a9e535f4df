"""The pipeline of one web request, for any framework (Django's middleware and Flask use it).

A :class:`RequestPipeline` is made per request and costs next to nothing: its root pipeline is
created only when the request first queues a command. :func:`activate` makes it the current
request's for the running thread or asyncio task (a ContextVar, so concurrent requests never
see each other's commands); :func:`current_pipeline` returns its root from anywhere in the
request. At the end of the request the framework calls :meth:`RequestPipeline.flush` (or
:meth:`~RequestPipeline.aflush` on an event loop) after the view returned, or
:meth:`~RequestPipeline.discard` if it raised.

What the pipeline sent is counted in :class:`RequestStats` (commands, round trips, time): the
``Server-Timing`` header, the request metrics and the debug toolbar panel read it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any, Literal

from redis_conn import metrics
from redis_conn.async_pipeline import execute_on_loop, sends_on_loop
from redis_conn.exceptions import PipelineError
from redis_conn.pipeline import Future, Pipeline, Root
from redis_conn.registry import ConnectionRegistry, current_registry

__all__ = [
    "ON_ERROR_CHOICES",
    "PipelineProxy",
    "RequestPipeline",
    "RequestStats",
    "activate",
    "add_scope_resolver",
    "current_pipeline",
    "current_scope",
    "deactivate",
    "server_timing_header",
]

logger = logging.getLogger("redis_conn.request")

OnError = Literal["raise", "log"]
#: What a failed flush may do: propagate the :class:`PipelineError`, or log it and go on.
ON_ERROR_CHOICES: tuple[OnError, ...] = ("raise", "log")

#: One execute of the request's pipeline: (connection name, futures sent) per backend.
Round = list[tuple[str, list[Future[Any]]]]


class RequestStats:
    """What one request's pipeline sent: each execute's batches, and the time they took.

    A batch is one round trip (one per backend per execute, the backends concurrently);
    ``commands - round_trips`` are the round trips the pipeline saved.
    """

    __slots__ = ("rounds", "seconds")

    def __init__(self) -> None:
        self.rounds: list[Round] = []
        self.seconds = 0.0

    @property
    def commands(self) -> int:
        return sum(len(futures) for sent in self.rounds for _, futures in sent)

    @property
    def round_trips(self) -> int:
        return sum(len(sent) for sent in self.rounds)

    def server_timing(self) -> str:
        """``redis;dur=1.8;desc="7 commands, 2 round trips"`` (milliseconds)."""
        return (
            f"redis;dur={self.seconds * 1000:.1f};"
            f'desc="{_plural(self.commands, "command")}, '
            f'{_plural(self.round_trips, "round trip")}"'
        )

    def __repr__(self) -> str:
        return f"<RequestStats {self.commands} commands, {self.round_trips} round trips>"


def server_timing_header(existing: str | None, stats: RequestStats) -> str:
    """A response's ``Server-Timing`` header with the request's Redis time added to it."""
    value = stats.server_timing()
    return f"{existing}, {value}" if existing else value


class _MeasuredPipeline(Pipeline):
    """The request's root pipeline: counts and times what each execute() sends.

    ``p[name]`` views copy the instance, so they share the stats.
    """

    _stats: RequestStats

    def execute(self) -> None:
        if self._pending is not None:
            super().execute()
            return
        sent = [(b.connection, list(b.futures)) for b in self._root.batches.values() if b.futures]
        if not sent:
            super().execute()
            return
        started = time.perf_counter()
        try:
            super().execute()
        finally:
            self._stats.seconds += time.perf_counter() - started
            self._stats.rounds.append(sent)

    async def execute_on_loop(self) -> None:
        """:meth:`execute` from the event loop, on its asyncio clients (for MULTIPLEX
        connections, whose shared connections live there), counted and timed the same way."""
        sent = [(b.connection, list(b.futures)) for b in self._root.batches.values() if b.futures]
        started = time.perf_counter()
        try:
            await execute_on_loop(self)
        finally:
            if sent:
                self._stats.seconds += time.perf_counter() - started
                self._stats.rounds.append(sent)

    def __repr__(self) -> str:
        # To its users it is the request's Pipeline; the measuring is a detail.
        return f"<Pipeline root {self._name!r} queued={len(self)}>"


class RequestPipeline:
    """One request's root pipeline, created on first use, flushed or discarded at the end.

    ``registry``: the registry to resolve connection names in; ``None`` means the one current
    when the root is created (:func:`redis_conn.registry.current_registry`). ``description``
    (e.g. ``"GET /orders/"``) only goes into log messages.
    """

    __slots__ = ("_finished", "_registry", "_root", "_stats", "description", "name")

    def __init__(
        self,
        registry: ConnectionRegistry | None = None,
        name: str = "default",
        *,
        description: str | None = None,
    ) -> None:
        self._registry = registry
        self.name = name
        self.description = description
        self._root: Pipeline | None = None
        self._stats: RequestStats | None = None
        self._finished: str | None = None  # "flushed" or "discarded" once the request is over

    @property
    def started(self) -> bool:
        """Whether the root pipeline exists (something used it during this request)."""
        return self._root is not None

    @property
    def stats(self) -> RequestStats:
        """What the request's pipeline sent so far (empty if it was never used)."""
        return self._stats if self._stats is not None else RequestStats()

    @property
    def finished(self) -> bool:
        """Whether the request is over: flushed or discarded; the pipeline is no longer usable."""
        return self._finished is not None

    @property
    def pipeline(self) -> Pipeline:
        """The root pipeline, created on first access (on connection ``name``)."""
        if self._finished is not None:
            raise RuntimeError(
                f"The request pipeline{self._for()} was already {self._finished} when the "
                "response left; a command queued now would never be sent. After the response "
                "(e.g. in a streaming response's generator) use redis_conn.get_redis(name) or "
                "a pipeline() of your own."
            )
        root = self._root
        if root is None:
            self._stats = RequestStats()
            root = self._root = _new_root(self._registry, self.name, self._stats)
        return root

    def flush(self, *, on_error: OnError = "raise") -> None:
        """Send what is still queued, once, and end the request's pipeline.

        Nothing is sent (and no connection is taken) when nothing was queued. A failure is
        logged at ERROR on the ``redis_conn.request`` logger, naming the failed commands per
        connection (command and key, never values), then re-raised unless ``on_error="log"``.
        """
        _check_on_error(on_error)
        if self._finished is not None:
            return
        self._finished = "flushed"
        root = self._root
        if root is None:
            return
        try:
            if len(root):
                root.execute()
        except Exception as exc:
            self._log_failure(exc, on_error)
            if on_error == "raise":
                raise
        finally:
            self._report()

    async def aflush(self, *, on_error: OnError = "raise") -> None:
        """:meth:`flush` for an event loop: the round trips run in a worker thread, or on the
        loop itself when a MULTIPLEX connection has commands in the batch.

        When nothing was queued it returns at once, without a thread hop.
        """
        _check_on_error(on_error)
        root = self._root
        if self._finished is not None or root is None or not len(root):
            if self._finished is None:
                self._finished = "flushed"
                self._report()
            return
        if not sends_on_loop(root):
            await asyncio.to_thread(self.flush, on_error=on_error)
            return
        self._finished = "flushed"
        try:
            await _execute_on_loop(root)
        except Exception as exc:
            self._log_failure(exc, on_error)
            if on_error == "raise":
                raise
        finally:
            self._report()

    def discard(self) -> None:
        """Drop everything still queued (the view raised) and end the request's pipeline."""
        if self._finished is not None:
            return
        self._finished = "discarded"
        if self._root is not None:
            self._root.discard()
            self._report()  # what an execute() in the view sent was sent all the same

    def _report(self) -> None:
        stats = self._stats
        if stats is not None and stats.rounds:
            metrics.request_finished(stats.commands, stats.round_trips, stats.seconds)

    def _for(self) -> str:
        return "" if self.description is None else f" of {self.description}"

    def _log_failure(self, exc: Exception, on_error: OnError) -> None:
        failed = _count_by_connection(getattr(exc, "failed_commands", ()))
        if failed:
            summary = "; ".join(
                f"{connection}: {sum(commands.values())} "
                f"({', '.join(_counted(c, n) for c, n in commands.items())})"
                for connection, commands in failed.items()
            )
        elif isinstance(exc, PipelineError):
            summary = ", ".join(repr(name) for name in exc.errors)
        else:
            summary = f"{type(exc).__name__}"
        outcome = "the error propagates" if on_error == "raise" else "the response is kept"
        logger.error(
            "Redis request pipeline%s failed to flush (%s); failed commands per connection: %s.",
            self._for(),
            outcome,
            summary,
            exc_info=exc,
            extra={"redis_failed_commands": {c: dict(n) for c, n in failed.items()}},
        )

    def __repr__(self) -> str:
        state = self._finished or ("started" if self._root is not None else "unused")
        return f"<RequestPipeline{self._for()} {state}>"


class PipelineProxy:
    """Stands for a request's root pipeline (``request.redis``), creating it on first use.

    Attribute access, ``proxy[name]``, ``len()`` and ``isinstance()`` go to the root, so the
    proxy can be passed as ``pipeline(proxy, name=...)``. After the request's flush every use
    raises :class:`RuntimeError` instead of queueing commands that would never be sent.
    """

    __slots__ = ("_scope",)
    _scope: RequestPipeline

    def __init__(self, scope: RequestPipeline) -> None:
        object.__setattr__(self, "_scope", scope)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            # Protocol probes (hasattr(x, "__html__"), copy, pickle...) are not pipeline use:
            # answer them without creating the root or raising RuntimeError after the flush.
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")
        return getattr(self._scope.pipeline, attr)

    def __getitem__(self, name: str) -> Pipeline:
        return self._scope.pipeline[name]

    def __len__(self) -> int:
        scope = self._scope
        return len(scope.pipeline) if scope.started else 0

    def __bool__(self) -> bool:
        return True

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # isinstance(proxy, Pipeline) is True, without creating the root: error reporters
        # and debuggers call isinstance() on everything, also after the request ended.
        return Pipeline

    async def aexecute(self) -> None:
        """``execute()`` for async views: the round trips run in a worker thread (on the loop
        when a MULTIPLEX connection has commands queued)."""
        root = self._scope.pipeline
        if sends_on_loop(root):
            await _execute_on_loop(root)
        else:
            await asyncio.to_thread(root.execute)

    def __repr__(self) -> str:
        scope = self._scope
        shown = repr(scope._root) if scope.started and not scope.finished else repr(scope)
        return f"<PipelineProxy {shown}>"


# -- the current request ---------------------------------------------------------------------

_current: ContextVar[RequestPipeline | None] = ContextVar(
    "redis_conn_request_pipeline", default=None
)
ScopeResolver = Callable[[], "RequestPipeline | None"]
_resolvers: list[ScopeResolver] = []


def activate(scope: RequestPipeline) -> Token[RequestPipeline | None]:
    """Make ``scope`` the current request's pipeline in this thread or task."""
    return _current.set(scope)


def deactivate(token: Token[RequestPipeline | None]) -> None:
    """Undo :func:`activate` (in the same thread or task)."""
    _current.reset(token)


def add_scope_resolver(resolver: ScopeResolver) -> None:
    """Let a framework say where the current request's pipeline lives (Flask: ``g``).

    Resolvers are asked, in order, only when no pipeline was activated in this context.
    """
    if resolver not in _resolvers:
        _resolvers.append(resolver)


def current_scope() -> RequestPipeline | None:
    """The current request's :class:`RequestPipeline`, or ``None`` outside a request."""
    scope = _current.get()
    if scope is None:
        for resolver in _resolvers:
            scope = resolver()
            if scope is not None:
                break
    return scope


def current_pipeline() -> Pipeline | None:
    """The current request's root pipeline (created on first use); ``None`` outside a request.

    Library code can queue into it: ``pipeline(current_pipeline(), name="users")`` joins the
    request's batch inside a request and runs on its own outside one.
    """
    scope = current_scope()
    if scope is None or scope.finished:
        return None
    return scope.pipeline


# -- helpers -----------------------------------------------------------------------------------


def _new_root(registry: ConnectionRegistry | None, name: str, stats: RequestStats) -> Pipeline:
    if registry is None:
        registry = current_registry()  # the registry current now (Flask: the app's)
    root = Root(registry, transaction=False, is_async=False)
    measured = _MeasuredPipeline(root, name, parent=None, pending=None, autocommit=False)
    measured._stats = stats
    return measured


async def _execute_on_loop(root: Pipeline) -> None:
    if isinstance(root, _MeasuredPipeline):
        await root.execute_on_loop()
    else:
        await execute_on_loop(root)


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be 'raise' or 'log', not {on_error!r}.")


def _count_by_connection(failed_commands: Any) -> dict[str, Counter[str]]:
    """``["'users': INCR hits", ...]`` -> ``{"'users'": Counter({"INCR hits": 1})}``."""
    counted: dict[str, Counter[str]] = {}
    for text in failed_commands:
        connection, _, command = str(text).partition(": ")
        counted.setdefault(connection, Counter())[command or "?"] += 1
    return counted


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _counted(command: str, times: int) -> str:
    return command if times == 1 else f"{command} x{times}"
