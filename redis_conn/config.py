"""REDIS_CONNECTIONS -> validated, normalised connection specs.

One routine, :func:`validate` (in :mod:`redis_conn.entries`, beside the checks of OPTIONS),
finds every problem; Django turns the problems into system check messages and everything
else raises them as one :class:`ConfigurationError`. Nothing here opens a connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from redis_conn.client_cache_settings import CacheSettings, cache_settings
from redis_conn.entries import (
    DEFAULTS,
    KNOWN_KEYS,
    MAX_RETRY,
    Kind,
    validate,
)
from redis_conn.exceptions import ConfigurationError
from redis_conn.masking import mask_url
from redis_conn.naming import server_name
from redis_conn.options import OPTIONS_OWNED_BY_SETTINGS, accepted_options, connection_kind
from redis_conn.problems import (
    E_ALIAS_EXTRA_KEYS,
    E_ALIAS_LOOP,
    E_ALIAS_MISSING,
    E_BAD_OPTION,
    E_BAD_URL,
    E_BAD_VALUE,
    E_CONFLICT,
    E_MISSING_URL,
    E_NOT_A_MAPPING,
    E_UNKNOWN_KEY,
    Problem,
)
from redis_conn.urls import URL_SCHEMES

__all__ = [  # the problem ids and option tables are part of this module's interface
    "DEFAULTS",
    "EMBEDDED_DEFAULT",
    "E_ALIAS_EXTRA_KEYS",
    "E_ALIAS_LOOP",
    "E_ALIAS_MISSING",
    "E_BAD_OPTION",
    "E_BAD_URL",
    "E_BAD_VALUE",
    "E_CONFLICT",
    "E_MISSING_URL",
    "E_NOT_A_MAPPING",
    "E_UNKNOWN_KEY",
    "KNOWN_KEYS",
    "MAX_RETRY",
    "OPTIONS_OWNED_BY_SETTINGS",
    "URL_SCHEMES",
    "ConnectionSpec",
    "Kind",
    "Problem",
    "accepted_options",
    "parse",
    "resolve_alias",
    "validate",
]

#: Used when an application configures no connections at all: one in-process fake server.
EMBEDDED_DEFAULT: dict[str, dict[str, Any]] = {"default": {"FAKE": True}}


@dataclass(frozen=True)
class ConnectionSpec:
    """A validated connection. For an alias, every field but ``name`` is the target's."""

    name: str
    kind: Kind
    root: str  # the connection that owns the pool: ``name`` itself unless this is an alias
    url: str | None = None
    read_from_replicas: bool = False
    sentinels: tuple[tuple[str, int], ...] = ()
    service_name: str | None = None
    sentinel_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # The defaults of the settings are DEFAULTS' (parse() always gives them all).
    max_connections: int = DEFAULTS["MAX_CONNECTIONS"]
    blocking: bool = DEFAULTS["BLOCKING"]
    pool_timeout: float = DEFAULTS["POOL_TIMEOUT"]
    socket_timeout: float | None = DEFAULTS["SOCKET_TIMEOUT"]
    socket_connect_timeout: float | None = DEFAULTS["SOCKET_CONNECT_TIMEOUT"]
    health_check_interval: float = DEFAULTS["HEALTH_CHECK_INTERVAL"]
    retry: int = DEFAULTS["RETRY"]
    multiplex: bool = DEFAULTS["MULTIPLEX"]
    #: CLIENT_CACHE (CONTRACT section 11); None: off.
    client_cache: CacheSettings | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    #: The name its connections send with CLIENT SETNAME (the owner's, for an alias); None: off.
    client_name: str | None = None

    @property
    def alias_of(self) -> str | None:
        return None if self.root == self.name else self.root

    @property
    def target(self) -> str:
        """Where this connection points, safe to show: passwords are masked."""
        if self.kind == "fake":
            return "fakeredis://"
        if self.kind == "sentinel":
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            return f"redis+sentinel://{hosts}/{self.service_name}"
        return mask_url(self.url or "")

    def __repr__(self) -> str:
        # The dataclass repr would show the URL and OPTIONS (passwords); show what is safe.
        return f"<ConnectionSpec {self.name!r} {self.kind} {self.target}>"


def parse(settings: object, *, client_name_prefix: str | None = None) -> dict[str, ConnectionSpec]:
    """Validate and normalise; raise :class:`ConfigurationError` listing every problem.

    ``client_name_prefix`` goes before each connection's name on the server
    (``prefix:name``, see :mod:`redis_conn.naming`).
    """
    problems = validate(settings)
    if client_name_prefix is not None and not isinstance(client_name_prefix, str):
        problems.append(
            Problem(
                E_BAD_VALUE,
                f"REDIS_CONN_CLIENT_NAME_PREFIX is {client_name_prefix!r} "
                f"({type(client_name_prefix).__name__}); expected a string or None.",
            )
        )
    if problems:
        raise ConfigurationError(str(p) for p in problems)
    assert isinstance(settings, Mapping)
    own = {
        name: _spec(name, entry, client_name_prefix)
        for name, entry in settings.items()
        if "ALIAS" not in entry
    }
    specs = dict(own)
    for name in settings:
        if name not in own:
            root = resolve_alias(settings, name)
            specs[name] = _with_name(own[root], name)
    return {name: specs[name] for name in settings}


def resolve_alias(settings: Mapping[str, Any], name: str) -> str:
    """Follow ALIAS from ``name`` to the connection that owns the pool (settings are valid)."""
    while "ALIAS" in settings[name]:
        name = settings[name]["ALIAS"]
    return name


def _with_name(spec: ConnectionSpec, name: str) -> ConnectionSpec:
    fields = {f: getattr(spec, f) for f in spec.__dataclass_fields__}
    fields["name"] = name
    return ConnectionSpec(**fields)


def _spec(name: str, entry: Mapping[str, Any], client_name_prefix: str | None) -> ConnectionSpec:
    values = {**DEFAULTS, **entry}
    kind = connection_kind(entry)
    return ConnectionSpec(
        name=name,
        kind=kind,
        root=name,
        url=entry.get("URL"),
        read_from_replicas=bool(entry.get("READ_FROM_REPLICAS", False)),
        sentinels=tuple((str(h), int(p)) for h, p in entry.get("SENTINELS", ())),
        service_name=entry.get("SERVICE_NAME"),
        sentinel_kwargs=dict(entry.get("SENTINEL_KWARGS", {})),
        max_connections=values["MAX_CONNECTIONS"],
        blocking=values["BLOCKING"],
        pool_timeout=float(values["POOL_TIMEOUT"]),
        socket_timeout=_seconds(values["SOCKET_TIMEOUT"]),
        socket_connect_timeout=_seconds(values["SOCKET_CONNECT_TIMEOUT"]),
        health_check_interval=values["HEALTH_CHECK_INTERVAL"],
        retry=values["RETRY"],
        multiplex=values["MULTIPLEX"] and kind != "fake",  # a fake server has no sockets
        client_cache=cache_settings(values["CLIENT_CACHE"]),
        options=dict(entry.get("OPTIONS", {})),
        client_name=_client_name(name, kind, values, client_name_prefix),
    )


def _client_name(
    name: str, kind: Kind, values: Mapping[str, Any], prefix: str | None
) -> str | None:
    if kind == "fake" or not values["CLIENT_NAME"]:
        return None
    explicit = values.get("OPTIONS", {}).get("client_name")
    # OPTIONS['client_name'] predates CLIENT_NAME: it is sent as given, without the prefix.
    return str(explicit) if explicit else server_name(prefix, name)


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)
