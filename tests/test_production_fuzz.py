"""Production proof, settings fuzzing (hypothesis): any REDIS_CONNECTIONS mapping yields either
a working configuration or a ConfigurationError, never another exception.

"Working" means: ``parse`` succeeds, ``configure`` opens no connection, building every client
does not raise, and every client answers PING on the live test servers it points at. The
first property needs no server at all; the second draws near-valid settings aimed at the
session servers (standalone, unix socket, Cluster, Sentinel, fake) with edge values in every
key. The findings hypothesis made are pinned below as plain tests, each with its example.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import string
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest
import redis.asyncio.cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redis_conn import ConfigurationError, ConnectionRegistry
from redis_conn.config import (
    KNOWN_KEYS,
    OPTIONS_OWNED_BY_SETTINGS,
    ConnectionSpec,
    accepted_options,
    parse,
    validate,
)

try:
    from servers import ClusterDeployment, RedisServer, SentinelDeployment
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import ClusterDeployment, RedisServer, SentinelDeployment

PASSWORD = "fuzz-Pa55word-Qv9"

# -- strategies ---------------------------------------------------------------------------------

numbers = st.sampled_from(
    [0, 0.0, -1, -0.5, 1, 2, 0.5, 3, 5.0, 30, 2**31, 2**70, 1e300, math.inf, -math.inf, math.nan]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.binary(max_size=6)
    | numbers
)
junk = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=6) | st.integers(), children, max_size=3)
    ),
    max_leaves=8,
)
names = st.sampled_from(["default", "users", "cache", "sessions", "x", "", "Ünï"]) | st.text(
    max_size=6
)
url_parts = st.tuples(
    st.sampled_from(["redis", "rediss", "unix", "REDIS", "http", "", "redis+sentinel", "valkey"]),
    st.sampled_from(["", f":{PASSWORD}@", f"user:{PASSWORD}@", "user@", ":@", "u:p:q@"]),
    st.sampled_from(["127.0.0.1", "", "[::1]", "h_st", "127.0.0.1:1", "127.0.0.1:0"]),
    st.sampled_from(["", ":99999", ":-1", ":x", ":65535", ":"]),
    st.sampled_from(["", "/", "/0", "/15", "/x", "/-1", "/tmp/r.sock", "//"]),
    st.sampled_from(
        ["", "?db=1", "?db=x", "?foo=bar", f"?password={PASSWORD}", "?socket_timeout=x", "?&"]
    ),
)
urls = st.builds(lambda p: f"{p[0]}://{''.join(p[1:])}", url_parts) | st.text(max_size=20)
option_names = st.sampled_from(
    [
        "decode_responses",
        "client_name",
        "password",
        "username",
        "db",
        "ssl",
        "ssl_ca_certs",
        "socket_keepalive",
        "protocol",
        "require_full_coverage",
        "single_connection_client",
        "passwrd",
        *OPTIONS_OWNED_BY_SETTINGS,
    ]
) | st.text(max_size=8)
kwargs_maps = st.dictionaries(option_names | st.integers(), scalars, max_size=3)


def plausible(key: str) -> st.SearchStrategy[Any]:
    """Values that are right, nearly right or wrong for ``key``."""
    if key == "URL":
        return urls
    if key == "ALIAS":
        return names
    if key in ("FAKE", "CLUSTER", "READ_FROM_REPLICAS", "BLOCKING"):
        return st.booleans()
    if key == "SENTINELS":
        pair = st.tuples(st.sampled_from(["127.0.0.1", "", "h"]), st.integers(-1, 70000))
        return st.lists(pair | st.lists(scalars, max_size=3), max_size=3)
    if key == "SERVICE_NAME":
        return st.text(max_size=8)
    if key in ("SENTINEL_KWARGS", "OPTIONS"):
        return kwargs_maps
    return numbers | st.integers() | st.floats()


@st.composite
def entries(draw: st.DrawFn) -> Any:
    keys = draw(st.lists(st.sampled_from(KNOWN_KEYS), unique=True, max_size=5))
    entry: dict[Any, Any] = {key: draw(plausible(key) | junk) for key in keys}
    if draw(st.integers(0, 9)) == 0:
        entry[draw(st.text(max_size=8) | st.integers())] = draw(junk)
    return entry


settings_maps = st.dictionaries(names, entries() | junk, max_size=4) | junk


@contextmanager
def no_network() -> Iterator[None]:
    """Fail loudly if anything opens a socket connection inside the block (this thread)."""
    owner = threading.get_ident()
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if threading.get_ident() == owner:
            raise AssertionError(f"a connection to {address!r} was opened")
        return real_connect(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]


# -- property 1: any mapping, no server ---------------------------------------------------------


@settings(max_examples=400, deadline=None, database=None)
@given(settings_maps)
def test_any_mapping_parses_or_raises_configuration_error(raw: Any) -> None:
    problems = validate(raw)
    try:
        specs = parse(raw)
    except ConfigurationError as exc:
        assert problems, "parse raised but validate found nothing"
        assert PASSWORD not in str(exc), str(exc)
        return
    assert problems == []
    assert isinstance(raw, Mapping) and list(specs) == list(raw)
    for spec in specs.values():
        assert isinstance(spec, ConnectionSpec)
        assert PASSWORD not in repr(spec) + spec.target
    registry = ConnectionRegistry()
    with no_network():
        registry.configure(raw)  # configure opens no connection
        assert registry.names() == list(raw)


# -- property 2: near-valid settings against the live servers ------------------------------------


class Live:
    """Addresses of the session servers the fuzzed settings point at."""

    def __init__(
        self, a: RedisServer, b: RedisServer, cluster: ClusterDeployment, sentinel: Any
    ) -> None:
        self.a, self.b, self.cluster, self.sentinel = a, b, cluster, sentinel


@pytest.fixture
def live(
    redis_server: RedisServer,
    redis_server_b: RedisServer,
    redis_cluster: ClusterDeployment,
    redis_sentinel: SentinelDeployment,
) -> Live:
    return Live(redis_server, redis_server_b, redis_cluster, redis_sentinel)


edge_seconds = st.sampled_from([None, 0, 0.0, 0.5, 1, 2.5, 5, 10**6, 1e300, math.inf, -1, True])
edge_counts = st.sampled_from([0, 1, 2, 50, 2**31, 2**70, -1, True, 1.5])
# Right and wrong values of the options redis-py reads only when a socket opens (encoding,
# protocol, client name...): whatever validate() accepts must then answer PING.
good_options = st.fixed_dictionaries(
    {},
    optional={
        "decode_responses": st.booleans(),
        "client_name": st.text(string.ascii_letters, min_size=1, max_size=8)
        | st.sampled_from(["web 1", "a\nb", "", "ü"]),
        "protocol": st.sampled_from([2, 3, "3", " 3", 3.0, 9, None]),
        "socket_keepalive": st.booleans(),
        "socket_keepalive_options": st.sampled_from([{}, {"x": 1}, {1: "x"}]),
        "socket_read_size": st.sampled_from([1, 4096, 0, -1]),
        "encoding": st.sampled_from(["utf-8", "latin-1", "utf-16", "nope", ""]),
        "encoding_errors": st.sampled_from(["strict", "replace", "surrogateescape", "nope"]),
        "username": st.just("default"),
        "require_full_coverage": st.booleans(),
        "single_connection_client": st.booleans(),
    },
)
query = st.sampled_from(
    [
        *("", "?db=1", "?protocol=3", "?client_name=q", "?foo=bar", "?max_connections=2"),
        *("?protocol=9", "?encoding=nope", "?encoding_errors=nope", "?client_name=a%20b"),
        *("?db=-1", "?socket_keepalive=yes", "?decode_responses=1"),
    ]
)


def tuning() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "MAX_CONNECTIONS": edge_counts,
            "BLOCKING": st.booleans(),
            "POOL_TIMEOUT": edge_seconds,
            "SOCKET_TIMEOUT": edge_seconds,
            "SOCKET_CONNECT_TIMEOUT": edge_seconds,
            "HEALTH_CHECK_INTERVAL": edge_seconds,
            # Small: every accepted example must work, and a failure retried 2**70 times with
            # backoff would never end.
            "RETRY": st.sampled_from([0, 1, 3, -1, 1.5, True]),
            "OPTIONS": good_options,
        },
    )


@st.composite
def live_settings(draw: st.DrawFn, live: Live) -> dict[str, Any]:
    kinds = draw(
        st.lists(
            st.sampled_from(["tcp", "acl", "unix", "cluster", "sentinel", "fake"]),
            min_size=1,
            max_size=3,
        )
    )
    result: dict[str, Any] = {}
    for index, kind in enumerate(kinds):
        entry: dict[str, Any] = draw(tuning())
        if kind == "tcp":
            db = draw(st.integers(0, 15))
            entry["URL"] = f"redis://127.0.0.1:{live.a.port}/{db}{draw(query)}"
        elif kind == "acl":
            entry["URL"] = live.b.acl_url
        elif kind == "unix":
            entry["URL"] = f"unix://{live.a.unix_socket}?db={draw(st.integers(0, 15))}"
        elif kind == "cluster":
            entry["URL"] = f"{live.cluster.url}/{draw(st.sampled_from(['', '0', '2']))}"
            entry["CLUSTER"] = True
            entry["READ_FROM_REPLICAS"] = draw(st.booleans())
        elif kind == "sentinel":
            entry["SENTINELS"] = live.sentinel.sentinels
            entry["SERVICE_NAME"] = live.sentinel.service_name
        else:
            entry = {"FAKE": True}
        result[f"{kind}{index}"] = entry
    if draw(st.booleans()):
        result["alias"] = {"ALIAS": next(iter(result))}
    return result


def check_works(raw: dict[str, Any]) -> None:
    try:
        parse(raw)
    except ConfigurationError:
        return
    registry = ConnectionRegistry()
    with no_network():
        registry.configure(raw)
    try:
        for name in raw:
            client = registry.get(name)  # must not raise (a cluster client connects here)
            assert client.ping() is True, name
    finally:
        registry.close_all()


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_accepted_settings_work_against_live_servers(live: Live, data: st.DataObject) -> None:
    check_works(data.draw(live_settings(live)))


# -- findings, pinned -----------------------------------------------------------------------------
# Each was once accepted by the configuration and then failed with another exception (or
# silently did something else) at the first command. Each is a ConfigurationError now.


def tcp(live: Live, **entry: Any) -> dict[str, Any]:
    return {"x": {"URL": live.a.url, **entry}}


@pytest.mark.parametrize("key", ["SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT", "POOL_TIMEOUT"])
@pytest.mark.parametrize("value", [math.inf, 1e300], ids=["inf", "1e300"])
def test_non_finite_or_huge_timeouts_are_rejected(live: Live, key: str, value: float) -> None:
    """Were accepted, then OverflowError ("timestamp out of range for platform time_t") at
    the first command, or, for POOL_TIMEOUT, the first time a caller had to wait."""
    with pytest.raises(ConfigurationError, match=key):
        parse(tcp(live, **{key: value}))


@pytest.mark.parametrize("key", ["SOCKET_TIMEOUT", "SOCKET_CONNECT_TIMEOUT"])
def test_zero_socket_timeouts_are_rejected(live: Live, key: str) -> None:
    """0 puts the socket in non-blocking mode: connect fails with "Error 115 ... Operation now in
    progress" and reads fail at random. None is "no timeout"; 0 is never what is meant."""
    with pytest.raises(ConfigurationError, match=key):
        parse(tcp(live, **{key: 0}))


@pytest.mark.parametrize(
    "options",
    [
        {"ssl": True},
        {"ssl_ca_certs": "/etc/ssl/ca.pem"},
        {"require_full_coverage": True},
        {"single_connection_client": True},
    ],
    ids=lambda options: next(iter(options)),
)
def test_options_the_connection_kind_does_not_take_are_rejected(
    live: Live, options: dict[str, Any]
) -> None:
    """OPTIONS were checked against the union of every redis-py signature, so an option of
    another kind (TLS on redis://, a cluster option on a standalone server, a client-only
    argument the pool cannot pass on) was accepted, then TypeError "AbstractConnection.__init__()
    got an unexpected keyword argument" at the first command."""
    with pytest.raises(ConfigurationError, match=next(iter(options))):
        parse(tcp(live, OPTIONS=options))


def test_tcp_only_options_on_a_unix_socket_are_rejected(live: Live) -> None:
    with pytest.raises(ConfigurationError, match="socket_keepalive"):
        parse({"x": {"URL": live.a.unix_url, "OPTIONS": {"socket_keepalive": True}}})


@pytest.mark.parametrize("query", ["foo=bar", "max_connections=2", "socket_timeout=0.001"], ids=str)
def test_url_query_options_are_checked_like_options(live: Live, query: str) -> None:
    """An unknown query option was a TypeError at the first command; one that a setting owns
    (max_connections, socket_timeout) silently overrode MAX_CONNECTIONS / SOCKET_TIMEOUT."""
    with pytest.raises(ConfigurationError, match=query.split("=")[0]):
        parse({"x": {"URL": f"{live.a.url}?{query}"}})


def test_cluster_url_with_a_db_is_rejected(live: Live) -> None:
    """Was RedisClusterException "A ``db`` querystring option can only be 0 in cluster mode"
    when the client was built (get_redis), not at configuration."""
    with pytest.raises(ConfigurationError, match="CLUSTER"):
        parse({"x": {"URL": f"{live.cluster.url}/2", "CLUSTER": True}})


def test_port_zero_is_rejected() -> None:
    """redis-py treats port 0 as "no port" and connects to 6379: not the server written."""
    with pytest.raises(ConfigurationError, match="URL"):
        parse({"x": {"URL": "redis://127.0.0.1:0/0"}})


# -- property 3: what validate() accepts, redis-py builds (no server) -----------------------------
# Names from every redis-py signature (sync or asyncio) and junk, values right, nearly right and
# wrong, in OPTIONS, the URL's query and SENTINEL_KWARGS: if validate() finds nothing, the sync
# and asyncio clients are built and each makes a connection object (as at the first command)
# without raising. The sync cluster client connects while it is built; its asyncio client and
# its nodes' connections are built here, the rest by property 2 against the live cluster.

KINDS = {
    "tcp": ("redis://127.0.0.1:1/0", "tcp"),
    "tls": ("rediss://127.0.0.1:1/0", "tls"),
    "unix": ("unix:///tmp/redis-conn-none.sock?db=0", "unix"),
    "cluster": ("redis://127.0.0.1:1", "cluster"),
    "cluster-tls": ("rediss://127.0.0.1:1", "cluster-tls"),
    "sentinel": (None, "sentinel"),
    "fake": (None, "fake"),
}
OPTION_VALUES: dict[str, list[Any]] = {
    "encoding": ["utf-8", "latin-1", "nope", "", 5],
    "encoding_errors": ["strict", "replace", "nope", ""],
    "protocol": [2, 3, "3", " 3", 9, 0, None, True, 3.0, "x"],
    "db": [0, 1, 15, -1, "1", True, 2.5],
    "client_name": ["web", "a b", "", "x\n", "ü", 5],
    "socket_keepalive_options": [{}, {1: 1}, {"a": 1}, None, 5],
    "socket_read_size": [1, 65536, 0, -1, "x"],
    "ssl_cert_reqs": ["none", "optional", "required", "bogus", 7, None, ssl.CERT_NONE, 1],
    "ssl_min_version": [None, ssl.TLSVersion.TLSv1_2, 771, 99, "TLSv1_2"],
    "ssl_ciphers": [None, "HIGH", "NOT-A-CIPHER", 5],
    "ssl_include_verify_flags": [None, [ssl.VerifyFlags.VERIFY_X509_STRICT], ["x"], "x"],
    "credential_provider": [None, "x"],
    "username": ["default", None, 5],
    "password": ["pw", None, b"pw"],
    "socket_type": [0, -1, "x"],
    "retry_on_timeout": [True, False],
    "lib_name": ["x", None],
    "driver_info": [None, "x"],
}
QUERY_VALUES = {
    "protocol": ["2", "3", "9", "x"],
    "db": ["1", "-1", "x"],
    "encoding": ["latin-1", "nope"],
    "encoding_errors": ["replace", "nope"],
    "client_name": ["q", "a%20b"],
    "ssl_cert_reqs": ["none", "bogus"],
    "ssl_min_version": ["771", "99", "x"],
    "socket_keepalive": ["yes", "0"],
    "decode_responses": ["1"],
    "ssl_check_hostname": ["false"],
    "socket_read_size": ["0", "1024"],
}


@st.composite
def options_for(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    known = sorted(accepted_options(kind, both=False))
    names = st.sampled_from(sorted({*known, *OPTION_VALUES})) | st.text(max_size=6)
    options: dict[str, Any] = {}
    for name in draw(st.lists(names, unique=True, max_size=4)):
        values = OPTION_VALUES.get(name)
        options[name] = draw(st.sampled_from(values) if values else scalars)
    return options


@st.composite
def buildable_settings(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(KINDS)))
    url, option_kind = KINDS[kind]
    entry: dict[str, Any] = {"RETRY": draw(st.sampled_from([0, 3]))}
    if kind == "sentinel":
        entry |= {"SENTINELS": [("127.0.0.1", 1)], "SERVICE_NAME": "m"}
        entry["SENTINEL_KWARGS"] = draw(options_for("sentinel-kwargs"))
    elif kind == "fake":
        entry = {"FAKE": True}
    else:
        pairs = draw(st.lists(st.sampled_from(sorted(QUERY_VALUES)), unique=True, max_size=3))
        query = "&".join(f"{k}={draw(st.sampled_from(QUERY_VALUES[k]))}" for k in pairs)
        separator = "&" if "?" in url else "?"
        entry["URL"] = url + (separator + query if query else "")
        entry["CLUSTER"] = kind.startswith("cluster")
    entry["OPTIONS"] = draw(options_for(option_kind))
    return {"x": entry}


async def build_async_connections(registry: ConnectionRegistry) -> None:
    try:
        for name in registry.names():
            client = registry.get_async(name)
            if isinstance(client, redis.asyncio.cluster.RedisCluster):
                for node in client.nodes_manager.startup_nodes.values():
                    node.acquire_connection()
            else:
                client.connection_pool.make_connection()
    finally:
        await registry.aclose_async()


def check_buildable(raw: dict[str, Any]) -> None:
    try:
        specs = parse(raw)
    except ConfigurationError:
        return
    registry = ConnectionRegistry(raw)
    try:
        # A deprecation (lib_name, lib_version) is a warning for later, not a refusal.
        with no_network(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            for name, spec in specs.items():
                if spec.kind != "cluster":
                    registry.get(name).connection_pool.make_connection()
            asyncio.run(build_async_connections(registry))
    finally:
        registry.close_all()


@settings(max_examples=500, deadline=None, database=None)
@given(buildable_settings())
def test_what_validate_accepts_redis_py_builds(raw: dict[str, Any]) -> None:
    check_buildable(raw)
