"""No 'default' connection for request.redis, or none at all: caught by `check`, not by a request.

The test settings install RequestPipelineMiddleware.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.checks import Error, run_checks
from django.core.management import call_command
from django.core.management.base import CommandError

from redis_conn.django.checks import W005
from redis_conn.django.middleware import RequestPipelineMiddleware

URL = "redis://127.0.0.1:6390/0"
MIDDLEWARE = "redis_conn.django.middleware.RequestPipelineMiddleware"


class ProjectPipelineMiddleware(RequestPipelineMiddleware):
    """A project's own subclass of the middleware, listed instead of it."""


def redis_conn_messages() -> list[Any]:
    return [m for m in run_checks(tags=["redis_conn"]) if m.id.startswith("redis_conn.")]


def test_no_default_with_the_middleware_is_an_error(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {"cache": {"URL": URL}, "users": {"URL": URL}}
    assert redis_conn_messages() == [
        Error(
            "RequestPipelineMiddleware is in MIDDLEWARE, but REDIS_CONNECTIONS has no 'default' "
            "connection (it has 'cache', 'users'), and request.redis queues on 'default': the "
            "first request that uses it would raise ConnectionNotFound.",
            hint="Name one of the connections 'default', or add an alias to one, e.g. "
            "'default': {'ALIAS': 'cache'}.",
            obj="REDIS_CONNECTIONS",
            id="redis_conn.E103",
        )
    ]


def test_empty_with_the_middleware_is_the_same_error(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {}
    [message] = redis_conn_messages()
    assert message.id == "redis_conn.E103"
    assert message.msg.startswith(
        "RequestPipelineMiddleware is in MIDDLEWARE, but REDIS_CONNECTIONS has no 'default' "
        "connection (it is empty), "
    )
    assert message.hint.endswith("e.g. 'default': {'ALIAS': 'cache'}.")


def test_an_alias_named_default_is_enough(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {"cache": {"URL": URL}, "default": {"ALIAS": "cache"}}
    assert redis_conn_messages() == []


def test_a_subclass_of_the_middleware_counts(settings: Any) -> None:
    settings.MIDDLEWARE = [f"{__name__}.ProjectPipelineMiddleware"]
    settings.REDIS_CONNECTIONS = {"cache": {"URL": URL}}
    assert [m.id for m in redis_conn_messages()] == ["redis_conn.E103"]


def test_without_the_middleware_no_default_is_fine_and_empty_is_a_warning(settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != MIDDLEWARE]
    settings.REDIS_CONNECTIONS = {"cache": {"URL": URL}}
    assert redis_conn_messages() == []
    settings.REDIS_CONNECTIONS = {}
    assert redis_conn_messages() == [W005]
    assert W005.msg == (
        "REDIS_CONNECTIONS is empty: no Redis connection is configured, so every get_redis() "
        "raises ConnectionNotFound."
    )


def test_redis_pools_does_not_call_nothing_ok(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {}
    out = io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("redis_pools", stdout=out)
    assert str(excinfo.value) == (
        "REDIS_CONNECTIONS is empty: there is no Redis connection to report."
    )
    assert excinfo.value.returncode == 1
    assert out.getvalue() == ""
