"""The asyncio twin of :mod:`redis_conn.pipeline`: ``async with`` and ``await p.execute()``.

Queueing, nesting, futures and errors are the sync module's; only sending differs. Backends
run concurrently as tasks on the running event loop (one backend: no task at all), on the
``redis.asyncio`` clients of the root's registry.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import ExecAbortError, ResponseError

from redis_conn.futures import Future, Work
from redis_conn.pipeline import PipelineBase, Root, check_parent
from redis_conn.registry import current_registry
from redis_conn.settling import (
    fail_unanswered,
    fail_unsettled,
    interrupted,
    raise_failures,
    settle_replies,
    settle_transaction,
    settle_unsent_empty,
)


class AsyncPipeline(PipelineBase):
    """A pipeline for asyncio code; see :func:`async_pipeline`."""

    async def execute(self) -> None:
        """Root: send what was queued since the last execute, one batch per backend.

        As :meth:`redis_conn.pipeline.Pipeline.execute`, with the batches as tasks on the
        running loop. Nested: keep this pipeline's commands for the root.
        """
        if self._pending is not None:
            self._commit()
            return
        if not self._root.is_async:
            raise TypeError(
                "This pipeline's root is synchronous: call its execute() without await "
                "(from async code, in a thread: await asyncio.to_thread(root.execute))."
            )
        work = self._root.take()
        if work:
            raise_failures(work, await _send_all(self._root, work))

    async def __aenter__(self) -> AsyncPipeline:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._close_block(exc_type is not None):
            await self.execute()


def async_pipeline(
    pipe: PipelineBase | None = None,
    *,
    name: str = "default",
    autocommit: bool = False,
    transaction: bool = False,
) -> AsyncPipeline:
    """An asyncio pipeline on connection ``name``: a new root, or nested in ``pipe``'s root.

    The arguments mean what they mean for :func:`redis_conn.pipeline.pipeline`. Nesting
    does no I/O, so ``pipe`` may also be a synchronous pipeline (a request pipeline, say).
    """
    if pipe is None:
        root = Root(current_registry(), transaction=transaction, is_async=True)
        return AsyncPipeline(root, name, parent=None, pending=None, autocommit=autocommit)
    check_parent(pipe, transaction=transaction, function="async_pipeline")
    return AsyncPipeline(pipe._root, name, parent=pipe, pending=[], autocommit=autocommit)


def sends_on_loop(pipe: PipelineBase) -> bool:
    """Whether a root's queue has commands for a MULTIPLEX connection (whose shared connection
    lives on the event loop, so a sync root is better sent with :func:`execute_on_loop`)."""
    root = pipe._root
    registry = root.registry
    return any(registry.spec(name).multiplex for name, b in root.batches.items() if b.futures)


async def execute_on_loop(pipe: PipelineBase) -> None:
    """Send a root's queue from the running event loop on the asyncio clients, even if the
    root is synchronous (a request pipeline flushed by an async middleware)."""
    work = pipe._root.take()
    if work:
        raise_failures(work, await _send_all(pipe._root, work))


async def _checkout(pool: Any) -> Any:
    return await pool.get_connection()


async def _close(connection: Any) -> None:
    # Replies may still be owed on this socket: close it rather than pool it. Closing is
    # best effort; the original error is the one worth raising.
    with contextlib.suppress(Exception):
        await connection.disconnect(nowait=True)


async def _send_plain(client: Any, name: str, futures: list[Future[Any]]) -> BaseException | None:
    pool = client.connection_pool
    connection = await _checkout(pool)
    reading = -1  # the reply being read; -1 while sending
    try:
        await connection.send_packed_command(connection.pack_commands([f._args for f in futures]))
        parse = client.parse_response
        first_error: BaseException | None = None
        for reading, future in enumerate(futures):  # noqa: B007 (read in the handler)
            try:
                future._set(await parse(connection, future._args[0], **future._options))
            except ResponseError as exc:
                future._fail_command(exc)
                first_error = first_error or exc
        return first_error
    except BaseException as exc:
        await _close(connection)
        if reading >= 0:
            fail_unanswered(name, futures[reading:], exc)
        raise
    finally:
        await pool.release(connection)


async def _send_transaction(
    client: Any, name: str, futures: list[Future[Any]]
) -> BaseException | None:
    sent = settle_unsent_empty(futures)
    if not sent:
        return None
    pool = client.connection_pool
    connection = await _checkout(pool)
    reading = False
    try:
        commands = [("MULTI",), *(f._args for f in sent), ("EXEC",)]
        await connection.send_packed_command(connection.pack_commands(commands))
        reading = True
        parse = client.parse_response
        await parse(connection, "_")  # MULTI's OK; an error here fails the whole batch
        queue_errors: dict[int, ResponseError] = {}
        for index in range(len(sent)):
            try:
                await parse(connection, "_")  # QUEUED
            except ResponseError as exc:
                queue_errors[index] = exc
        exec_reply: Any
        try:
            exec_reply = await parse(connection, "_")
        except ExecAbortError as exc:
            exec_reply = exc
    except BaseException as exc:
        await _close(connection)
        if reading:  # whether EXEC ran is unknown
            fail_unsettled(sent, interrupted(name, exc))
        raise
    finally:
        await pool.release(connection)
    return settle_transaction(client, sent, queue_errors, exec_reply)


async def _send_cluster(
    client: Any, futures: list[Future[Any]], transaction: bool
) -> BaseException | None:
    batch = client.pipeline(transaction=transaction)
    for future in futures:
        batch.execute_command(*future._args, **future._options)
    return settle_replies(futures, await batch.execute(raise_on_error=False))


async def _send_batch(root: Root, name: str, futures: list[Future[Any]]) -> BaseException | None:
    """Send one backend's batch and settle all its futures; return its error, if any."""
    try:
        client = root.registry.get_async(name)
        if isinstance(client, AsyncRedisCluster):
            return await _send_cluster(client, futures, root.transaction)
        cache = getattr(client, "client_cache", None)
        batch_client = getattr(client, "batch_client", None)
        if batch_client is not None:  # MULTIPLEX: one contiguous write on the shared connection
            commands = [(f._args, f._options) for f in futures]
            client = batch_client(commands, transaction=root.transaction)
        try:
            if root.transaction:
                return await _send_transaction(client, name, futures)
            return await _send_plain(client, name, futures)
        finally:
            if cache is not None:  # CLIENT_CACHE: the batch's writes drop local copies
                cache.wrote_all(f._args for f in futures)
    except Exception as exc:
        fail_unsettled(futures, exc)
        return exc
    except BaseException as exc:  # cancelled: settle, then let the cancellation through
        fail_unsettled(futures, interrupted(name, exc))
        raise


async def _send_all(root: Root, work: Work) -> list[BaseException | None]:
    if len(work) == 1:
        return [await _send_batch(root, *work[0])]
    # gather finishes only when every batch has: a cancelled execute still settles them all.
    results = await asyncio.gather(
        *(_send_batch(root, name, futures) for name, futures in work), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
    return [result for result in results]  # each is a batch's error or None
