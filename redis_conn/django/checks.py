"""System checks (``manage.py check``): the settings, read and judged without any network I/O.

Every problem :func:`redis_conn.config.validate` finds is an Error with the same number
(``redis_conn.E001`` ... ``redis_conn.E010``); the settings of the Django adapter itself are
``redis_conn.E1xx``; warnings are ``redis_conn.W0xx``.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.utils.module_loading import import_string

from redis_conn.config import (
    DEFAULTS,
    E_NOT_A_MAPPING,
    ConnectionSpec,
    Problem,
    parse,
    validate,
)
from redis_conn.django.reporting import SafeExceptionReporterFilter
from redis_conn.masking import connection_secrets
from redis_conn.request_scope import ON_ERROR_CHOICES

ON_FLUSH_ERROR_SETTING = "REDIS_CONN_ON_FLUSH_ERROR"
WORKER_THREADS_SETTING = "REDIS_CONN_WORKER_THREADS"


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
E101 = "REDIS_CONN_ON_FLUSH_ERROR is %r; it must be 'raise' or 'log'."
E101_HINT = (
    "'raise' (the default) lets a failed flush of the request pipeline become a 500 response; "
    "'log' keeps the response and logs the failed commands at ERROR."
)
E102 = "REDIS_CONN_WORKER_THREADS is %r; it must be a whole number >= 1."
E102_HINT = "Set it to the number of threads your server runs per process, or remove it."


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every check of this app; registered under the tag ``redis_conn``."""
    messages: list[CheckMessage] = []
    raw = getattr(settings, "REDIS_CONNECTIONS", None)
    threads, thread_errors = _worker_threads()
    messages.extend(thread_errors)
    if raw is None:
        messages.append(W001)
    else:
        problems = validate(raw)
        messages.extend(problem_to_error(problem) for problem in problems)
        if not problems:
            specs = list(parse(raw).values())
            messages.extend(_connection_warnings(specs, threads))
            messages.extend(_password_warnings(specs))
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


def _worker_threads() -> tuple[int, list[CheckMessage]]:
    value = getattr(settings, WORKER_THREADS_SETTING, None)
    if value is None:
        return default_worker_threads(), []
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value, []
    error = Error(E102 % (value,), hint=E102_HINT, obj=WORKER_THREADS_SETTING, id="redis_conn.E102")
    return default_worker_threads(), [error]


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
