"""Every kind of connection names itself on the server: ``CLIENT LIST`` shows who owns a socket."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.cluster
from redis.exceptions import NoPermissionError, ResponseError

from redis_conn import ConfigurationError
from redis_conn.config import parse
from redis_conn.naming import prefix_from_module, sanitize, server_name
from redis_conn.registry import ConnectionRegistry

try:
    from servers import RedisServer
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import RedisServer


@pytest.fixture
def registry() -> Iterator[ConnectionRegistry]:
    registry = ConnectionRegistry()
    yield registry
    registry.close_all()


def mine(names: Counter[str], prefix: str) -> dict[str, int]:
    """The names of one test (its own prefix): other tests' sockets may still be closing."""
    return {name: n for name, n in names.items() if name.startswith(f"{prefix}:")}


def names_on(server: Any) -> Counter[str]:
    """How many sockets of the server carry each client name (our probe's is unnamed)."""
    with server.probe_client() as client:
        return Counter(entry["name"] for entry in client.client_list() if entry["name"])


# -- the name itself -------------------------------------------------------------------------


def test_names_are_prefixed_and_sanitised_for_client_setname() -> None:
    assert server_name("shop", "users") == "shop:users"
    assert server_name(None, "users") == "users"
    assert server_name("", "users") == "users"
    assert server_name("my shop", "cache\n2") == "my_shop:cache_2"
    assert sanitize("café") == "caf_"
    assert prefix_from_module("shop.settings.production") == "shop"
    assert prefix_from_module("__main__") is None
    assert prefix_from_module(None) is None


def test_the_spec_carries_the_name_of_the_connection_that_owns_the_pool() -> None:
    specs = parse(
        {
            "users": {"URL": "redis://127.0.0.1:6390/0"},
            "sessions": {"ALIAS": "users"},
            "quiet": {"URL": "redis://127.0.0.1:6390/0", "CLIENT_NAME": False},
            "legacy": {"URL": "redis://127.0.0.1:6390/0", "OPTIONS": {"client_name": "web-1"}},
            "dev": {"FAKE": True},
        },
        client_name_prefix="shop",
    )
    assert {name: spec.client_name for name, spec in specs.items()} == {
        "users": "shop:users",
        "sessions": "shop:users",
        "quiet": None,
        "legacy": "web-1",  # OPTIONS['client_name'] is sent as given
        "dev": None,
    }


def test_client_name_settings_are_validated() -> None:
    with pytest.raises(ConfigurationError) as excinfo:
        parse({"a": {"URL": "redis://h:1/0", "CLIENT_NAME": "yes"}})
    assert str(excinfo.value) == (
        "Redis connection 'a' has CLIENT_NAME='yes' (str); expected True or False."
    )
    with pytest.raises(ConfigurationError) as excinfo:
        parse(
            {"a": {"URL": "redis://h:1/0", "CLIENT_NAME": False, "OPTIONS": {"client_name": "x"}}}
        )
    assert str(excinfo.value) == (
        "Redis connection 'a' has CLIENT_NAME False and also OPTIONS['client_name']. "
        "HINT: Remove one of them: CLIENT_NAME False sends no name at all."
    )
    with pytest.raises(ConfigurationError) as excinfo:
        parse({"a": {"URL": "redis://h:1/0"}}, client_name_prefix=3)  # type: ignore[arg-type]
    assert str(excinfo.value) == (
        "REDIS_CONN_CLIENT_NAME_PREFIX is 3 (int); expected a string or None."
    )


# -- every kind of connection, on real servers --------------------------------------------------


def test_standalone_unix_tls_and_acl_connections_are_named(
    registry: ConnectionRegistry, redis_server: Any, redis_server_b: Any, tls_server: Any
) -> None:
    registry.configure(
        {
            "default": {"URL": redis_server.url},
            "sock": {"URL": redis_server.unix_url},
            "secure": {"URL": tls_server.url, "OPTIONS": {"ssl_ca_certs": tls_server.ca_cert}},
            "users": {"URL": redis_server_b.acl_url},
            "sessions": {"ALIAS": "default"},
            "quiet": {"URL": redis_server.url, "CLIENT_NAME": False},
        },
        client_name_prefix="kinds",
    )
    for name in ("default", "sock", "secure", "users", "sessions", "quiet"):
        registry.get(name).ping()
    assert mine(names_on(redis_server), "kinds") == {"kinds:default": 1, "kinds:sock": 1}
    assert mine(names_on(tls_server), "kinds") == {"kinds:secure": 1}
    assert mine(names_on(redis_server_b), "kinds") == {"kinds:users": 1}
    with redis_server_b.probe_client() as probe:
        (entry,) = [c for c in probe.client_list() if c["name"] == "kinds:users"]
    assert entry["user"] == "app"  # the ACL user's socket, named


def test_every_pooled_connection_is_named_not_only_the_first(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"pooled": {"URL": redis_server.url}})
    pool = registry.get("pooled").connection_pool
    held = [pool.get_connection() for _ in range(3)]
    try:
        assert names_on(redis_server)["pooled"] == 3  # no prefix given: the bare name
    finally:
        for connection in held:
            pool.release(connection)


def test_sentinel_connections_are_named_on_the_primary_and_on_the_sentinel(
    registry: ConnectionRegistry, redis_sentinel: Any
) -> None:
    registry.configure(
        {
            "ha": {
                "SENTINELS": redis_sentinel.sentinels,
                "SERVICE_NAME": redis_sentinel.service_name,
            }
        },
        client_name_prefix="sentinel-test",
    )
    registry.get("ha").ping()
    assert names_on(redis_sentinel.current_primary())["sentinel-test:ha"] == 1
    assert names_on(redis_sentinel.sentinel)["sentinel-test:ha"] == 1


def test_cluster_connections_are_named_on_every_node(
    registry: ConnectionRegistry, redis_cluster: Any
) -> None:
    registry.configure(
        {"cache": {"URL": redis_cluster.url, "CLUSTER": True}}, client_name_prefix="shop"
    )
    client = registry.get("cache")
    client.ping(target_nodes=redis.cluster.RedisCluster.ALL_NODES)
    used = {node.port for node in client.get_nodes()}
    assert used >= set(redis_cluster.primaries)
    for node in redis_cluster.nodes:
        if node.port in used:
            assert names_on(node)["shop:cache"] >= 1, f"no named connection on {node.port}"


def test_asyncio_connections_are_named(
    registry: ConnectionRegistry, redis_server: Any, redis_cluster: Any, redis_sentinel: Any
) -> None:
    registry.configure(
        {
            "default": {"URL": redis_server.url},
            "cache": {"URL": redis_cluster.url, "CLUSTER": True},
            "ha": {"SENTINELS": redis_sentinel.sentinels, "SERVICE_NAME": "mymaster"},
        },
        client_name_prefix="async-shop",
    )

    async def use_them() -> tuple[Counter[str], list[Counter[str]], Counter[str], Counter[str]]:
        try:
            await registry.get_async("default").ping()
            cluster = registry.get_async("cache")
            await cluster.ping(target_nodes=cluster.ALL_NODES)
            used = {node.port for node in cluster.get_nodes()}
            await registry.get_async("ha").ping()
            return (
                names_on(redis_server),
                [names_on(node) for node in redis_cluster.nodes if node.port in used],
                names_on(redis_sentinel.current_primary()),
                names_on(redis_sentinel.sentinel),
            )
        finally:
            await registry.aclose_async()

    standalone, nodes, primary, sentinel = asyncio.run(use_them())
    assert mine(standalone, "async-shop") == {"async-shop:default": 1}
    assert len(nodes) >= 3
    assert all(names["async-shop:cache"] >= 1 for names in nodes), nodes
    assert primary["async-shop:ha"] == 1
    assert sentinel["async-shop:ha"] == 1


# -- a server that refuses the name -------------------------------------------------------------


def test_an_acl_that_forbids_setname_gives_an_error_naming_the_connection(
    registry: ConnectionRegistry, killable_server: RedisServer
) -> None:
    with killable_server.probe_client() as admin:
        admin.execute_command(
            "ACL", "SETUSER", "anon", "on", ">pw", "~*", "&*", "+@all", "-client|setname"
        )
    url = f"redis://anon:pw@{killable_server.host}:{killable_server.port}/0"
    registry.configure({"users": {"URL": url}}, client_name_prefix="shop")
    with pytest.raises(NoPermissionError) as excinfo:
        registry.get("users").ping()
    assert str(excinfo.value) == (
        "Redis connection 'users': the server refused CLIENT SETNAME 'shop:users' (this user "
        "has no permissions to run the 'client|setname' command). Set CLIENT_NAME to False for "
        "this connection if a proxy or an ACL forbids naming connections, or allow the command "
        "(ACL: +client|setname)."
    )
    registry.configure({"users": {"URL": url, "CLIENT_NAME": False}}, client_name_prefix="shop")
    assert registry.get("users").ping() is True


def test_a_server_without_the_client_command_gives_an_error_naming_the_connection(
    registry: ConnectionRegistry, tmp_path: Path
) -> None:
    server = RedisServer("no-client", tmp_path, extra_args=["--rename-command", "CLIENT", ""])
    server.start()
    try:
        registry.configure({"users": {"URL": server.url}})
        with pytest.raises(ResponseError) as excinfo:
            registry.get("users").ping()
        assert str(excinfo.value) == (
            "Redis connection 'users': the server refused CLIENT SETNAME 'users' (unknown "
            "command 'CLIENT', with args beginning with: 'SETNAME' 'users' ). Set CLIENT_NAME to "
            "False for this connection if a proxy or an ACL forbids naming connections, or allow "
            "the command (ACL: +client|setname)."
        )
        registry.configure({"users": {"URL": server.url, "CLIENT_NAME": False}})
        assert registry.get("users").ping() is True
    finally:
        registry.close_all()
        server.stop()


def test_other_handshake_errors_are_left_as_they_are(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url.replace("/0", "/99")}})
    with pytest.raises(ResponseError) as excinfo:
        registry.get("default").ping()
    assert str(excinfo.value) == "DB index is out of range"


def test_names_reach_redis_py_as_its_own_client_name(
    registry: ConnectionRegistry, redis_server: Any
) -> None:
    registry.configure({"default": {"URL": redis_server.url}}, client_name_prefix="own")
    client = registry.get("default")
    assert isinstance(client, redis.Redis)
    assert client.connection_pool.connection_kwargs["client_name"] == "own:default"
    assert client.client_getname() == "own:default"
