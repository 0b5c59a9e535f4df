"""The app: settings read lazily, once; override_settings and setting_changed rebuild."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.test import override_settings

from redis_conn.django.apps import RedisConnConfig
from redis_conn.django.middleware import RequestPipelineMiddleware
from redis_conn.exceptions import ConfigurationError
from redis_conn.registry import connections, get_redis


def test_the_app_is_installed_with_label_redis_conn() -> None:
    config = apps.get_app_config("redis_conn")
    assert isinstance(config, RedisConnConfig)
    assert config.name == "redis_conn.django"


def test_settings_are_read_on_first_use_not_at_start(settings: Any) -> None:
    # Invalid settings do not fail when set: nothing reads them until a connection is used.
    settings.REDIS_CONNECTIONS = {"default": {"FAKE": True, "PORT": 1}}
    with pytest.raises(ConfigurationError):
        connections.names()


def test_settings_are_read_once(settings: Any) -> None:
    value = {"default": {"FAKE": True}}
    settings.REDIS_CONNECTIONS = value
    client = get_redis()
    value["users"] = {"FAKE": True}  # not seen: the settings were read already
    assert connections.names() == ["default"]
    assert get_redis() is client


def test_override_settings_points_the_registry_at_other_servers(
    redis_server: Any, server_a: Any
) -> None:
    get_redis().set("where", "fake")
    with override_settings(REDIS_CONNECTIONS={"default": {"URL": redis_server.url}}):
        assert connections.spec("default").kind == "standalone"
        assert get_redis().get("where") is None
        get_redis().set("where", "real")
    assert connections.spec("default").kind == "fake"
    assert server_a.get("where") == "real"


def test_a_change_of_another_setting_keeps_the_pools(settings: Any) -> None:
    client = get_redis()
    settings.REDIS_CONN_ON_FLUSH_ERROR = "log"
    assert get_redis() is client


def test_the_old_pools_are_closed_when_the_setting_changes(
    settings: Any, redis_server: Any, server_a: Any
) -> None:
    settings.REDIS_CONNECTIONS = {"default": {"URL": redis_server.url}}
    client = get_redis()
    client.ping()
    assert len(server_a.client_list()) == 2  # this test's client and the registry's
    settings.REDIS_CONNECTIONS = {"default": {"URL": redis_server.url}, "b": {"FAKE": True}}
    assert get_redis() is not client
    # The server notices the closed socket on its own schedule: poll, boundedly.
    deadline = time.monotonic() + 5
    while len(server_a.client_list()) != 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server_a.client_list()) == 1


def test_a_registry_configured_by_hand_follows_settings_again_when_they_change(
    settings: Any,
) -> None:
    connections.configure({"manual": {"FAKE": True}})
    assert connections.names() == ["manual"]
    settings.REDIS_CONNECTIONS = {"default": {"FAKE": True}, "users": {"FAKE": True}}
    assert connections.names() == ["default", "users"]


def test_invalid_settings_raise_configuration_error_on_first_use(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {"default": {"URL": "redis://127.0.0.1:6390/0", "PORT": 1}}
    with pytest.raises(ConfigurationError) as excinfo:
        get_redis()
    assert str(excinfo.value) == (
        "Redis connection 'default' has an unknown key 'PORT'. HINT: Valid keys: URL, ALIAS, "
        "FAKE, CLUSTER, READ_FROM_REPLICAS, SENTINELS, SERVICE_NAME, SENTINEL_KWARGS, "
        "MAX_CONNECTIONS, BLOCKING, POOL_TIMEOUT, SOCKET_TIMEOUT, SOCKET_CONNECT_TIMEOUT, "
        "HEALTH_CHECK_INTERVAL, RETRY, CLIENT_NAME, MULTIPLEX, CLIENT_CACHE, OPTIONS."
    )


def test_the_middleware_refuses_to_run_without_the_app() -> None:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    with (
        override_settings(INSTALLED_APPS=["django.contrib.contenttypes"]),
        pytest.raises(ImproperlyConfigured) as excinfo,
    ):
        RequestPipelineMiddleware(view)
    assert str(excinfo.value) == (
        "RequestPipelineMiddleware needs the redis_conn app: add 'redis_conn.django' to "
        "INSTALLED_APPS so that REDIS_CONNECTIONS is read and checked."
    )
