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
- Anything else that fails once a node's batch was written (a bug, a redis-py release that
  changed what we call) fails only that node's unanswered commands, as
  :class:`~redis_conn.exceptions.ReplyNotUnderstood` (CONTRACT section 13); a slot-table
  refresh that fails (no node reachable) ends the batch with each command's own outcome, so
  a write whose reply was lost still says it may or may not have run.

:class:`NamedRedisCluster` is the client ``get_redis`` returns for a cluster connection: its
``pipeline()`` (without ``transaction``) sends through this module too. Its single commands
and transactions keep the same rule for failures after a write: the nodes' connections count
what they write for the call in progress (:func:`cluster_connection_class`), and a failure that
is not one of redis-py's errors after a write becomes ``ReplyNotUnderstood``.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import redis.cluster
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

from redis_conn import messages
from redis_conn.exceptions import OutcomeUnknown, ReplyNotUnderstood
from redis_conn.internals import READ_COMMANDS
from redis_conn.masking import mask_text
from redis_conn.read_only import batch_label, command_name, may_resend

Command = tuple[tuple[Any, ...], dict[str, Any]]

_NETWORK_ERRORS = (RedisConnectionError, RedisTimeoutError)
_UNSENT = object()  # no answer yet
_SINGLE_NODE_FLAGS = ("default-node", "random")
# redis-py's own errors: the server's answers and its decisions, which pass unchanged. (Its
# cluster errors derive from Exception, not RedisError, in some releases.)
_REDIS_ERRORS = (RedisError, RedisClusterException)
logger = logging.getLogger("redis_conn")


# -- what a call wrote (CONTRACT section 13) ---------------------------------------------------


class _Tally:
    """How many times the nodes' connections started a write for the call in progress."""

    __slots__ = ("parent", "sent", "writes")

    def __init__(self, parent: _Tally | None = None) -> None:
        self.writes = 0  # writes started: counted before connecting, so it can only over-count
        self.sent = 0  # writes about to leave on a connected socket (a refused connect: none)
        self.parent = parent


# A mutable tally, not a counter: redis-py's asyncio cluster runs a command for several nodes
# in tasks of their own, which copy the context, and so share the tally object.
_TALLY: ContextVar[_Tally | None] = ContextVar("redis_conn_cluster_tally", default=None)


def _count_write() -> None:
    tally = _TALLY.get()
    while tally is not None:
        tally.writes += 1
        tally = tally.parent


def _count_sent() -> None:
    tally = _TALLY.get()
    while tally is not None:
        tally.sent += 1
        tally = tally.parent


@contextmanager
def node_writes() -> Iterator[_Tally]:
    """Count the writes of one node's part of a call apart (they count for the call too).
    ``sent`` says whether bytes may have left: a write whose connect was refused has not."""
    tally = _Tally(_TALLY.get())
    token = _TALLY.set(tally)
    try:
        yield tally
    finally:
        _TALLY.reset(token)


class _CountsWrites:
    """Mixed in front of a cluster node's (guarded) sync connection."""

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        _count_write()  # before the write, so an interrupt or a failure can only over-count
        super().send_packed_command(*args, **kwargs)  # type: ignore[misc]

    def _count_written(self, *args: Any) -> None:
        _count_sent()  # the guard's count, once connected, just before the bytes leave
        super()._count_written(*args)  # type: ignore[misc]


class _AsyncCountsWrites:
    """Mixed in front of a cluster node's (guarded) asyncio connection."""

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        _count_write()
        await super().send_packed_command(*args, **kwargs)  # type: ignore[misc]

    def _count_written(self, *args: Any) -> None:
        _count_sent()
        super()._count_written(*args)  # type: ignore[misc]


_CONNECTION_CLASSES: dict[tuple[type[Any], str], type[Any]] = {}


def cluster_connection_class(base: type[Any], connection_name: str) -> type[Any]:
    """``base`` (a guarded connection class) for the nodes of the cluster connection
    ``connection_name``: it counts its writes for :func:`after_write_rule`, and names the
    connection in its errors (redis-py's asyncio cluster makes its connections itself, with no
    pool of ours to name them)."""
    made = _CONNECTION_CLASSES.get((base, connection_name))
    if made is None:  # one class per base and name, however often the connections are rebuilt
        mixin: type[Any] = _AsyncCountsWrites if _is_async_connection(base) else _CountsWrites
        # The base's name and module, so pool reprs and health reports read as before.
        made = type(
            base.__name__,
            (mixin, base),
            {"connection_name": connection_name, "__module__": base.__module__},
        )
        made = _CONNECTION_CLASSES.setdefault((base, connection_name), made)
    return made


def _is_async_connection(base: type[Any]) -> bool:
    return inspect.iscoroutinefunction(base.send_packed_command)


@contextmanager
def after_write_rule(connection_name: str, what: str) -> Iterator[_Tally]:
    """Run a cluster call under CONTRACT section 13: an exception that is not one of redis-py's
    errors, raised after a node's connection started a write for this call, becomes
    :class:`~redis_conn.exceptions.ReplyNotUnderstood` ("may or may not have run"). Before any
    write it passes unchanged (nothing ran: a programming error stays one). Yields the tally,
    for calls that return errors instead of raising them (:func:`unreadable_result`)."""
    tally = _Tally()
    token = _TALLY.set(tally)
    try:
        yield tally
    except _REDIS_ERRORS as exc:
        outcome = _outcome_behind(exc)
        if outcome is None:
            raise
        # redis-py 7.x refreshes the slot table while handling the lost connection; when no
        # node answers, its error would replace the one saying the command may have run.
        logger.warning(
            "%safter %s was lost, %s: %s",
            messages.prefix(connection_name),
            what,
            type(exc).__name__,
            mask_text(str(exc)),
        )
        raise outcome from None
    except Exception as exc:
        if tally.writes:
            raise _unreadable(connection_name, what, exc) from exc
        raise
    finally:
        _TALLY.reset(token)


def _outcome_behind(exc: BaseException) -> OutcomeUnknown | None:
    """The "may or may not have run" error that ``exc`` was raised while handling, if any."""
    seen: set[int] = set()
    context = exc.__context__
    while context is not None and id(context) not in seen:
        if isinstance(context, OutcomeUnknown):
            return context
        seen.add(id(context))
        context = context.__context__
    return None


def _unreadable(connection_name: str, what: str, exc: Exception) -> ReplyNotUnderstood:
    return ReplyNotUnderstood(connection_name, what, exc)


def unreadable_result(connection_name: str, what: str, result: Any) -> Any:
    """A batch's result for a command written under :func:`after_write_rule`: an exception
    that is not one of redis-py's errors becomes ``ReplyNotUnderstood``."""
    if isinstance(result, Exception) and not isinstance(result, _REDIS_ERRORS):
        return _unreadable(connection_name, what, result)
    return result


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
    per command, in order. Only an interrupt (``BaseException``) is raised."""
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
            if not _refresh(cluster):
                break  # each command keeps the outcome of its last attempt
        resend = _one_round(cluster, commands, resend, results)
    return [
        RedisClusterException("The batch was redirected too many times.") if r is _UNSENT else r
        for r in results
    ]


def _refresh(cluster: Any) -> bool:
    """Reload the slot table; False when that failed (no node answered, or anything else).

    Not raised: the batch's earlier rounds may have written commands whose outcome (a reply,
    or "may or may not have run") must reach the caller, not a refresh error in its place.
    """
    try:
        cluster.nodes_manager.initialize()
    except Exception as exc:
        logger.warning(
            "%sthe cluster's slot table could not be refreshed (%s: %s).",
            messages.prefix(connection_name_of(cluster)),
            type(exc).__name__,
            mask_text(str(exc)),
        )
        return False
    return True


def connection_name_of(cluster: Any) -> str:
    return str(getattr(cluster, "connection_name", "") or "")


def _one_round(
    cluster: Any, commands: Sequence[Command], todo: dict[int, _Resend], results: list[Any]
) -> dict[int, _Resend]:
    name = connection_name_of(cluster)
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for index, why in todo.items():
        try:
            node = why.node or route(cluster, *commands[index])
        except Exception as exc:  # not sent: the command's own error
            results[index] = exc
            continue
        by_node.setdefault(node.name, (node, []))[1].append(index)
    again: dict[int, _Resend] = {}
    lent: list[tuple[Any, Any, list[int]]] = []
    try:
        for node, indices in by_node.values():
            try:
                client = cluster.get_redis_connection(node)
                connection = client.connection_pool.get_connection()
            except _NETWORK_ERRORS as exc:  # nothing was written: route these again
                for index in indices:
                    results[index] = exc
                    again[index] = _Resend(network=True)
                continue
            except Exception as exc:  # nothing was written: the commands fail, others go on
                for index in indices:
                    results[index] = exc
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
            except Exception as exc:  # perhaps partly written: close it, nothing re-sent
                _unread(name, connection, commands, indices, exc, results)
                lent[-1] = (client, connection, [])
        for client, connection, indices in lent:
            _read_replies(name, client, connection, commands, indices, todo, results, again)
    finally:
        for client, connection, _ in lent:
            client.connection_pool.release(connection)
    try:
        _follow_redirects(cluster, results, again)
    except Exception:  # the slot table is redis-py's to mend; these keep their redirect errors
        logger.warning(
            "%sa cluster redirect could not be followed.", messages.prefix(name), exc_info=True
        )
        return {}
    return again


def _read_replies(
    name: str,
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
        except Exception as exc:  # the client failed, not the network nor the server
            _unread(name, connection, commands, indices[position:], exc, results)
            return


def _unread(
    name: str,
    connection: Any,
    commands: Sequence[Command],
    indices: list[int],
    exc: Exception,
    results: list[Any],
) -> None:
    """The client failed (not the network, not the server) once ``indices`` were written: their
    replies are unread, so the connection is closed and each may or may not have run."""
    try:
        connection.disconnect()
    except Exception:  # the commands' outcome is what matters; the pool closes it anyway
        logger.debug("%sdisconnect failed.", messages.prefix(name), exc_info=True)
    for index in indices:
        results[index] = _unreadable(name, command_name(commands[index][0]), exc)


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
    if refresh and not _refresh(cluster):
        again.clear()  # the commands keep their redirect errors
    if wait:
        time.sleep(0.05)


class ExactlyOnceClusterPipeline(redis.cluster.ClusterPipeline):
    """redis-py's cluster pipeline API; ``execute()`` sends through :func:`send_cluster_batch`.

    Instances come from :meth:`NamedRedisCluster.pipeline`, which re-labels the pipeline
    redis-py built (so every constructor argument stays redis-py's own).
    """

    connection_name = ""

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


class ClusterTransaction(redis.cluster.ClusterPipeline):
    """redis-py's cluster transaction (MULTI/EXEC on one node), under :func:`after_write_rule`."""

    connection_name = ""

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        label = batch_label("transaction", len(self))
        with after_write_rule(self.connection_name, label):
            results: list[Any] = super().execute(raise_on_error)
        return results


class NamedRedisCluster(redis.cluster.RedisCluster):
    """redis-py's ``RedisCluster`` whose non-transactional pipelines send each command once,
    and whose commands and transactions follow CONTRACT section 13 (:func:`after_write_rule`).
    ``connection_name`` is set by the client builder."""

    connection_name = ""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        with after_write_rule(self.connection_name, command_name(args)):
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)  # type: ignore[no-untyped-call]
        pipe.__class__ = ClusterTransaction if transaction else ExactlyOnceClusterPipeline
        pipe.connection_name = self.connection_name
        return pipe
