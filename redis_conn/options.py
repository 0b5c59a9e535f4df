"""OPTIONS, URL query options and SENTINEL_KWARGS, judged by redis-py itself.

Names are checked against the signatures of the classes redis-py builds for the kind of
connection, sync *and* asyncio (an option only one of them takes would fail the other at
its first command). Values are checked by building those very objects (connection pools and
a connection, nothing connects) and, for the few values redis-py reads only when a socket
opens (``encoding``, ``ssl_min_version``...), by asking Python's own registries.
"""

from __future__ import annotations

import codecs
import difflib
import inspect
import ssl
import warnings
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Literal, TypeGuard

from redis_conn import messages
from redis_conn.masking import connection_secrets, mask_pieces, mask_text
from redis_conn.problems import E_BAD_OPTION, E_CONFLICT, Problem, sentence
from redis_conn.urls import parsed_url, url_scheme

# OPTIONS entries that would silently fight a setting of ours: name the setting to use instead.
OPTIONS_OWNED_BY_SETTINGS = {
    "max_connections": "MAX_CONNECTIONS",
    "timeout": "POOL_TIMEOUT",
    "socket_timeout": "SOCKET_TIMEOUT",
    "socket_connect_timeout": "SOCKET_CONNECT_TIMEOUT",
    "health_check_interval": "HEALTH_CHECK_INTERVAL",
    "retry": "RETRY",
    "retry_on_timeout": "RETRY",
    "retry_on_error": "RETRY",
    "connection_pool": "URL",
    "connection_pool_class": "BLOCKING",
    "connection_class": "URL",
    "url": "URL",
    "host": "URL",
    "port": "URL",
    "path": "URL",
    "unix_socket_path": "URL",
    "startup_nodes": "URL",
    "read_from_replicas": "READ_FROM_REPLICAS",
    "sentinels": "SENTINELS",
    "service_name": "SERVICE_NAME",
    "sentinel_kwargs": "SENTINEL_KWARGS",
    "server": "FAKE",
}
# SENTINEL_KWARGS may set the sentinels' own timeouts; their addresses come from SENTINELS.
SENTINEL_KWARGS_OWNED = {
    "host": "SENTINELS",
    "port": "SENTINELS",
    "unix_socket_path": "SENTINELS",
    "connection_pool": "SENTINELS",
    "single_connection_client": "SENTINELS",
}
# Parts of a URL that are addresses and credentials, not options.
URL_PARTS = frozenset({"host", "port", "path", "db", "username", "password", "connection_class"})


#: What a connection is (the report's ``kind``).
Kind = Literal["standalone", "unix", "cluster", "sentinel", "fake"]


def connection_kind(entry: Mapping[str, Any]) -> Kind:
    """What an entry's connection is; the one classifier (an entry with both SENTINELS and
    CLUSTER is refused by the checks, and classified as a sentinel meanwhile)."""
    if entry.get("FAKE") is True:
        return "fake"
    if entry.get("SENTINELS"):
        return "sentinel"
    if entry.get("CLUSTER") is True:
        return "cluster"
    url = entry.get("URL")
    return "unix" if isinstance(url, str) and url_scheme(url) == "unix" else "standalone"


def kind_of(entry: Mapping[str, Any]) -> str:
    """Which redis-py classes an (otherwise valid) entry's connections are built from: its
    :func:`connection_kind`, with TCP told apart from TLS."""
    url = entry.get("URL")
    tls = isinstance(url, str) and url_scheme(url) == "rediss"
    kind = connection_kind(entry)
    if kind == "cluster":
        return "cluster-tls" if tls else "cluster"
    if kind == "standalone":
        return "tls" if tls else "tcp"
    return kind


# -- names --------------------------------------------------------------------------------


def check_option_names(name: str, entry: Mapping[str, Any]) -> list[Problem]:
    """OPTIONS, URL query options and SENTINEL_KWARGS keys this kind of connection takes."""
    kind = kind_of(entry)
    problems: list[Problem] = []
    sources: list[tuple[str, object, str]] = [("OPTIONS", entry.get("OPTIONS"), kind)]
    url_options = parsed_url(entry.get("URL"))
    if url_options is not None:
        query = {k: v for k, v in url_options.items() if k not in URL_PARTS}
        sources.append(("URL", query, kind))
    if kind == "sentinel":
        sources.append(("SENTINEL_KWARGS", entry.get("SENTINEL_KWARGS"), "sentinel-kwargs"))
    for where, options, target in sources:
        if isinstance(options, Mapping):
            for option in options:
                if isinstance(option, str):
                    problem = _name_problem(name, where, option, target)
                    if problem is not None:
                        problems.append(problem)
    if url_options is not None and kind.startswith("cluster") and url_options.get("db", 0) != 0:
        problems.append(
            Problem(
                E_CONFLICT,
                f"{messages.subject(name)} has CLUSTER with a URL naming db "
                f"{url_options['db']}; Redis Cluster has only db 0.",
                connection=name,
                key="URL",
                hint="Remove the db from the URL.",
            )
        )
    return problems


def _name_problem(name: str, where: str, option: str, kind: str) -> Problem | None:
    owned = SENTINEL_KWARGS_OWNED if where == "SENTINEL_KWARGS" else OPTIONS_OWNED_BY_SETTINGS
    owner = owned.get(option)
    if owner is not None:
        return Problem(
            E_BAD_OPTION,
            f"{messages.subject(name)} has {where}[{option!r}], which the {owner} setting "
            "controls.",
            connection=name,
            key=f"{where}.{option}",
            hint=f"Use {owner} instead.",
        )
    accepted = accepted_options(kind)
    if option in accepted:
        return None
    guess = difflib.get_close_matches(option, sorted(accepted), n=1)
    hint = f"Did you mean {guess[0]!r}?" if guess else None
    if option in accepted_options(kind, both=False):
        hint = (
            "Only one of redis-py's sync and asyncio clients takes it; the other would fail "
            "(or silently drop it)."
        )
    target = "the connections to the sentinels do" if kind == "sentinel-kwargs" else None
    return Problem(
        E_BAD_OPTION,
        f"{messages.subject(name)} has {where}[{option!r}], which "
        + (f"{target} not accept." if target else f"a {kind} connection does not accept."),
        connection=name,
        key=f"{where}.{option}",
        hint=hint,
    )


def _parameters(*functions: Callable[..., Any]) -> set[str]:
    names: set[str] = set()
    for function in functions:
        for param in inspect.signature(function).parameters.values():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                names.add(param.name)
    return names - {"self"}


@cache
def accepted_options(kind: str, *, both: bool = True) -> frozenset[str]:
    """Keyword arguments a kind of connection accepts, read from redis-py's signatures: the
    sync and the asyncio classes must both take them (both clients are built from one spec).
    ``both=False``: what either of them takes."""
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.connection
    import redis.cluster
    import redis.connection

    def combine(sync: set[str], aio: set[str]) -> set[str]:
        return sync & aio if both else sync | aio

    def connection(*names: str) -> set[str]:
        return combine(
            _parameters(*(getattr(redis.connection, n).__init__ for n in names)),
            _parameters(*(getattr(redis.asyncio.connection, n).__init__ for n in names)),
        )

    if kind in ("fake", "sentinel-kwargs"):
        names = combine(
            _parameters(redis.Redis.__init__), _parameters(redis.asyncio.Redis.__init__)
        )
    elif kind == "unix":
        names = connection("AbstractConnection", "UnixDomainSocketConnection")
    elif kind == "tcp":
        names = connection("AbstractConnection", "Connection")
    elif kind in ("tls", "sentinel"):
        # TLS to a Sentinel-managed primary is asked for with ssl=True.
        names = connection("AbstractConnection", "Connection", "SSLConnection")
        if kind == "sentinel":
            names.add("ssl")
    else:  # cluster, cluster-tls: what the sync cluster hands its nodes, and the async one takes
        names = combine(
            _sync_cluster_hands_on() | _parameters(redis.cluster.RedisCluster.__init__),
            _parameters(redis.asyncio.cluster.RedisCluster.__init__),
        )
        if kind == "cluster":
            names -= {"ssl"} | {n for n in names if n.startswith("ssl_")}
    return frozenset(names - {"single_connection_client"})


def _sync_cluster_hands_on() -> set[str]:
    """The connection options the installed sync ``RedisCluster`` passes to its nodes' clients.

    It keeps what its ``cleanup_kwargs`` lets through and silently drops the rest, and which
    those are changes between releases (7.x drops ``ssl_min_version``, 8.x hands it on). So
    every name a node's client or connection could take is put through that very function.
    """
    import redis
    import redis.asyncio.cluster
    import redis.cluster
    import redis.connection

    candidates = _parameters(
        redis.Redis.__init__,
        redis.ConnectionPool.__init__,
        redis.BlockingConnectionPool.__init__,
        redis.connection.AbstractConnection.__init__,
        redis.connection.Connection.__init__,
        redis.connection.SSLConnection.__init__,
        redis.connection.UnixDomainSocketConnection.__init__,
        redis.asyncio.cluster.RedisCluster.__init__,
    )
    kept = redis.cluster.cleanup_kwargs(**dict.fromkeys(candidates))  # type: ignore[no-untyped-call, unused-ignore]
    return set(kept)


# -- values -------------------------------------------------------------------------------


def check_option_values(name: str, entry: Mapping[str, Any]) -> list[Problem]:
    """Values redis-py would refuse: when building the client, or at the first command.

    Call only for an entry with no other problem (names, types and the URL are valid).
    """
    kind = kind_of(entry)
    secrets = connection_secrets(
        entry.get("URL"), entry.get("OPTIONS"), entry.get("SENTINEL_KWARGS")
    )
    url = entry.get("URL")
    url_options = parsed_url(url) or {}
    sources = [
        ("URL", {k: v for k, v in url_options.items() if k not in URL_PARTS}),
        ("OPTIONS", dict(entry.get("OPTIONS", {}))),
    ]
    if kind == "sentinel":
        sources.append(("SENTINEL_KWARGS", dict(entry.get("SENTINEL_KWARGS", {}))))
    problems: list[Problem] = []
    for where, options in sources:
        for option, value in options.items():
            problem = _value_problem(name, where, option, value)
            if problem is None:
                single = {where: {option: value}}
                error = _build_error(kind, entry, single)
                if error is not None:
                    problem = _refused(name, where, option, value, error, secrets)
            if problem is not None:
                problems.append(problem)
    problems.extend(_url_conflicts(name, url_options, entry.get("OPTIONS", {})))
    if not problems:
        error = _build_error(kind, entry, None)
        if error is not None:
            problems.append(
                Problem(
                    E_BAD_OPTION,
                    sentence(
                        f"{messages.subject(name)} has OPTIONS that redis-py refuses "
                        f"together: {mask_pieces(mask_text(_describe(error)), secrets)}"
                    ),
                    connection=name,
                    key="OPTIONS",
                )
            )
    return problems


# Options whose values are plain settings, safe to repeat in a message. Any other value
# (a password, a credential provider whose repr may hold one) is described by its type only.
_SHOWN_VALUES = frozenset(
    {
        "db",
        "decode_responses",
        "encoding",
        "encoding_errors",
        "protocol",
        "socket_keepalive",
        "socket_keepalive_options",
        "socket_read_size",
        "ssl",
        "ssl_ca_certs",
        "ssl_cert_reqs",
        "ssl_certfile",
        "ssl_check_hostname",
        "ssl_ciphers",
        "ssl_exclude_verify_flags",
        "ssl_include_verify_flags",
        "ssl_keyfile",
        "ssl_min_version",
        "client_name",
    }
)


def _shown(option: str, value: object, where: str = "OPTIONS") -> str:
    """``=<repr>`` for a plain setting (as written, for a URL's query), `` (<type>)`` for
    anything else."""
    if option not in _SHOWN_VALUES:
        return f" ({type(value).__name__})"
    text = str(value) if where == "URL" else repr(value)
    return "=" + (text if len(text) <= 60 else f"{text[:57]}...")


def _refused(
    name: str, where: str, option: str, value: object, error: Exception, secrets: tuple[str, ...]
) -> Problem:
    reason = mask_pieces(mask_text(_describe(error)), secrets)
    return Problem(
        E_BAD_OPTION,
        sentence(
            f"{messages.subject(name)} has {where}[{option!r}]{_shown(option, value, where)}, "
            f"which redis-py refuses: {reason}"
        ),
        connection=name,
        key=f"{where}.{option}",
    )


def _describe(error: Exception) -> str:
    # One line: some redis-py messages are laid out over several.
    return " ".join(str(error).split()) or type(error).__name__


# Values redis-py takes when it builds a connection but reads only when a socket opens:
# a bad one would fail the first command (LookupError, ssl.SSLError, a server error).
def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _codec(value: object) -> bool:
    try:
        return isinstance(value, str) and codecs.lookup(value) is not None
    except LookupError:
        return False


def _error_handler(value: object) -> bool:
    try:
        return isinstance(value, str) and codecs.lookup_error(value) is not None
    except LookupError:
        return False


def _tls_version(value: object) -> bool:
    if value is None or isinstance(value, ssl.TLSVersion):
        return True
    return _is_int(value) and value in {v.value for v in ssl.TLSVersion}


def _ciphers(value: object) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    try:
        ssl.create_default_context().set_ciphers(value)
    except ssl.SSLError:
        return False
    return True


def _cert_reqs(value: object) -> bool:
    # Strings are judged by redis-py when the connection is built.
    if value is None or isinstance(value, (str, ssl.VerifyMode)):
        return True
    return _is_int(value) and value in {v.value for v in ssl.VerifyMode}


def _verify_flags(value: object) -> bool:
    return value is None or (
        isinstance(value, (list, tuple)) and all(isinstance(f, ssl.VerifyFlags) for f in value)
    )


def _client_name(value: object) -> bool:
    # The server refuses names with spaces, newlines or characters outside '!'..'~'.
    return value is None or (isinstance(value, str) and all("!" <= c <= "~" for c in value))


def _keepalive_options(value: object) -> bool:
    return value is None or (
        isinstance(value, Mapping)
        and all(_is_int(k) and (_is_int(v) or isinstance(v, bytes)) for k, v in value.items())
    )


_CONNECT_TIME_VALUES: dict[str, tuple[Callable[[object], bool], str]] = {
    "encoding": (_codec, "the name of a Python codec, such as 'utf-8'"),
    "encoding_errors": (
        _error_handler,
        "the name of a codecs error handler, such as 'strict' or 'replace'",
    ),
    # What redis-py's clients compare it with to choose their reply parsers: " 3" would
    # speak RESP3 with RESP2 parsers (HGETALL returned {}).
    "protocol": (lambda v: v is None or (_is_int(v) and v in (2, 3)) or v in ("2", "3"), "2 or 3"),
    "db": (lambda v: _is_int(v) and v >= 0, "a whole number >= 0"),
    "ssl_min_version": (_tls_version, "an ssl.TLSVersion, such as ssl.TLSVersion.TLSv1_2"),
    "ssl_ciphers": (_ciphers, "an OpenSSL cipher list that this Python's ssl module accepts"),
    "ssl_cert_reqs": (_cert_reqs, "'none', 'optional', 'required' or an ssl.VerifyMode"),
    "ssl_include_verify_flags": (_verify_flags, "a list of ssl.VerifyFlags"),
    "ssl_exclude_verify_flags": (_verify_flags, "a list of ssl.VerifyFlags"),
    "client_name": (
        _client_name,
        "a string without spaces, newlines or other characters outside '!'..'~' (the "
        "server refuses them)",
    ),
    "socket_keepalive_options": (
        _keepalive_options,
        "a dict of socket option number to int or bytes",
    ),
    "socket_read_size": (lambda v: _is_int(v) and v > 0, "a whole number > 0"),
}


def _value_problem(name: str, where: str, option: str, value: object) -> Problem | None:
    rule = _CONNECT_TIME_VALUES.get(option)
    if rule is None:
        return None
    check, expected = rule
    if check(value):
        return None
    return Problem(
        E_BAD_OPTION,
        f"{messages.subject(name)} has {where}[{option!r}]{_shown(option, value, where)}; "
        f"expected {expected}.",
        connection=name,
        key=f"{where}.{option}",
    )


def _url_conflicts(
    name: str, url_options: Mapping[str, Any], options: Mapping[str, Any]
) -> list[Problem]:
    """redis-py lets the URL win over OPTIONS silently (``from_url``): say so instead."""
    problems = []
    for option, value in options.items():
        if option not in url_options or option == "connection_class":
            continue
        if url_options[option] == value:  # said twice, the same: nothing is lost
            continue
        if option == "db":
            message = (
                f"{messages.subject(name)} has OPTIONS['db']={options['db']!r} and a URL "
                f"naming db {url_options['db']}; redis-py would use the URL's db "
                f"{url_options['db']}."
            )
            hint = (
                f"Keep the database number in the URL (end it with /{options['db']} if that "
                "is the one you mean) and remove OPTIONS['db']."
            )
        else:
            message = (
                f"{messages.subject(name)} has OPTIONS[{option!r}] and its URL sets "
                f"{option} too; redis-py would use the URL's."
            )
            hint = f"Keep one: remove OPTIONS[{option!r}], or take {option} out of the URL."
        problems.append(
            Problem(E_CONFLICT, message, connection=name, key=f"OPTIONS.{option}", hint=hint)
        )
    return problems


# -- building what redis-py would build -----------------------------------------------------


def _build_error(
    kind: str, entry: Mapping[str, Any], only: Mapping[str, Mapping[str, Any]] | None
) -> Exception | None:
    """The exception redis-py raises building this entry's pools and one connection (sync
    and asyncio), or None. ``only`` limits the options to one source and key."""
    url = entry.get("URL")
    options = dict(entry.get("OPTIONS", {}))
    sentinel_kwargs = dict(entry.get("SENTINEL_KWARGS", {}))
    if only is not None:
        url = url.split("?", 1)[0] if isinstance(url, str) else url
        options = dict(only.get("OPTIONS", {}))
        sentinel_kwargs = dict(only.get("SENTINEL_KWARGS", {}))
        options.update(only.get("URL", {}))
    timeouts = {
        key: entry.get(setting, default)
        for key, setting, default in (
            ("socket_timeout", "SOCKET_TIMEOUT", 5.0),
            ("socket_connect_timeout", "SOCKET_CONNECT_TIMEOUT", 2.0),
        )
    }
    kwargs = {**timeouts, "health_check_interval": entry.get("HEALTH_CHECK_INTERVAL", 30)}
    kwargs.update(options)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecations are shown when the client is built
            if kind == "fake":
                _build_fake(options)
            elif kind == "sentinel":
                _build_sentinel(entry, kwargs, {**timeouts, **sentinel_kwargs})
            elif kind.startswith("cluster"):
                _build_cluster(str(url), kwargs)
            else:
                _build_standalone(str(url), kwargs)
    except Exception as exc:  # whatever redis-py raises is the answer
        return exc
    return None


def _build_standalone(url: str, kwargs: dict[str, Any]) -> None:
    import redis
    import redis.asyncio

    redis.ConnectionPool.from_url(url, **kwargs).make_connection()
    redis.asyncio.ConnectionPool.from_url(url, **kwargs).make_connection()  # type: ignore[no-untyped-call]


def _build_sentinel(
    entry: Mapping[str, Any], kwargs: dict[str, Any], sentinel_kwargs: dict[str, Any]
) -> None:
    import redis.asyncio.sentinel
    import redis.sentinel

    kwargs = dict(kwargs)
    tls = bool(kwargs.pop("ssl", False))
    sentinels = [tuple(pair) for pair in entry["SENTINELS"]]
    for module in (redis.sentinel, redis.asyncio.sentinel):
        manager = module.Sentinel(sentinels, sentinel_kwargs=sentinel_kwargs)
        for sentinel in manager.sentinels:
            sentinel.connection_pool.make_connection()
        connection_class = (
            module.SentinelManagedSSLConnection if tls else module.SentinelManagedConnection
        )
        pool = module.SentinelConnectionPool(
            entry["SERVICE_NAME"],
            manager,
            connection_class=connection_class,
            is_master=True,
            check_connection=False,
            **kwargs,
        )
        pool.make_connection()


def _build_cluster(url: str, kwargs: dict[str, Any]) -> None:
    # The sync cluster connects while it is built; build what it hands each node instead.
    import redis
    import redis.asyncio.cluster
    import redis.cluster
    from redis.connection import parse_url

    url_options = parse_url(url)  # type: ignore[no-untyped-call]
    node_kwargs = redis.cluster.cleanup_kwargs(**{**kwargs, **url_options})  # type: ignore[no-untyped-call]
    address = {"host": url_options.get("host", "localhost"), "port": url_options.get("port", 6379)}
    pool = redis.ConnectionPool(**address, **node_kwargs)
    pool.make_connection()
    kwargs = {k: v for k, v in kwargs.items() if k != "health_check_interval"}
    client = redis.asyncio.cluster.RedisCluster.from_url(url, **kwargs)
    for node in client.nodes_manager.startup_nodes.values():
        node.acquire_connection()


def _build_fake(options: dict[str, Any]) -> None:
    import fakeredis

    for client_class in (fakeredis.FakeRedis, fakeredis.FakeAsyncRedis):
        client = client_class(server=fakeredis.FakeServer(), **options)
        client.connection_pool.make_connection()
