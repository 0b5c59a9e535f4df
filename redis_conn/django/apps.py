"""The Django app: settings go to the process-wide registry, lazily, and follow changes.

The settings plumbing itself (names, loaders, following changes) is :mod:`redis_conn.django.conf`;
its loaders are importable from here too, as they always were.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

from redis_conn.django.conf import (
    CLIENT_NAME_PREFIX_SETTING,
    SETTINGS_NAME,
    default_client_name_prefix,
    follow_settings,
    install,
    load_client_name_prefix,
    load_settings,
)

__all__ = [
    "CLIENT_NAME_PREFIX_SETTING",
    "SETTINGS_NAME",
    "RedisConnConfig",
    "default_client_name_prefix",
    "install",
    "load_client_name_prefix",
    "load_settings",
]


class RedisConnConfig(AppConfig):
    name = "redis_conn.django"
    label = "redis_conn"
    verbose_name = "Redis connections"

    def ready(self) -> None:
        from redis_conn.django.checks import check_settings

        # Only the loader is installed here: settings are read when a connection is first used.
        follow_settings()
        checks.register(check_settings, "redis_conn")
