"""Metrics: a thin layer whose default does nothing.

The rest of the package tells this module three things: a client was built (once per client,
when its connection is first used), a pool waited or timed out (only through
``pool.observer``, a :class:`PoolObserver` (the pools' protocol) that stays ``None`` unless
metrics are on), and a request's pipeline finished. This module keeps the clients it was
given (weakly, for the gauges read at collection time): it is fed, it never looks for them.
With the ``otel`` extra installed and a ``MeterProvider`` configured (the
OpenTelemetry SDK, or :func:`use_meter_provider`), :mod:`redis_conn.otel` records them as
OpenTelemetry metrics; otherwise nothing is measured and the hot paths run exactly as
without this module: the hooks are installed per client, when it is built, or not at all.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from redis_conn.pools import PoolObserver

if TYPE_CHECKING:
    from redis_conn.config import ConnectionSpec

__all__ = [
    "NoRecorder",
    "PoolObserver",
    "Recorder",
    "clients",
    "current",
    "instrument_client",
    "request_finished",
    "use_meter_provider",
]


class Recorder(Protocol):
    """The metrics of the process: what this module tells the recorder in use.

    :class:`redis_conn.otel.OTelRecorder` implements it without importing this module (it is
    handed :func:`clients` when it is made), so the optional extra is a leaf below us."""

    @property
    def enabled(self) -> bool:
        """Whether anything is recorded."""
        ...

    def instrument(self, spec: ConnectionSpec, client: Any) -> None:
        """Give a newly built client (sync or asyncio) its metrics hooks."""
        ...

    def request_finished(self, commands: int, round_trips: int, seconds: float) -> None:
        """A request's pipeline sent ``commands`` in ``round_trips``, taking ``seconds``."""
        ...


class NoRecorder:
    """The recorder while metrics are off: it records nothing."""

    enabled = False

    def instrument(self, spec: ConnectionSpec, client: Any) -> None:
        pass

    def request_finished(self, commands: int, round_trips: int, seconds: float) -> None:
        pass


_NOOP: Recorder = NoRecorder()
_current: Recorder = _NOOP
_explicit_provider: Any = None
# Every client built in this process, by owning connection name, held weakly.
_clients: list[tuple[str, weakref.ref[Any]]] = []


def current() -> Recorder:
    """The recorder in use now (the no-op one until a client was built with metrics on)."""
    return _current


def instrument_client(spec: ConnectionSpec, client: Any) -> None:
    """Called by the registry for every client it builds: a cold path, once per client."""
    if spec.kind != "fake":  # an in-process server: no pools, nothing a dashboard should show
        _clients[:] = [entry for entry in _clients if entry[1]() is not None]
        _clients.append((spec.root, weakref.ref(client)))
    _resolve().instrument(spec, client)


def clients() -> Iterator[tuple[str, Any]]:
    """The clients built in this process and still alive, by owning connection name
    (sync ones and one per event loop), whatever recorder was current when they were built."""
    for name, ref in list(_clients):
        client = ref()
        if client is not None:
            yield name, client


def _forget_clients_in_child() -> None:
    # A forked child's registries start afresh; the parent's clients are not its own.
    _clients.clear()


os.register_at_fork(after_in_child=_forget_clients_in_child)


def request_finished(commands: int, round_trips: int, seconds: float) -> None:
    """Called once per request whose pipeline sent something."""
    _current.request_finished(commands, round_trips, seconds)


def use_meter_provider(provider: Any) -> None:
    """Record into ``provider`` (an OpenTelemetry ``MeterProvider``) instead of the global one.

    ``None`` goes back to the global provider (``opentelemetry.metrics.set_meter_provider``).
    Clients built before keep the hooks they have: call ``connections.close_all()`` so the
    next use builds them anew.
    """
    global _explicit_provider
    _explicit_provider = provider
    _resolve()


def _resolve() -> Recorder:
    """Pick the recorder for the provider configured now (OpenTelemetry imported here only)."""
    global _current
    try:
        from redis_conn import otel
    except ImportError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        _current = _NOOP  # the otel extra is not installed
        return _current
    provider = _explicit_provider or otel.configured_provider()
    if provider is None:
        _current = _NOOP
    elif not (isinstance(_current, otel.OTelRecorder) and _current.provider is provider):
        _current = otel.OTelRecorder(provider, clients)
    return _current
