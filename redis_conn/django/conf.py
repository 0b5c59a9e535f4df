"""Django's settings for redis_conn: their names, how they are read, and following them.

The one place that knows which Django settings redis_conn reads: the app (``apps.py``), the
system checks, the middleware, the cache backend and ``redis_pools`` take names and loaders
from here. Settings are read lazily (``REDIS_CONNECTIONS`` when a connection is first used),
never at import time. Imports nothing else of ``redis_conn.django``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from django.conf import ENVIRONMENT_VARIABLE, settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from redis_conn.budget import WORKERS_SETTING
from redis_conn.naming import prefix_from_module
from redis_conn.registry import connections
from redis_conn.setting_names import (
    CLIENT_NAME_PREFIX_SETTING,
    CONNECTIONS_SETTING,
    ON_FLUSH_ERROR_SETTING,
    SERVER_TIMING_SETTING,
)

__all__ = [
    "CLIENT_NAME_PREFIX_SETTING",
    "ON_FLUSH_ERROR_SETTING",
    "SERVER_TIMING_SETTING",
    "SETTINGS_NAME",
    "WORKERS_SETTING",
    "WORKER_THREADS_SETTING",
    "caches_on",
    "default_client_name_prefix",
    "follow_setting_changes",
    "follow_settings",
    "install",
    "load_client_name_prefix",
    "load_settings",
]

#: The Django setting holding the connections (CONTRACT section 1).
SETTINGS_NAME = CONNECTIONS_SETTING
#: Threads a worker serves requests on (for the pool size check); Django-only.
WORKER_THREADS_SETTING = "REDIS_CONN_WORKER_THREADS"

_DISPATCH_UID = "redis_conn.setting_changed"
_followed = False  # whether follow_settings() ran in this process


def load_settings() -> Mapping[str, Any] | None:
    """``settings.REDIS_CONNECTIONS``; ``None`` (the embedded fake default) when it is unset."""
    value: Mapping[str, Any] | None = getattr(settings, SETTINGS_NAME, None)
    return value


def load_client_name_prefix() -> str | None:
    """``settings.REDIS_CONN_CLIENT_NAME_PREFIX``; unset: the project's package.

    The project is the top-level package of the settings module (``shop.settings`` ->
    ``shop``). ``None`` or ``""`` sends the bare connection names.
    """
    if hasattr(settings, CLIENT_NAME_PREFIX_SETTING):
        value: str | None = getattr(settings, CLIENT_NAME_PREFIX_SETTING)
        return value
    return default_client_name_prefix()


def default_client_name_prefix() -> str | None:
    # override_settings hides SETTINGS_MODULE (None); the environment still says it.
    module = getattr(settings, "SETTINGS_MODULE", None) or os.environ.get(ENVIRONMENT_VARIABLE)
    return prefix_from_module(module) if module and "." in module else None


def install() -> None:
    """Point the process-wide registry at Django's settings; read on first use, not now.

    The old pools are closed. :func:`follow_settings` calls it, and so does every change of
    the setting (``override_settings``), so tests can point the connections at other servers.
    """
    connections.use_settings(load_settings, client_name_prefix=load_client_name_prefix)


def follow_settings(*, unless_configured: bool = False) -> None:
    """Make the process-wide registry follow Django's settings, now and when they change.

    The app's ``ready()`` calls it. The cache backend calls it with ``unless_configured=True``
    for projects without ``"redis_conn.django"`` in INSTALLED_APPS: that call acts once per
    process at most (every cache made asks), and leaves alone a registry that someone
    configured already. The signal receiver is connected once (by its dispatch uid).
    """
    global _followed
    if unless_configured:
        if _followed:
            return
        _followed = True
        source = connections.source
        if source.loader is not None or source.settings is not None:
            return
    _followed = True
    install()
    setting_changed.connect(_setting_changed, dispatch_uid=_DISPATCH_UID)


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        install()
    elif setting == CLIENT_NAME_PREFIX_SETTING:
        connections.reload()  # the prefix is read again with the settings; same loader


class Follower(Protocol):
    """Something that redoes its work after the registry was given new settings: a test's
    :class:`~redis_conn.testing.FakeConnections`, which fakes the new connections in turn."""

    def follow(self) -> None: ...


def follow_setting_changes(follower: Follower) -> Callable[[], None]:
    """Call ``follower.follow()`` whenever REDIS_CONNECTIONS changes; returns the undo.

    The receiver of :func:`follow_settings` (connected in the app's ``ready()``, so earlier)
    points the registry back at the settings first; this one, connected later, runs after it.
    """

    def receiver(*, setting: str, **kwargs: Any) -> None:
        if setting == SETTINGS_NAME:
            follower.follow()

    uid = f"redis_conn.testing.follow.{id(follower)}"
    setting_changed.connect(receiver, weak=False, dispatch_uid=uid)

    def undo() -> None:
        setting_changed.disconnect(dispatch_uid=uid)

    return undo


def caches_on(backend: type[Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(alias, params)`` of every CACHES entry whose BACKEND is ``backend`` or a subclass.

    A BACKEND that cannot be imported is skipped: Django's own checks and cache handler
    report it.
    """
    for alias, params in getattr(settings, "CACHES", {}).items():
        try:
            found = import_string(params.get("BACKEND", ""))
        except ImportError:
            continue
        if isinstance(found, type) and issubclass(found, backend):
            yield alias, params
