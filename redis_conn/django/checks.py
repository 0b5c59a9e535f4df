"""System checks (``manage.py check``): the settings, read and judged without any network I/O.

Every problem :func:`redis_conn.config.validate` finds is an Error with the same number
(``redis_conn.E001`` ... ``redis_conn.E010``); the settings of the Django adapter itself are
``redis_conn.E1xx``; warnings are ``redis_conn.W0xx``. CACHES entries on redis_conn's cache
backend are ``redis_conn.E020``/``E021`` and ``redis_conn.W020``.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.utils.module_loading import import_string

from redis_conn.budget import BUDGET_SHARE, WORKERS_ENVIRONMENT, WORKERS_SETTING, known_workers
from redis_conn.config import (
    DEFAULTS,
    E_NOT_A_MAPPING,
    EMBEDDED_DEFAULT,
    ConnectionSpec,
    Problem,
    parse,
    validate,
)
from redis_conn.django.conf import (
    CLIENT_NAME_PREFIX_SETTING,
    ON_FLUSH_ERROR_SETTING,
    SERVER_TIMING_SETTING,
    WORKER_THREADS_SETTING,
    caches_on,
)
from redis_conn.django.reporting import SafeExceptionReporterFilter
from redis_conn.masking import connection_secrets
from redis_conn.request_scope import ON_ERROR_CHOICES
from redis_conn.setting_names import misspelled_connections_setting

#: What a Redis server accepts unless its maxclients says otherwise.
DEFAULT_MAXCLIENTS = 10_000


def default_worker_threads() -> int:
    """Threads a worker may serve requests on when REDIS_CONN_WORKER_THREADS is not set.

    Python's own default for a thread pool (``ThreadPoolExecutor``, which asgiref and asyncio
    use to run synchronous code): ``min(32, cpu_count + 4)``.
    """
    return min(32, (os.cpu_count() or 1) + 4)


W001 = Warning(
    "REDIS_CONNECTIONS is not set, so the 'default' connection is an in-process fake server "
    "(fakeredis): its data lives in this process only, is lost on restart and is not shared "
    "with other workers.",
    hint="Define REDIS_CONNECTIONS in your settings, e.g. "
    "{'default': {'URL': 'redis://127.0.0.1:6379/0'}}.",
    obj="REDIS_CONNECTIONS",
    id="redis_conn.W001",
)
E107 = (
    "The setting %s is not read by redis_conn, and REDIS_CONNECTIONS is not set, so the "
    "'default' Redis connection is an in-process fake server (fakeredis)."
)
E107_HINT = "Did you mean REDIS_CONNECTIONS?"
W002 = (
    "Redis connection %r has BLOCKING=False and MAX_CONNECTIONS=%d, fewer than the %d threads a "
    "worker may serve requests on; when more than %d of them use it at once, the others fail "
    "at once with PoolExhausted."
)
W002_HINT = (
    "Raise MAX_CONNECTIONS to at least %d, or set BLOCKING to True to wait up to POOL_TIMEOUT "
    "for a free connection, or set REDIS_CONN_WORKER_THREADS to the number of threads your "
    "server runs per process."
)
W003 = (
    "Redis connection %r is FAKE while DEBUG is False: its data lives in this process only, "
    "is lost on restart and is not shared with other workers."
)
W003_HINT = "Give it a URL of a real server, or silence redis_conn.W003 if that is intended."
W004 = (
    "Redis connection %r has a password, and Django's error pages and error e-mails can show "
    "it: they list every setting with its value, and the local variables of each frame of "
    "the traceback (redis-py holds the password in one while it logs in). "
    "DEFAULT_EXCEPTION_REPORTER_FILTER (%s) masks neither."
)
W004_HINT = (
    "Set DEFAULT_EXCEPTION_REPORTER_FILTER = "
    "'redis_conn.django.reporting.SafeExceptionReporterFilter'."
)
E001_HINT = (
    "Map each connection name to a dict of settings, e.g. "
    "REDIS_CONNECTIONS = {'default': {'URL': 'redis://127.0.0.1:6379/0'}}."
)
W005 = Warning(
    "REDIS_CONNECTIONS is empty: no Redis connection is configured, so every "
    "get_redis() raises ConnectionNotFound.",
    hint="Define the connections, e.g. {'default': {'URL': 'redis://127.0.0.1:6379/0'}}, or "
    "remove REDIS_CONNECTIONS for an in-process fake 'default' (redis_conn.W001).",
    obj="REDIS_CONNECTIONS",
    id="redis_conn.W005",
)
E103 = (
    "RequestPipelineMiddleware is in MIDDLEWARE, but REDIS_CONNECTIONS has no 'default' "
    "connection%s, and request.redis queues on 'default': the first request that uses it "
    "would raise ConnectionNotFound."
)
E103_HINT = (
    "Name one of the connections 'default', or add an alias to one, e.g. 'default': {'ALIAS': %r}."
)
MIDDLEWARE_PATH = "redis_conn.django.middleware.RequestPipelineMiddleware"
E101 = "REDIS_CONN_ON_FLUSH_ERROR is %r; it must be 'raise' or 'log'."
E101_HINT = (
    "'raise' (the default) lets a failed flush of the request pipeline become a 500 response; "
    "'log' keeps the response and logs the failed commands at ERROR."
)
E020_HINT = (
    "OPTIONS of redis_conn's RedisCache: SERIALIZER ('pickle', 'json', 'msgpack', a "
    "django-redis class path or a dotted path), COMPRESSOR (None, 'zlib', 'gzip', 'lzma', "
    "'lz4', 'zstd', a django-redis class path or a dotted path), COMPRESS_MIN_LEN, "
    "PICKLE_VERSION, IGNORE_EXCEPTIONS, LOG_IGNORED_EXCEPTIONS. Connection settings (URL, "
    "pool size, timeouts) belong in REDIS_CONNECTIONS."
)
E021 = "CACHES[%r] has LOCATION %r, which is not a connection of REDIS_CONNECTIONS."
E021_HINT = "Set LOCATION to one of %s (or leave it out for 'default')."
W020 = (
    "CACHES[%r] is on Redis connection %r, which is FAKE while DEBUG is False: each worker "
    "process has a cache of its own, so cached values and sessions differ between workers "
    "and are lost on restart."
)
W020_HINT = "Give connection %r a URL of a real server, or silence redis_conn.W020."
E102 = "REDIS_CONN_WORKER_THREADS is %r; it must be a whole number >= 1."
E102_HINT = "Set it to the number of threads your server runs per process, or remove it."
E104 = "REDIS_CONN_WORKERS is %r; it must be a whole number >= 1."
E104_HINT = "Set it to the number of worker processes your server runs, or remove it."
E105 = "REDIS_CONN_SERVER_TIMING is %r; it must be True or False."
E106 = "REDIS_CONN_CLIENT_NAME_PREFIX is %r; it must be a string or None."
E106_HINT = (
    "Leave it out to use the project's package, or set None (or '') to send the bare "
    "connection names."
)
W006 = (
    "%s may open %d connections to %s: MAX_CONNECTIONS %s per worker process x %d workers "
    "(%s), more than 80%% of the %d clients a Redis server accepts by default (maxclients)."
)
W006_HINT = (
    "Lower MAX_CONNECTIONS or run fewer workers; if the server's maxclients is higher, "
    "silence redis_conn.W006. 'manage.py redis_pools --workers %d' checks the budget against "
    "the server's real maxclients."
)


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every check of this app; registered under the tag ``redis_conn``."""
    messages: list[CheckMessage] = []
    raw = getattr(settings, "REDIS_CONNECTIONS", None)
    threads, thread_errors = _worker_threads()
    messages.extend(thread_errors)
    if raw is None:
        typo = misspelled_connections_setting(dir(settings))
        if typo is not None:
            messages.append(Error(E107 % (typo,), hint=E107_HINT, obj=typo, id="redis_conn.E107"))
        messages.append(W001)
        messages.extend(_cache_messages(parse(EMBEDDED_DEFAULT)))
    else:
        problems = validate(raw)
        messages.extend(problem_to_error(problem) for problem in problems)
        if not problems:
            parsed = parse(raw)
            specs = list(parsed.values())
            messages.extend(_default_for_the_middleware(specs))
            messages.extend(_connection_warnings(specs, threads))
            messages.extend(_password_warnings(specs))
            messages.extend(_cache_messages(parsed))
            messages.extend(_budget_warnings(specs))
    messages.extend(_observability_errors())
    on_error = getattr(settings, ON_FLUSH_ERROR_SETTING, "raise")
    if on_error not in ON_ERROR_CHOICES:
        messages.append(
            Error(
                E101 % (on_error,), hint=E101_HINT, obj=ON_FLUSH_ERROR_SETTING, id="redis_conn.E101"
            )
        )
    return messages


def problem_to_error(problem: Problem) -> Error:
    """A configuration problem of the core as a system check Error with the same number."""
    hint = problem.hint
    if hint is None and problem.key in DEFAULTS:
        hint = f"Leave {problem.key} out to use the default, {DEFAULTS[problem.key]!r}."
    elif hint is None and problem.id == E_NOT_A_MAPPING:
        hint = E001_HINT
    obj = (
        "REDIS_CONNECTIONS"
        if problem.connection is None
        else f"REDIS_CONNECTIONS[{problem.connection!r}]"
    )
    return Error(problem.message, hint=hint, obj=obj, id=f"redis_conn.{problem.id}")


def _default_for_the_middleware(specs: list[ConnectionSpec]) -> list[CheckMessage]:
    names = [spec.name for spec in specs]
    if "default" in names:
        return []
    if not _middleware_installed():
        return [] if names else [W005]
    detail = " (it is empty)" if not names else f" (it has {', '.join(map(repr, names))})"
    hint = E103_HINT % (names[0] if names else "cache",)
    return [Error(E103 % (detail,), hint=hint, obj="REDIS_CONNECTIONS", id="redis_conn.E103")]


def _middleware_installed() -> bool:
    from redis_conn.django.middleware import RequestPipelineMiddleware

    for path in getattr(settings, "MIDDLEWARE", None) or ():
        if path == MIDDLEWARE_PATH:
            return True
        try:
            middleware = import_string(path)
        except ImportError:
            continue  # Django reports a middleware it cannot import when it loads it
        if isinstance(middleware, type) and issubclass(middleware, RequestPipelineMiddleware):
            return True
    return False


def _worker_threads() -> tuple[int, list[CheckMessage]]:
    value = getattr(settings, WORKER_THREADS_SETTING, None)
    if value is None:
        return default_worker_threads(), []
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value, []
    error = Error(E102 % (value,), hint=E102_HINT, obj=WORKER_THREADS_SETTING, id="redis_conn.E102")
    return default_worker_threads(), [error]


def _observability_errors() -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    workers = getattr(settings, WORKERS_SETTING, None)
    if workers is not None and known_workers(workers) is None:
        errors.append(
            Error(E104 % (workers,), hint=E104_HINT, obj=WORKERS_SETTING, id="redis_conn.E104")
        )
    timing = getattr(settings, SERVER_TIMING_SETTING, False)
    if not isinstance(timing, bool):
        errors.append(Error(E105 % (timing,), obj=SERVER_TIMING_SETTING, id="redis_conn.E105"))
    prefix = getattr(settings, CLIENT_NAME_PREFIX_SETTING, None)
    if prefix is not None and not isinstance(prefix, str):
        errors.append(
            Error(
                E106 % (prefix,),
                hint=E106_HINT,
                obj=CLIENT_NAME_PREFIX_SETTING,
                id="redis_conn.E106",
            )
        )
    return errors


def _budget_warnings(specs: list[ConnectionSpec]) -> list[CheckMessage]:
    """Warn when the pools of every worker could not fit in a default Redis server."""
    setting = getattr(settings, WORKERS_SETTING, None)
    workers = known_workers(setting)
    if workers is None:
        return []
    source = WORKERS_SETTING if setting is not None else f"${WORKERS_ENVIRONMENT}"
    servers: dict[str, list[ConnectionSpec]] = defaultdict(list)
    for spec in specs:
        if spec.alias_of is None and spec.kind != "fake":
            servers[_server_of(spec)].append(spec)
    messages: list[CheckMessage] = []
    for server, group in servers.items():
        per_worker = sum(spec.max_connections for spec in group)
        if per_worker * workers <= BUDGET_SHARE * DEFAULT_MAXCLIENTS:
            continue
        names = " and ".join(repr(spec.name) for spec in group)
        plural = "Redis connections" if len(group) > 1 else "Redis connection"
        sizes = " + ".join(str(spec.max_connections) for spec in group)
        messages.append(
            Warning(
                W006
                % (
                    f"{plural} {names}",
                    per_worker * workers,
                    server,
                    sizes if len(group) == 1 else f"{sizes} = {per_worker}",
                    workers,
                    source,
                    DEFAULT_MAXCLIENTS,
                ),
                hint=W006_HINT % (workers,),
                obj=f"REDIS_CONNECTIONS[{group[0].name!r}]",
                id="redis_conn.W006",
            )
        )
    return messages


def _server_of(spec: ConnectionSpec) -> str:
    """Which server a connection's pool opens its sockets on, as far as settings say."""
    if spec.kind == "sentinel" or spec.url is None:
        return spec.target
    parts = urlsplit(spec.url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    node = " (each cluster node)" if spec.kind == "cluster" else ""
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{node}"


def _connection_warnings(specs: list[ConnectionSpec], threads: int) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    for spec in specs:
        if spec.alias_of is not None:  # an alias shares its target's pool: judged there
            continue
        obj = f"REDIS_CONNECTIONS[{spec.name!r}]"
        if spec.kind == "fake":
            if not settings.DEBUG:
                messages.append(
                    Warning(W003 % (spec.name,), hint=W003_HINT, obj=obj, id="redis_conn.W003")
                )
            continue
        if not spec.blocking and spec.max_connections < threads:
            n = spec.max_connections
            messages.append(
                Warning(
                    W002 % (spec.name, n, threads, n),
                    hint=W002_HINT % (threads,),
                    obj=obj,
                    id="redis_conn.W002",
                )
            )
    return messages


def _password_warnings(specs: list[ConnectionSpec]) -> list[CheckMessage]:
    reporter = getattr(settings, "DEFAULT_EXCEPTION_REPORTER_FILTER", "")
    try:
        if issubclass(import_string(reporter), SafeExceptionReporterFilter):
            return []
    except (ImportError, TypeError):
        pass  # Django reports a filter it cannot import when it first needs it
    return [
        Warning(
            W004 % (spec.name, reporter),
            hint=W004_HINT,
            obj=f"REDIS_CONNECTIONS[{spec.name!r}]",
            id="redis_conn.W004",
        )
        for spec in specs
        if spec.alias_of is None
        and connection_secrets(spec.url, spec.options, spec.sentinel_kwargs)
    ]


def _cache_messages(specs: dict[str, ConnectionSpec]) -> list[CheckMessage]:
    """CACHES entries on redis_conn's backend: their OPTIONS and the connection they name."""
    from redis_conn.django.cache import RedisCache
    from redis_conn.django.cache_options import option_problems

    messages: list[CheckMessage] = []
    for alias, params in caches_on(RedisCache):
        obj = f"CACHES[{alias!r}]"
        messages.extend(
            Error(problem, hint=E020_HINT, obj=obj, id="redis_conn.E020")
            for problem in option_problems(params.get("OPTIONS", {}))
        )
        location = params.get("LOCATION") or "default"
        spec = specs.get(location) if isinstance(location, str) else None
        if spec is None:
            names = ", ".join(repr(name) for name in specs)
            messages.append(
                Error(
                    E021 % (alias, location),
                    hint=E021_HINT % (names,),
                    obj=obj,
                    id="redis_conn.E021",
                )
            )
        elif spec.kind == "fake" and not settings.DEBUG:
            messages.append(
                Warning(
                    W020 % (alias, location),
                    hint=W020_HINT % (spec.root,),
                    obj=obj,
                    id="redis_conn.W020",
                )
            )
    return messages
