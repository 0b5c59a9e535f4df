"""A MULTIPLEX cluster's pipelines: split per node, each node's part on its shared connection.

:class:`SharedClusterBatches` is mixed in front of redis-py's asyncio cluster pipeline (as
``async_clients.MultiplexedClusterPipeline``, the ``pipeline()`` of a MULTIPLEX cluster without
``transaction``), so :mod:`redis_conn.async_pipeline` and the request pipeline's async flush use
it too. The commands are routed as single commands are (redis-py's slot computation and slot
map), grouped by node, and each group is queued on the node's
:class:`~redis_conn.multiplex.Multiplexer` as one contiguous write: the groups of every node
leave in the same loop iteration, so the nodes work concurrently.

Each command is written once (CONTRACT section 6). What comes back decides what follows, per
command: MOVED, ASK (then ``ASKING`` and the command, together) and TRYAGAIN are refusals, so
the command goes out again where the server said; a node that could not be reached wrote
nothing, so its commands are routed again once the slot map is refreshed (RETRY rounds at most);
a connection lost after the write fails that node's unanswered commands with
:class:`~redis_conn.exceptions.ConnectionLostAfterWrite` and nothing is sent again.

A command pinned to one node (``target_nodes=`` naming one node, as redis-py's own per-slot
split of DEL, EXISTS, UNLINK, TOUCH, MSET_NONATOMIC pins each part) goes to that node's shared
connection; after a MOVED it is routed by its slot. A pipeline with a command that must not
share a connection (blocking, WATCH, several target nodes, a command redis-py sends to several
nodes) is redis-py's own, on the nodes' pools.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode
from redis.exceptions import (
    AskError,
    ClusterError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn import messages
from redis_conn.exceptions import OutcomeUnknown, ReplyNotUnderstood
from redis_conn.guarded import name_error
from redis_conn.internals import NEVER_DECODE, follow_moved, node_lost
from redis_conn.multiplex import Batch
from redis_conn.read_only import batch_label, command_name

__all__ = ["SharedClusterBatches", "pinned", "send_shared_batch"]

Command = tuple[tuple[Any, ...], dict[str, Any]]
_UNSENT = object()
TRY_AGAIN_DELAY = 0.05  # seconds; redis-py's own pause on TRYAGAIN


class _Target:
    """Where a command goes next: routed by its slot (``node`` None), or to the node an ASK
    named (after ``ASKING``)."""

    __slots__ = ("asking", "node")

    def __init__(self, node: Any = None, *, asking: bool = False) -> None:
        self.node = node
        self.asking = asking


class SharedClusterBatches:
    """Mixed in front of redis-py's asyncio ``ClusterPipeline``: ``execute()`` sends on the
    nodes' shared connections when every queued command may share one."""

    cluster_client: Any

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self.__dict__.setdefault("_redis_conn_queue", []).append((args, kwargs))
        return super().execute_command(*args, **kwargs)  # type: ignore[misc]

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        queued: list[Command] = self.__dict__.pop("_redis_conn_queue", [])
        routing = self.cluster_client.routing
        if not queued or not all(routing(args, _unpinned(options))[0] for args, options in queued):
            results: list[Any] = await super().execute(  # type: ignore[misc]
                raise_on_error, allow_redirections
            )
            return results
        try:
            results = await send_shared_batch(self.cluster_client, queued)
        finally:
            await self.reset()
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    async def reset(self) -> None:
        self.__dict__.pop("_redis_conn_queue", None)
        self.__dict__.pop("_redis_conn_names", None)
        await super().reset()  # type: ignore[misc]


async def send_shared_batch(cluster: Any, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` (``(args, options)`` pairs) on the nodes' shared connections, each
    once; return a reply or an exception per command, in order. Only an interrupt
    (``BaseException``) is raised."""
    results: list[Any] = [_UNSENT] * len(commands)
    todo = {index: _Target(pinned(options)) for index, (_, options) in enumerate(commands)}
    commands = [(args, _unpinned(options)) for args, options in commands]
    network_rounds = 0
    for _ in range(cluster.RedisClusterRequestTTL):
        if not todo:
            break
        todo, unreachable = await _one_round(cluster, commands, todo, results)
        if unreachable:
            network_rounds += 1
            if network_rounds > max(cluster.retry.get_retries(), 1):
                break  # each command keeps the outcome of its last attempt
    return [
        ClusterError(
            f"{messages.prefix(cluster.connection_name)}the batch was redirected too many "
            "times; this command did not run."
        )
        if result is _UNSENT
        else result
        for result in results
    ]


def pinned(options: dict[str, Any]) -> Any:
    """The one node ``target_nodes=`` names, if it names exactly one (redis-py's own split of
    DEL, EXISTS, MSET_NONATOMIC, ... per slot pins each part to its slot's node)."""
    targets = options.get("target_nodes")
    if isinstance(targets, list | tuple) and len(targets) == 1:
        targets = targets[0]
    return targets if isinstance(targets, ClusterNode) else None


def _unpinned(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` without a single-node ``target_nodes=`` (routed here instead; other
    targets stay, and keep the batch on redis-py's own path)."""
    if pinned(options) is None:
        return options
    return {k: v for k, v in options.items() if k != "target_nodes"}


async def _one_round(
    cluster: Any, commands: Sequence[Command], todo: dict[int, _Target], results: list[Any]
) -> tuple[dict[int, _Target], bool]:
    groups: dict[str, tuple[Any, list[int]]] = {}
    for index, target in todo.items():
        args, options = commands[index]
        node = target.node
        if node is None:
            try:
                _, node = await cluster.route(args, cluster.routing(args, options)[1])
            except (RedisError, RedisClusterException) as exc:  # not sent: its own error
                name_error(exc, cluster.connection_name)
                results[index] = exc
                continue
        groups.setdefault(node.name, (node, []))[1].append(index)
    sent: list[tuple[Any, list[int], Batch]] = []
    for node, indices in groups.values():  # queued in one go: every node's write leaves at once
        mux = cluster.node_multiplexer(node)
        data: list[Any] = []
        raw: list[bool] = []
        for index in indices:
            if todo[index].asking:
                data.extend(mux.pack(("ASKING",)))
                raw.append(False)
            args, options = commands[index]
            data.extend(mux.pack(args))
            raw.append(NEVER_DECODE in options)
        label = batch_label("pipeline", len(indices))
        sent.append((node, indices, mux.send_batch(data, len(raw), raw, label)))
    again: dict[int, _Target] = {}
    lost: dict[str, Any] = {}  # nodes whose shared connection was lost
    unreachable = wait = False
    try:
        for node, indices, batch in sent:
            replies = iter(batch.slots)
            for index in indices:
                asking = next(replies) if todo[index].asking else None
                reply = next(replies)
                outcome = await _read(cluster, node, commands[index], asking, reply)
                results[index] = outcome
                if isinstance(outcome, MovedError):
                    await follow_moved(cluster, outcome)
                    again[index] = _Target()
                elif isinstance(outcome, AskError):
                    remapped = cluster.nodes_manager.remap_host_port(outcome.host, outcome.port)
                    target = cluster.get_node(*remapped)
                    if target is not None:
                        again[index] = _Target(target, asking=True)
                elif isinstance(outcome, TryAgainError):
                    again[index] = _Target()
                    wait = True
                elif isinstance(outcome, ReplyNotUnderstood):  # read, not understood
                    pass
                elif isinstance(outcome, OutcomeUnknown):  # written, then lost: not again
                    lost[node.name] = node
                elif isinstance(outcome, RedisConnectionError | RedisTimeoutError):
                    # A batch's commands are never re-sent once written (their loss is
                    # OutcomeUnknown above): this node could not be reached, nothing was sent.
                    lost[node.name] = node
                    again[index] = _Target()
                    unreachable = True
    except BaseException:  # interrupted: the replies still owed are read and dropped
        for _, _, batch in sent:
            batch.abandon()
        raise
    for node in lost.values():
        await node_lost(cluster, node)
    if wait:
        await asyncio.sleep(TRY_AGAIN_DELAY)
    return again, unreachable


async def _read(cluster: Any, node: Any, command: Command, asking: Any, reply: Any) -> Any:
    """One command's reply (parsed by the node, as redis-py parses it) or its exception."""
    args, options = command
    try:
        if asking is not None:
            with contextlib.suppress(ResponseError):  # the command's own reply says it all
                await asking.read_response()
        return await node.parse_response(reply, args[0], **options)
    except (RedisError, RedisClusterException) as exc:
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            name_error(exc, cluster.connection_name)
        return exc
    except Exception as exc:  # the client failed once the command was written
        return ReplyNotUnderstood(cluster.connection_name, command_name(args), exc)
