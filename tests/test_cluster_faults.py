"""Redis Cluster when things break after the write: CONTRACT sections 6 and 13.

- A batch whose reply is lost, followed by a cluster that cannot be reached at all (the slot
  table refresh finds no node), still tells each command's outcome: the write "may or may not
  have run", never redis-py's ``RedisClusterUnreachableError`` (8.x) or "Redis Cluster cannot
  be connected" (7.x) in its place.
- The asyncio cluster's errors name the configured connection.
- A failure inside the client after the write (here a response callback that raises, as a
  redis-py release that changed a reply's shape would) is ``ReplyNotUnderstood``, on the sync
  and asyncio clients, their pipelines and transactions; plain redis-py raises the bare error.
- Options: the sync cluster hands a connection option to its nodes or drops it, depending on
  the redis-py release; the settings check follows what the installed one does.

Every node is reached through a fault proxy (tests/fault_proxy.py); the server's own counter
says how often a write ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import redis.cluster
from redis.exceptions import RedisError

from redis_conn import ConnectionLostAfterWrite, ConnectionRegistry, PipelineError, get_redis
from redis_conn.config import validate
from redis_conn.exceptions import ReplyNotUnderstood
from redis_conn.pipeline import pipeline
from redis_conn.registry import connections

try:
    from fault_proxy import FaultProxy
    from servers import ClusterDeployment
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.fault_proxy import FaultProxy
    from tests.servers import ClusterDeployment


def lost(what: str) -> str:
    return (
        "Redis connection 'users': the connection was lost (Connection closed by server.) "
        f"after {what} was sent; it may or may not have run, and it was not sent again."
    )


def unread(what: str) -> str:
    return (
        f"Redis connection 'users': {what} was sent, then its reply could not be read "
        "(TypeError: a reply this client cannot handle); it may or may not have run, and it "
        "was not sent again."
    )


class VanishingProxy(FaultProxy):
    """A fault proxy whose node disappears with the lost reply: it stops accepting too."""

    def close(self) -> None:
        # A listener closed while another thread waits in accept() keeps accepting on Linux;
        # shutting it down wakes that thread, so the address really refuses connections.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        super().close()

    def _replies(self, server: socket.socket, client: socket.socket, doomed: Any) -> None:
        try:
            while data := server.recv(1 << 16):
                if doomed.is_set():
                    self.replies_lost += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        self.close()


def proxies_for(
    cluster: ClusterDeployment, proxy_class: type[FaultProxy] = FaultProxy
) -> dict[int, FaultProxy]:
    return {node.port: proxy_class(("127.0.0.1", node.port)) for node in cluster.nodes}


def registry_through(
    cluster: ClusterDeployment, proxies: dict[int, FaultProxy], *, multiplex: bool = False
) -> Any:
    by_port = {port: fault.port for port, fault in proxies.items()}

    def through_proxy(address: tuple[str, int]) -> tuple[str, int]:
        return ("127.0.0.1", by_port.get(address[1], address[1]))

    settings = {
        "URL": cluster.url,
        "CLUSTER": True,
        # redis-py's pooled cluster client unless asked; MULTIPLEX's faults: test_multiplex_cluster
        "MULTIPLEX": multiplex,
        "OPTIONS": {"address_remap": through_proxy},
    }
    return ConnectionRegistry({"users": settings})


def proxy_of(client: Any, proxies: dict[int, FaultProxy], key: str) -> FaultProxy:
    port = client.get_node_from_key(key).port
    by_proxy_port = {fault.port: fault for fault in proxies.values()}
    return by_proxy_port.get(port) or proxies[port]


@pytest.fixture
def vanishing(redis_cluster: ClusterDeployment) -> Iterator[dict[int, FaultProxy]]:
    proxies = proxies_for(redis_cluster, VanishingProxy)
    try:
        yield proxies
    finally:
        for fault in proxies.values():
            fault.close()


@pytest.fixture
def proxied(redis_cluster: ClusterDeployment) -> Iterator[dict[int, FaultProxy]]:
    proxies = proxies_for(redis_cluster)
    try:
        yield proxies
    finally:
        for fault in proxies.values():
            fault.close()


def raw_value(cluster: ClusterDeployment, key: str) -> Any:
    with cluster.client() as raw:
        return raw.get(key)


def settled(future: Any) -> Any:
    try:
        return future.result
    except Exception as exc:
        return exc


# -- a lost reply, then no node reachable --------------------------------------------------------


@pytest.mark.parametrize("api", ["redis-py", "redis_conn"])
def test_a_lost_batch_reply_then_an_unreachable_cluster_is_still_may_or_may_not_have_run(
    redis_cluster: ClusterDeployment, vanishing: dict[int, FaultProxy], api: str
) -> None:
    registry = registry_through(redis_cluster, vanishing)
    registry.source.apply_to(connections)  # what pipeline() uses
    client = get_redis("users") if api == "redis_conn" else registry.get("users")
    try:
        client.set("{v}n", 0)
        lossy = proxy_of(client, vanishing, "{v}n")
        for fault in vanishing.values():
            if fault is not lossy:
                fault.close()
        lossy.lose_reply_to(b"INCR")
        # The read in the batch is sent again, which asks for a slot table refresh first: no
        # node answers it.
        if api == "redis-py":
            pipe = client.pipeline()
            pipe.incr("{v}n").get("{v}s")
            with pytest.raises(ConnectionLostAfterWrite) as info:
                pipe.execute()
            error: Any = info.value
        else:
            with pipeline(name="users") as p:
                incr, read = p.incr("{v}n"), p.get("{v}s")
                with pytest.raises(PipelineError):
                    p.execute()
            error = settled(incr)
            assert isinstance(settled(read), RedisError)  # no node to send it to again
        assert isinstance(error, ConnectionLostAfterWrite)
        assert str(error) == lost("a batch of 2 commands")
        assert lossy.replies_lost == 1
        assert raw_value(redis_cluster, "{v}n") == b"1"  # it did run, once
    finally:
        registry.close_all()
        connections.configure(None)


def test_a_lost_reply_then_an_unreachable_cluster_single_command(
    redis_cluster: ClusterDeployment, vanishing: dict[int, FaultProxy]
) -> None:
    """A single command: redis-py 7.x refreshes the slot table while it handles the lost
    connection, and its "cannot be connected" error used to replace section 6's."""
    registry = registry_through(redis_cluster, vanishing)
    client = registry.get("users")
    try:
        client.set("{v}n", 0)
        lossy = proxy_of(client, vanishing, "{v}n")
        for fault in vanishing.values():
            if fault is not lossy:
                fault.close()
        lossy.lose_reply_to(b"INCR")
        with pytest.raises(ConnectionLostAfterWrite) as info:
            client.incr("{v}n")
        assert str(info.value) == lost("INCRBY")
        # Control: the cluster is really unreachable now.
        with pytest.raises(redis.exceptions.RedisClusterException, match="cannot be connected"):
            client.nodes_manager.initialize()
    finally:
        registry.close_all()
    assert raw_value(redis_cluster, "{v}n") == b"1"


# -- the asyncio cluster names its connection ----------------------------------------------------


def test_async_cluster_errors_name_the_connection(
    redis_cluster: ClusterDeployment, proxied: dict[int, FaultProxy]
) -> None:
    registry = registry_through(redis_cluster, proxied)

    async def scenario() -> list[str]:
        client = registry.get_async("users")
        messages = []
        try:
            # Map the slots first: redis-py's asyncio cluster does not remap the address of a
            # node it learns from a MOVED reply, which would bypass the proxies.
            await client.initialize()
            await client.set("{n}a", 0)
            lossy = proxy_of(client, proxied, "{n}a")
            lossy.lose_reply_to(b"INCR")
            with pytest.raises(ConnectionLostAfterWrite) as info:
                await client.incr("{n}a")
            messages.append(str(info.value))
            lossy.lose_reply_to(b"INCR")
            pipe = client.pipeline()
            pipe.incr("{n}a").incr("{n}b")
            with pytest.raises(ConnectionLostAfterWrite) as info:
                await pipe.execute()
            messages.append(str(info.value))
            assert lossy.replies_lost == 2
        finally:
            await registry.aclose_async()
        return messages

    assert asyncio.run(scenario()) == [lost("INCRBY"), lost("a batch of 2 commands")]
    assert raw_value(redis_cluster, "{n}a") == b"2"


def test_async_cluster_connect_errors_name_the_connection(redis_cluster: ClusterDeployment) -> None:
    proxies = proxies_for(redis_cluster, VanishingProxy)
    registry = registry_through(redis_cluster, proxies)

    async def scenario() -> str:
        client = registry.get_async("users")
        try:
            await client.initialize()
            for fault in proxies.values():
                fault.close()
            # redis-py 7.x's cluster errors are not RedisErrors.
            with pytest.raises((RedisError, redis.exceptions.RedisClusterException)) as info:
                await client.get("{n}a")
            return str(info.value)
        finally:
            await registry.aclose_async()

    try:
        message = asyncio.run(scenario())
    finally:
        for fault in proxies.values():
            fault.close()
    assert message.startswith("Redis connection 'users': "), message
    assert "Redis connection ''" not in message
    assert "Redis connection 'users': Redis connection 'users'" not in message


# -- a failure inside the client after the write (CONTRACT section 13) ---------------------------


def unhandled_reply(response: Any, **options: Any) -> Any:
    raise TypeError("a reply this client cannot handle")


def break_incr_replies(client: Any) -> None:
    """Make INCRBY's reply fail inside the client, on the cluster client and on each node's."""
    client.set_response_callback("INCRBY", unhandled_reply)
    for node in client.get_nodes():
        if getattr(node, "redis_connection", None) is not None:
            node.redis_connection.set_response_callback("INCRBY", unhandled_reply)


def test_plain_redis_py_raises_the_bare_error(redis_cluster: ClusterDeployment) -> None:
    """Control: the fault is real, and redis-py lets a TypeError out after the write."""
    with redis_cluster.client() as raw:
        raw.set("{u}n", 0)
        break_incr_replies(raw)
        with pytest.raises(TypeError, match="a reply this client cannot handle"):
            raw.incr("{u}n")
    assert raw_value(redis_cluster, "{u}n") == b"1"


def test_sync_cluster_failure_after_the_write_is_reply_not_understood(
    redis_cluster: ClusterDeployment,
) -> None:
    registry = ConnectionRegistry({"users": {"URL": redis_cluster.url, "CLUSTER": True}})
    client = registry.get("users")
    try:
        client.set("{u}n", 0)
        client.set("{w}n", 0)
        break_incr_replies(client)
        with pytest.raises(ReplyNotUnderstood) as info:
            client.incr("{u}n")
        assert str(info.value) == unread("INCRBY")
        assert isinstance(info.value.__cause__, TypeError)

        pipe = client.pipeline()
        pipe.incr("{u}n").get("{u}n").incr("{w}n").get("{w}n")
        replies = pipe.execute(raise_on_error=False)
        # After the failure the node's replies are left unread and its connection closed: the
        # commands after it on that node share the unknown outcome.
        assert [str(r) for r in replies] == [unread(c) for c in ("INCRBY", "GET") * 2]
        assert all(isinstance(r, ReplyNotUnderstood) for r in replies)

        transaction = client.pipeline(transaction=True)
        transaction.incr("{u}n")
        with pytest.raises(ReplyNotUnderstood) as info:
            transaction.execute()
        assert str(info.value) == unread("a transaction of 1 command")
    finally:
        registry.close_all()
    assert raw_value(redis_cluster, "{u}n") == b"3"  # each write ran once
    assert raw_value(redis_cluster, "{w}n") == b"1"


def test_async_cluster_failure_after_the_write_is_reply_not_understood(
    redis_cluster: ClusterDeployment,
) -> None:
    registry = ConnectionRegistry(
        {"users": {"URL": redis_cluster.url, "CLUSTER": True, "MULTIPLEX": False}}
    )

    async def scenario() -> None:
        client = registry.get_async("users")
        try:
            await client.set("{u}n", 0)
            break_incr_replies(client)
            with pytest.raises(ReplyNotUnderstood) as info:
                await client.incr("{u}n")
            assert str(info.value) == unread("INCRBY")

            pipe = client.pipeline()
            pipe.incr("{u}n").get("{u}n")
            replies = await pipe.execute(raise_on_error=False)
            assert isinstance(replies[0], ReplyNotUnderstood)
            assert str(replies[0]) == unread("INCRBY")
            pipe = client.pipeline()
            pipe.incr("{u}n")
            with pytest.raises(ReplyNotUnderstood):
                await pipe.execute()
        finally:
            await registry.aclose_async()

    asyncio.run(scenario())
    assert raw_value(redis_cluster, "{u}n") == b"3"  # each write ran once


# -- options the sync cluster keeps or drops, per installed redis-py -----------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [("ssl_min_version", ssl.TLSVersion.TLSv1_2), ("ssl_ciphers", "HIGH:!aNULL")],
)
def test_a_cluster_tls_option_is_refused_exactly_when_the_sync_cluster_drops_it(
    redis_cluster: ClusterDeployment, option: str, value: Any
) -> None:
    """redis-py 7.x's sync cluster drops ``ssl_min_version`` and ``ssl_ciphers`` (its nodes
    never get them, while the asyncio cluster uses them); 8.x hands them on. What the installed
    sync cluster does, observed on a real cluster, decides what the check says."""
    raw = redis.cluster.RedisCluster(
        host="127.0.0.1", port=redis_cluster.nodes[0].port, **{option: value}
    )
    try:
        handed_on = option in raw.nodes_manager.connection_kwargs
    finally:
        raw.close()
    entry = {"URL": "rediss://127.0.0.1:7000", "CLUSTER": True, "OPTIONS": {option: value}}
    problems = [(p.id, p.key, p.message, p.hint) for p in validate({"x": entry})]
    if handed_on:
        assert problems == []
    else:
        assert problems == [
            (
                "E010",
                f"OPTIONS.{option}",
                f"Redis connection 'x' has OPTIONS[{option!r}], which a cluster-tls "
                "connection does not accept.",
                "Only one of redis-py's sync and asyncio clients takes it; the other would "
                "fail (or silently drop it).",
            )
        ]


# -- a multi-key write split across slots: a lost part is never sent again ------------------------


@pytest.mark.parametrize("client_kind", ["sync", "asyncio pooled", "asyncio multiplexed"])
def test_a_split_delete_whose_part_lost_its_reply_is_not_sent_again(
    redis_cluster: ClusterDeployment, proxied: dict[int, FaultProxy], client_kind: str
) -> None:
    """DEL of keys on two nodes: redis-py 8.2 splits it per slot and resends a part that met a
    connection error, which after a lost reply would run it twice (a wrong count here, a lost
    update for MSET). The part whose reply was lost must say it may or may not have run."""
    registry = registry_through(
        redis_cluster, proxied, multiplex=client_kind == "asyncio multiplexed"
    )
    keys = ("{a}k", "{b}k")
    with redis_cluster.client() as raw:
        assert raw.keyslot(keys[0]) != raw.keyslot(keys[1])
        assert raw.get_node_from_key(keys[0]) != raw.get_node_from_key(keys[1])
        raw.set(keys[0], 1)
        raw.set(keys[1], 1)

    def outcome_of(delete: Any) -> Any:
        try:
            return delete()
        except Exception as exc:
            return exc

    if client_kind == "sync":
        client = registry.get("users")
        try:
            client.get(keys[1])
            lossy = proxy_of(client, proxied, keys[1])
            lossy.lose_reply_to(b"DEL")
            outcome = outcome_of(lambda: client.delete(*keys))
        finally:
            registry.close_all()
    else:

        async def scenario() -> Any:
            client = registry.get_async("users")
            try:
                await client.initialize()
                lossy = proxy_of(client, proxied, keys[1])
                lossy.lose_reply_to(b"DEL")
                try:
                    return await client.delete(*keys)
                except Exception as exc:
                    return exc
            finally:
                await registry.aclose_async()

        outcome = asyncio.run(scenario())
    lossy_proxy = next(fault for fault in proxied.values() if fault.replies_lost)
    assert lossy_proxy.replies_lost == 1
    assert isinstance(outcome, ConnectionLostAfterWrite), outcome
    assert "users" in str(outcome)
    with redis_cluster.client() as raw:
        assert raw.exists(*keys) == 0  # both parts ran, once
