"""Django's error reports list every setting: a password in a REDIS_CONNECTIONS URL must not
show there. redis_conn's reporter filter masks it; check W004 asks for the filter."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.checks import Warning
from django.test import RequestFactory
from django.views.debug import ExceptionReporter, get_default_exception_reporter_filter

from redis_conn.django.checks import W004, W004_HINT, check_settings
from redis_conn.registry import get_redis

FILTER = "redis_conn.django.reporting.SafeExceptionReporterFilter"
DJANGO_FILTER = "django.views.debug.SafeExceptionReporterFilter"


def error_report(view_error: BaseException) -> tuple[str, str]:
    """The text and HTML of the report Django builds for a 500 (the e-mail and DEBUG page)."""
    get_default_exception_reporter_filter.cache_clear()  # Django builds the filter once
    request = RequestFactory().get("/orders/")
    try:
        raise view_error
    except type(view_error):
        reporter = ExceptionReporter(request, *sys.exc_info())
    return reporter.get_traceback_text(), reporter.get_traceback_html()


@pytest.fixture(autouse=True)
def rebuilt_filter() -> Iterator[None]:
    """Django builds the reporter filter once (lru_cache); these tests change the setting."""
    yield
    get_default_exception_reporter_filter.cache_clear()


@pytest.fixture
def acl_settings(settings: Any, redis_server_b: Any) -> Any:
    """REDIS_CONNECTIONS with the ACL user's password in a URL, a query string and a list."""
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": redis_server_b.acl_url},
        "users": {"ALIAS": "default"},
        "query": {
            "URL": f"redis://127.0.0.1:{redis_server_b.port}/0"
            f"?username={redis_server_b.acl_user}&password={redis_server_b.acl_password}"
        },
    }
    settings.EXTRA_URLS = [redis_server_b.acl_url]
    return settings


def test_the_password_reaches_the_server(acl_settings: Any, redis_server_b: Any) -> None:
    # Else the reports below would prove nothing: the password in the URL is the real one.
    assert get_redis("users").set("reported", "1") is True
    assert get_redis("query").get("reported") == b"1"
    wrong = redis_server_b.acl_url.replace(redis_server_b.acl_password, "wrong")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(wrong).ping()


def test_djangos_own_filter_shows_the_password(acl_settings: Any, redis_server_b: Any) -> None:
    acl_settings.DEFAULT_EXCEPTION_REPORTER_FILTER = DJANGO_FILTER
    text, html = error_report(ValueError("a view failed"))
    assert redis_server_b.acl_password in text
    assert redis_server_b.acl_password in html


def test_our_filter_masks_it_in_text_and_html(acl_settings: Any, redis_server_b: Any) -> None:
    acl_settings.DEFAULT_EXCEPTION_REPORTER_FILTER = FILTER
    text, html = error_report(ValueError("a view failed"))
    for report in (text, html):
        assert redis_server_b.acl_password not in report
        assert "REDIS_CONNECTIONS" in report and "***" in report
    assert f"redis://{redis_server_b.acl_user}:***@127.0.0.1:{redis_server_b.port}/0" in text
    # Django's own masking still applies.
    assert acl_settings.SECRET_KEY not in text


def test_w004_asks_for_the_filter_when_a_url_holds_a_password(acl_settings: Any) -> None:
    acl_settings.DEFAULT_EXCEPTION_REPORTER_FILTER = DJANGO_FILTER
    warnings = [m for m in check_settings() if m.id == "redis_conn.W004"]
    assert warnings == [
        Warning(
            W004 % (name, DJANGO_FILTER),
            hint=W004_HINT,
            obj=f"REDIS_CONNECTIONS[{name!r}]",
            id="redis_conn.W004",
        )
        for name in ("default", "query")  # an alias has no URL of its own
    ]
    acl_settings.DEFAULT_EXCEPTION_REPORTER_FILTER = FILTER
    assert [m for m in check_settings() if m.id == "redis_conn.W004"] == []


def test_no_w004_without_a_password_in_a_url(settings: Any, redis_server_b: Any) -> None:
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = DJANGO_FILTER
    settings.REDIS_CONNECTIONS = {
        "default": {
            "URL": f"redis://127.0.0.1:{redis_server_b.port}/0",
            "OPTIONS": {
                "username": redis_server_b.acl_user,
                "password": redis_server_b.acl_password,
            },
        }
    }
    assert [m for m in check_settings() if m.id == "redis_conn.W004"] == []
    assert get_redis("default").ping() is True
    text, _ = error_report(ValueError("a view failed"))
    assert redis_server_b.acl_password not in text  # Django hides OPTIONS['password'] itself
