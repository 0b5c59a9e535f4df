"""The checks of one REDIS_CONNECTIONS mapping: its keys, their values and how they combine.

:func:`validate` finds every problem, in a stable order; :mod:`redis_conn.config` turns a
valid mapping into specs. The OPTIONS (and URL query options) are judged by redis-py itself,
in :mod:`redis_conn.options`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from redis_conn import messages
from redis_conn.options import Kind, check_option_names, check_option_values
from redis_conn.problems import (
    E_ALIAS_EXTRA_KEYS,
    E_ALIAS_LOOP,
    E_ALIAS_MISSING,
    E_BAD_VALUE,
    E_CONFLICT,
    E_MISSING_URL,
    E_NOT_A_MAPPING,
    E_UNKNOWN_KEY,
    Problem,
)
from redis_conn.urls import check_url

__all__ = ["DEFAULTS", "KNOWN_KEYS", "MAX_RETRY", "MAX_SECONDS", "Kind", "validate"]

DEFAULTS: dict[str, Any] = {
    "MAX_CONNECTIONS": 50,
    "BLOCKING": True,
    "POOL_TIMEOUT": 5.0,
    "SOCKET_TIMEOUT": 5.0,
    "SOCKET_CONNECT_TIMEOUT": 2.0,
    "HEALTH_CHECK_INTERVAL": 30,
    "RETRY": 3,
    "CLIENT_NAME": True,
    "MULTIPLEX": True,
    "CLIENT_CACHE": False,
}
KNOWN_KEYS = (
    "URL",
    "ALIAS",
    "FAKE",
    "CLUSTER",
    "READ_FROM_REPLICAS",
    "SENTINELS",
    "SERVICE_NAME",
    "SENTINEL_KWARGS",
    *DEFAULTS,
    "OPTIONS",
)


def validate(settings: object) -> list[Problem]:
    """Every problem in a REDIS_CONNECTIONS mapping, in a stable order; [] when valid."""
    if not isinstance(settings, Mapping):
        return [
            Problem(
                E_NOT_A_MAPPING,
                "REDIS_CONNECTIONS must be a dict of connection name to settings dict, "
                f"not {type(settings).__name__}.",
            )
        ]
    problems: list[Problem] = []
    for name, entry in settings.items():
        problems.extend(_validate_entry(name, entry, settings))
    problems.extend(_alias_loops(settings))
    return problems


# -- checks of one entry -------------------------------------------------------------------


def _validate_entry(name: object, entry: object, settings: Mapping[Any, Any]) -> list[Problem]:
    if not isinstance(name, str) or not name:
        return [
            Problem(
                E_NOT_A_MAPPING,
                f"REDIS_CONNECTIONS has a connection name {name!r}; names must be non-empty "
                "strings.",
            )
        ]
    if not isinstance(entry, Mapping):
        return [
            Problem(
                E_NOT_A_MAPPING,
                f"{messages.subject(name)} must be a dict of settings, not {type(entry).__name__}.",
                connection=name,
            )
        ]
    problems = [_unknown_key(name, key) for key in entry if key not in KNOWN_KEYS]
    if "ALIAS" in entry:
        return problems + _check_alias(name, entry, settings)
    for key, check in _VALUE_CHECKS.items():
        if key in entry:
            problem = check(name, key, entry[key])
            if problem is not None:
                problems.append(problem)
    problems.extend(_check_combinations(name, entry))
    problems.extend(check_option_names(name, entry))
    if not problems:  # redis-py builds the connection only from otherwise valid settings
        problems.extend(check_option_values(name, entry))
    return problems


def _unknown_key(name: str, key: object) -> Problem:
    guess = difflib.get_close_matches(str(key).upper(), KNOWN_KEYS, n=1, cutoff=0.6)
    hint = f"Did you mean {guess[0]}?" if guess else f"Valid keys: {', '.join(KNOWN_KEYS)}."
    return Problem(
        E_UNKNOWN_KEY,
        f"{messages.subject(name)} has an unknown key {key!r}.",
        connection=name,
        key=str(key),
        hint=hint,
    )


def _check_alias(name: str, entry: Mapping[str, Any], settings: Mapping[Any, Any]) -> list[Problem]:
    target = entry["ALIAS"]
    problems: list[Problem] = []
    others = sorted(str(k) for k in entry if k != "ALIAS" and k in KNOWN_KEYS)
    if others:
        problems.append(
            Problem(
                E_ALIAS_EXTRA_KEYS,
                f"{messages.subject(name)} has ALIAS and also {', '.join(others)}; an alias "
                "shares its target's client and pool, so no other key is allowed beside it.",
                connection=name,
                key=others[0],
                hint=f"Remove {', '.join(others)}, or make {name!r} its own connection.",
            )
        )
    if not isinstance(target, str):
        problems.append(_bad_type(name, "ALIAS", target, "a connection name (str)"))
    elif target not in settings:
        names = ", ".join(repr(n) for n in settings if n != name) or "none"
        problems.append(
            Problem(
                E_ALIAS_MISSING,
                f"{messages.subject(name)} has ALIAS {target!r}, which is not a configured "
                "connection.",
                connection=name,
                key="ALIAS",
                hint=f"Configured connections: {names}.",
            )
        )
    return problems


def _alias_loops(settings: Mapping[Any, Any]) -> list[Problem]:
    problems: list[Problem] = []
    reported: set[str] = set()
    for start in settings:
        chain: list[str] = []
        name = start
        while isinstance(name, str) and isinstance(settings.get(name), Mapping):
            if name in chain:
                loop = chain[chain.index(name) :]
                if not reported.intersection(loop):
                    reported.update(loop)
                    path = " -> ".join(repr(n) for n in [*loop, name])
                    problems.append(
                        Problem(
                            E_ALIAS_LOOP,
                            f"{messages.subject(loop[0])} has an ALIAS loop: {path}.",
                            connection=loop[0],
                            key="ALIAS",
                            hint="Point one of them at a connection with a URL (or FAKE).",
                        )
                    )
                break
            chain.append(name)
            name = settings[name].get("ALIAS")
    return problems


def _has_option(entry: Mapping[str, Any], option: str) -> bool:
    options = entry.get("OPTIONS")
    return isinstance(options, Mapping) and option in options


def _check_combinations(name: str, entry: Mapping[str, Any]) -> list[Problem]:
    def conflict(key: str, message: str, hint: str) -> Problem:
        return Problem(
            E_CONFLICT, f"{messages.subject(name)} {message}", connection=name, key=key, hint=hint
        )

    problems: list[Problem] = []
    fake, cluster = entry.get("FAKE") is True, entry.get("CLUSTER") is True
    sentinel = "SENTINELS" in entry
    if fake:
        extra = sorted(k for k in entry if k in KNOWN_KEYS and k not in ("FAKE", "OPTIONS"))
        if extra:
            problems.append(
                conflict(
                    extra[0],
                    f"has FAKE and also {', '.join(extra)}, which a fake in-process server "
                    "cannot honour.",
                    "Remove them, or set FAKE to False.",
                )
            )
        return problems
    if entry.get("CLIENT_NAME") is False and _has_option(entry, "client_name"):
        problems.append(
            conflict(
                "CLIENT_NAME",
                "has CLIENT_NAME False and also OPTIONS['client_name'].",
                "Remove one of them: CLIENT_NAME False sends no name at all.",
            )
        )
    if cluster and sentinel:
        problems.append(
            conflict(
                "SENTINELS",
                "has both CLUSTER and SENTINELS; a connection is one or the other.",
                "Use CLUSTER with a URL of one cluster node, or SENTINELS with SERVICE_NAME.",
            )
        )
    if entry.get("READ_FROM_REPLICAS") and not cluster:
        problems.append(
            conflict(
                "READ_FROM_REPLICAS",
                "has READ_FROM_REPLICAS without CLUSTER; it applies to Redis Cluster only.",
                "Add CLUSTER: True, or remove READ_FROM_REPLICAS.",
            )
        )
    if sentinel:
        if "URL" in entry:
            problems.append(
                conflict(
                    "URL",
                    "has both SENTINELS and URL; the primary's address comes from the sentinels.",
                    "Remove URL; put the primary's db, username and password in OPTIONS.",
                )
            )
        if "SERVICE_NAME" not in entry:
            problems.append(
                conflict(
                    "SERVICE_NAME",
                    "has SENTINELS but no SERVICE_NAME.",
                    "Add SERVICE_NAME: the name the sentinels monitor (e.g. 'mymaster').",
                )
            )
    else:
        for key in ("SERVICE_NAME", "SENTINEL_KWARGS"):
            if key in entry:
                problems.append(
                    conflict(key, f"has {key} without SENTINELS.", "Add SENTINELS, or remove it.")
                )
        if "URL" not in entry:
            problems.append(
                Problem(
                    E_MISSING_URL,
                    f"{messages.subject(name)} has no URL.",
                    connection=name,
                    key="URL",
                    hint="Add URL (redis://, rediss:// or unix://), or use ALIAS, FAKE or "
                    "SENTINELS.",
                )
            )
    if cluster and entry.get("CLIENT_CACHE") not in (None, False):
        problems.append(
            conflict(
                "CLIENT_CACHE",
                "has CLIENT_CACHE with CLUSTER; the client-side cache is not built for Redis "
                "Cluster yet, and a cache that missed a node's invalidations would serve stale "
                "values.",
                "Remove CLIENT_CACHE (or set it to False) on cluster connections.",
            )
        )
    if cluster and isinstance(entry.get("URL"), str) and entry["URL"].startswith("unix:"):
        problems.append(
            conflict(
                "URL",
                "has CLUSTER with a unix:// URL; cluster nodes are reached over TCP.",
                "Use a redis:// or rediss:// URL of one cluster node.",
            )
        )
    return problems


# -- checks of one value -------------------------------------------------------------------


def _bad_type(name: str, key: str, value: object, expected: str) -> Problem:
    # URL, OPTIONS and SENTINEL_KWARGS may carry passwords: never echo them.
    shown = "***" if key in ("URL", "OPTIONS", "SENTINEL_KWARGS") else repr(value)
    return Problem(
        E_BAD_VALUE,
        f"{messages.subject(name)} has {key}={shown} ({type(value).__name__}); "
        f"expected {expected}.",
        connection=name,
        key=key,
    )


def _check_bool(name: str, key: str, value: object) -> Problem | None:
    return None if isinstance(value, bool) else _bad_type(name, key, value, "True or False")


def _check_count(minimum: int, maximum: int | None = None) -> Any:
    def check(name: str, key: str, value: object) -> Problem | None:
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and value >= minimum
            and (maximum is None or value <= maximum)
        ):
            return None
        bound = "" if maximum is None else f" and <= {maximum}"
        return _bad_type(name, key, value, f"a whole number >= {minimum}{bound}")

    return check


#: The most RETRY allows. Backoff is capped at 1 s, so 20 retries already hold a command
#: for 10-20 s, longer than a web request should wait; more only hides an outage.
MAX_RETRY = 20


MAX_SECONDS = 86_400 * 365  # beyond this, timestamps overflow the platform's time_t


def _check_seconds(*, allow_none: bool, minimum_exclusive: bool = False) -> Any:
    def check(name: str, key: str, value: object) -> Problem | None:
        if value is None and allow_none:
            return None
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and (value > 0 if minimum_exclusive else value >= 0)
            and value <= MAX_SECONDS
        ):
            return None
        bound = "> 0" if minimum_exclusive else ">= 0"
        expected = f"a number of seconds {bound} and <= {MAX_SECONDS}"
        return _bad_type(name, key, value, expected + (" or None" if allow_none else ""))

    return check


def _check_url(name: str, key: str, value: object) -> Problem | None:
    if not isinstance(value, str):
        return _bad_type(name, key, value, "a redis://, rediss:// or unix:// URL string")
    return check_url(name, key, value)


def _check_sentinels(name: str, key: str, value: object) -> Problem | None:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and isinstance(pair[0], str)
            and isinstance(pair[1], int)
            and not isinstance(pair[1], bool)
            for pair in value
        )
    )
    if not ok:
        return _bad_type(name, key, value, "a non-empty list of (host, port) pairs")
    assert isinstance(value, (list, tuple))
    for index, (host, port) in enumerate(value):
        if not host.strip() or not 1 <= port <= 65535:
            return Problem(
                E_BAD_VALUE,
                f"{messages.subject(name)} has SENTINELS[{index}]={(host, port)!r}; expected "
                "a non-empty host and a port from 1 to 65535.",
                connection=name,
                key=key,
            )
    return None


def _check_name(name: str, key: str, value: object) -> Problem | None:
    ok = isinstance(value, str) and value
    return None if ok else _bad_type(name, key, value, "a non-empty string")


def _check_kwargs(name: str, key: str, value: object) -> Problem | None:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        return _bad_type(name, key, value, "a dict of keyword arguments")
    return None


def _check_options(name: str, key: str, value: object) -> Problem | None:
    return _check_kwargs(name, key, value)


_CLIENT_CACHE_KEYS = ("MAX_ENTRIES", "MAX_BYTES", "PREFIXES")
#: A cache smaller than this could keep nothing (a value may use 1/16 of it).
MIN_CACHE_BYTES = 16 * 1024


def _check_client_cache(name: str, key: str, value: object) -> Problem | None:
    if isinstance(value, bool):
        return None
    expected = (
        "True, False or a dict with MAX_ENTRIES, MAX_BYTES and/or PREFIXES "
        '(e.g. {"MAX_ENTRIES": 10_000, "MAX_BYTES": 64 * 2**20})'
    )
    if not isinstance(value, Mapping):
        return _bad_type(name, key, value, expected)
    for inner, setting in value.items():
        where = f"CLIENT_CACHE[{inner!r}]"
        if inner not in _CLIENT_CACHE_KEYS:
            close = difflib.get_close_matches(str(inner), _CLIENT_CACHE_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return Problem(
                E_UNKNOWN_KEY,
                f"{messages.subject(name)} has {where}, which is not a client cache "
                f"setting{hint}; known: {', '.join(_CLIENT_CACHE_KEYS)}.",
                connection=name,
                key=key,
            )
        if inner == "PREFIXES":
            ok = (
                isinstance(setting, (list, tuple))
                and len(setting) > 0
                and all(isinstance(p, (str, bytes)) and p for p in setting)
            )
            if not ok:
                return _bad_type(name, where, setting, "a non-empty list of non-empty key prefixes")
            continue
        minimum = 1 if inner == "MAX_ENTRIES" else MIN_CACHE_BYTES
        problem: Problem | None = _check_count(minimum)(name, where, setting)
        if problem is not None:
            return problem
    return None


_VALUE_CHECKS = {
    "URL": _check_url,
    "FAKE": _check_bool,
    "CLUSTER": _check_bool,
    "READ_FROM_REPLICAS": _check_bool,
    "SENTINELS": _check_sentinels,
    "SERVICE_NAME": _check_name,
    "SENTINEL_KWARGS": _check_kwargs,
    "MAX_CONNECTIONS": _check_count(1),
    "BLOCKING": _check_bool,
    "POOL_TIMEOUT": _check_seconds(allow_none=False),
    "SOCKET_TIMEOUT": _check_seconds(allow_none=True, minimum_exclusive=True),
    "SOCKET_CONNECT_TIMEOUT": _check_seconds(allow_none=True, minimum_exclusive=True),
    "HEALTH_CHECK_INTERVAL": _check_seconds(allow_none=False),
    "RETRY": _check_count(0, MAX_RETRY),
    "CLIENT_NAME": _check_bool,
    "MULTIPLEX": _check_bool,
    "CLIENT_CACHE": _check_client_cache,
    "OPTIONS": _check_options,
}
