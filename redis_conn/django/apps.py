"""The Django app: settings go to the process-wide registry, lazily, and follow changes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from django.apps import AppConfig
from django.conf import ENVIRONMENT_VARIABLE, settings
from django.core import checks
from django.core.signals import setting_changed

from redis_conn.naming import prefix_from_module
from redis_conn.registry import connections

#: The Django setting holding the connections (CONTRACT section 1).
SETTINGS_NAME = "REDIS_CONNECTIONS"
#: The prefix of every connection's name on the server (CLIENT SETNAME prefix:name).
CLIENT_NAME_PREFIX_SETTING = "REDIS_CONN_CLIENT_NAME_PREFIX"


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

    The old pools are closed. ``ready()`` calls it, and so does every change of the setting
    (``override_settings``), so tests can point the connections at other servers.
    """
    connections.use_settings(load_settings, client_name_prefix=load_client_name_prefix)


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == SETTINGS_NAME:
        install()
    elif setting == CLIENT_NAME_PREFIX_SETTING:
        connections.reload()  # the prefix is read again with the settings; same loader


class RedisConnConfig(AppConfig):
    name = "redis_conn.django"
    label = "redis_conn"
    verbose_name = "Redis connections"

    def ready(self) -> None:
        from redis_conn.django.checks import check_settings

        # Only the loader is installed here: settings are read when a connection is first used.
        install()
        checks.register(check_settings, "redis_conn")
        setting_changed.connect(_setting_changed, dispatch_uid="redis_conn.setting_changed")
