"""Redis Cluster clients whose batches are sent once (CONTRACT section 6).

redis-py's cluster pipeline re-sends commands that met a connection error, one by one, and
marks every command of a node failed when one reply is lost (even those already answered),
so an INCR whose reply was lost runs twice. Here a batch is routed by redis-py
(``determine_slot``, the nodes manager, the command flags) and written once per node; what
happens next depends on what the server said:

- MOVED / ASK / TRYAGAIN / CLUSTERDOWN: the server refused the command, so it is sent again
  (to the node named, after ``ASKING`` for ASK, after refreshing the slot table).
- The node could not be reached before anything was written: the commands are routed again.
- The connection was lost after the write: a read-only command may be sent once more, any
  other gets the error saying it may or may not have run (the guarded connection's
  :class:`~redis_conn.exceptions.ConnectionLostAfterWrite`).

:class:`NamedRedisCluster` is the client ``get_redis`` returns for a cluster connection: its
``pipeline()`` (without ``transaction``) sends through this module too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import redis.cluster
from redis.commands.cluster import READ_COMMANDS
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from redis_conn.read_only import command_name, may_resend

Command = tuple[tuple[Any, ...], dict[str, Any]]

_NETWORK_ERRORS = (RedisConnectionError, RedisTimeoutError)
_UNSENT = object()  # no answer yet
_SINGLE_NODE_FLAGS = ("default-node", "random")


class _Resend:
    """Why a command goes out again, and where."""

    __slots__ = ("asking", "network", "node")

    def __init__(self, node: Any = None, *, asking: bool = False, network: bool = False):
        self.node = node
        self.asking = asking
        self.network = network


def route(cluster: Any, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
    """The node a command of a batch goes to, as redis-py routes it (``target_nodes=`` first)."""
    name = command_name(args)
    targets = options.get("target_nodes")
    if isinstance(targets, redis.cluster.ClusterNode):
        return targets
    if isinstance(targets, list | tuple) and len(targets) == 1:
        return targets[0]
    flag = targets if isinstance(targets, str) else cluster.command_flags.get(name)
    if flag in _SINGLE_NODE_FLAGS:
        return cluster.get_default_node()
    if flag is not None:
        raise RedisClusterException(
            f"{name} runs on several cluster nodes ({flag}), so it cannot be part of a "
            "batch; call it on the client."
        )
    slot = cluster.determine_slot(*args)
    read = args[0] in READ_COMMANDS
    return cluster.nodes_manager.get_node_from_slot(
        slot,
        cluster.read_from_replicas and read,
        cluster.load_balancing_strategy if read else None,
    )


def send_cluster_batch(cluster: Any, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` (``(args, options)`` pairs) once each; return a reply or an exception
    per command, in order."""
    results: list[Any] = [_UNSENT] * len(commands)
    resend: dict[int, _Resend] = {i: _Resend() for i in range(len(commands))}
    network_rounds = 0
    for _ in range(cluster.RedisClusterRequestTTL):
        if not resend:
            break
        if any(r.network for r in resend.values()):
            network_rounds += 1
            if network_rounds > max(cluster.retry.get_retries(), 1):
                break
            cluster.nodes_manager.initialize()
        resend = _one_round(cluster, commands, resend, results)
    return [
        RedisClusterException("The batch was redirected too many times.") if r is _UNSENT else r
        for r in results
    ]


def _one_round(
    cluster: Any, commands: Sequence[Command], todo: dict[int, _Resend], results: list[Any]
) -> dict[int, _Resend]:
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for index, why in todo.items():
        try:
            node = why.node or route(cluster, *commands[index])
        except RedisError as exc:
            results[index] = exc
            continue
        by_node.setdefault(node.name, (node, []))[1].append(index)
    again: dict[int, _Resend] = {}
    lent: list[tuple[Any, Any, list[int]]] = []
    try:
        for node, indices in by_node.values():
            client = cluster.get_redis_connection(node)
            try:
                connection = client.connection_pool.get_connection()
            except _NETWORK_ERRORS as exc:  # nothing was written: route these again
                for index in indices:
                    results[index] = exc
                    again[index] = _Resend(network=True)
                continue
            lent.append((client, connection, indices))
            wire: list[tuple[Any, ...]] = []
            for index in indices:
                if todo[index].asking:
                    wire.append(("ASKING",))
                wire.append(commands[index][0])
            try:
                connection.send_packed_command(connection.pack_commands(wire))
            except _NETWORK_ERRORS as exc:
                _lost(commands, indices, exc, results, again)
                lent[-1] = (client, connection, [])
        for client, connection, indices in lent:
            _read_replies(client, connection, commands, indices, todo, results, again)
    finally:
        for client, connection, _ in lent:
            client.connection_pool.release(connection)
    _follow_redirects(cluster, results, again)
    return again


def _read_replies(
    client: Any,
    connection: Any,
    commands: Sequence[Command],
    indices: list[int],
    todo: dict[int, _Resend],
    results: list[Any],
    again: dict[int, _Resend],
) -> None:
    for position, index in enumerate(indices):
        args, options = commands[index]
        try:
            if todo[index].asking:
                client.parse_response(connection, "ASKING")
            options = {k: v for k, v in options.items() if k != "target_nodes"}
            results[index] = client.parse_response(connection, args[0], **options)
        except ResponseError as exc:
            results[index] = exc
            if isinstance(exc, AskError | TryAgainError | ClusterDownError):
                again[index] = _Resend()  # refused: it did not run
        except _NETWORK_ERRORS as exc:
            connection.disconnect()
            _lost(commands, indices[position:], exc, results, again)
            return


def _lost(
    commands: Sequence[Command],
    indices: list[int],
    exc: Exception,
    results: list[Any],
    again: dict[int, _Resend],
) -> None:
    """A node's connection broke after its batch was (perhaps partly) written."""
    for index in indices:
        results[index] = exc
        if may_resend(commands[index][0]):
            again[index] = _Resend(network=True)


def _follow_redirects(cluster: Any, results: list[Any], again: dict[int, _Resend]) -> None:
    refresh = wait = False
    for index, why in again.items():
        error = results[index]
        if isinstance(error, MovedError):
            cluster.nodes_manager.move_slot(error)
        elif isinstance(error, AskError):
            node = cluster.get_node(host=error.host, port=error.port)
            if node is None:
                refresh = True
            else:
                again[index] = _Resend(node, asking=True)
        elif isinstance(error, TryAgainError):
            wait = True  # the slot is being migrated
        elif isinstance(error, ClusterDownError):
            refresh = True
            why.network = True  # counts against RETRY like a network failure
    if refresh:
        cluster.nodes_manager.initialize()
    if wait:
        time.sleep(0.05)


class ExactlyOnceClusterPipeline(redis.cluster.ClusterPipeline):
    """redis-py's cluster pipeline API; ``execute()`` sends through :func:`send_cluster_batch`.

    Instances come from :meth:`NamedRedisCluster.pipeline`, which re-labels the pipeline
    redis-py built (so every constructor argument stays redis-py's own).
    """

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self.__dict__.setdefault("_redis_conn_queue", []).append((args, kwargs))
        return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        queued: list[Command] = self.__dict__.pop("_redis_conn_queue", [])
        try:
            results = send_cluster_batch(self, queued)
        finally:
            self.reset()
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results

    def reset(self) -> None:  # type: ignore[override]  # redis-py types RESET's reply here
        self.__dict__.pop("_redis_conn_queue", None)
        super().reset()  # type: ignore[no-untyped-call]


class NamedRedisCluster(redis.cluster.RedisCluster):
    """redis-py's ``RedisCluster`` whose non-transactional pipelines send each command once."""

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)  # type: ignore[no-untyped-call]
        if not transaction:
            pipe.__class__ = ExactlyOnceClusterPipeline
        return pipe
