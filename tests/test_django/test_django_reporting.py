"""Django's error reports list every setting: a password in a REDIS_CONNECTIONS URL must not
show there. redis_conn's reporter filter masks it; check W004 asks for the filter."""

from __future__ import annotations

import logging
import re
import string
import sys
from collections.abc import Iterator
from html import unescape
from typing import Any
from urllib.parse import quote

import django
import pytest
import redis
from django.core.checks import Warning
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.test import RequestFactory, override_settings
from django.urls import path
from django.utils.log import AdminEmailHandler
from django.views.debug import ExceptionReporter, get_default_exception_reporter_filter
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

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


def test_w004_for_a_password_in_options_too(settings: Any, redis_server_b: Any) -> None:
    """Django hides the setting OPTIONS['password'] by its name, but not the frame variables
    of redis-py's login (see the hung handshake below): W004 asks for the filter all the same."""
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = DJANGO_FILTER
    settings.REDIS_CONNECTIONS = {
        "default": {
            "URL": f"redis://127.0.0.1:{redis_server_b.port}/0",
            "OPTIONS": {
                "username": redis_server_b.acl_user,
                "password": redis_server_b.acl_password,
            },
        },
        "open": {"URL": f"redis://127.0.0.1:{redis_server_b.port}/1"},
    }
    assert [(m.id, m.obj) for m in check_settings() if m.id == "redis_conn.W004"] == [
        ("redis_conn.W004", "REDIS_CONNECTIONS['default']")
    ]
    assert get_redis("default").ping() is True
    text, _ = error_report(ValueError("a view failed"))
    assert redis_server_b.acl_password not in text  # Django hides OPTIONS['password'] itself
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = FILTER
    assert [m for m in check_settings() if m.id == "redis_conn.W004"] == []


# -- a server that hangs during the handshake ---------------------------------------------------
# redis-py sends AUTH and waits for the reply with the password in a local variable
# (``auth_args``); the timeout's traceback goes through that frame, so Django's DEBUG page and
# the HTML of its error e-mails list it. Whatever characters the password has, it must not
# show, in any form (as typed, percent-encoded, escaped inside a repr, HTML-escaped).

NASTY_PASSWORDS = [
    "Sup3r/Secret?#@: pw",
    "q'uo\"te\\back+slash=1&x",
    "ünï€ode %4G pw",
    "<b>&amp;html</b>",
    "colon:at@slash/",
]


def visible_forms(password: str) -> set[str]:
    """How a password can be written out on a page, before HTML escaping."""
    encoded = password.encode()
    return {
        password,
        quote(password, safe=""),
        repr(password)[1:-1],
        repr(password + "'\"")[1:-4],
        repr(encoded)[2:-1],
        repr(encoded + b"'\"")[2:-4],
    }


def shows(password: str, page: str) -> bool:
    return any(form in text for form in visible_forms(password) for text in (page, unescape(page)))


def hangs(request: HttpRequest) -> HttpResponse:
    get_redis("default").get("k")  # the server is stopped: times out in the AUTH handshake
    return HttpResponse("unreachable")


urlpatterns = [path("hangs/", hangs)]


def placements(password: str, port: int) -> list[tuple[str, dict[str, Any]]]:
    base = {"SOCKET_TIMEOUT": 0.2, "SOCKET_CONNECT_TIMEOUT": 0.2}
    return [
        (
            "OPTIONS",
            {
                "URL": f"redis://127.0.0.1:{port}/0",
                "OPTIONS": {"username": "default", "password": password},
                **base,
            },
        ),
        ("URL", {"URL": f"redis://default:{quote(password, safe='')}@127.0.0.1:{port}/0", **base}),
        (
            "query",
            {
                "URL": f"redis://127.0.0.1:{port}/0?username=default"
                f"&password={quote(password, safe='')}",
                **base,
            },
        ),
    ]


@pytest.fixture
def hung_server(killable_server: Any) -> Iterator[Any]:
    killable_server.pause()
    try:
        yield killable_server
    finally:
        killable_server.resume()


@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_a_hung_handshake_never_shows_the_password_on_the_debug_page_or_in_the_e_mail(
    settings: Any, hung_server: Any, mailoutbox: list[Any], password: str
) -> None:
    settings.ROOT_URLCONF = __name__
    # Django 6.0 deprecates (name, address) pairs in ADMINS, 4.2 and 5.2 need them.
    pairs = django.VERSION < (6, 0)
    settings.ADMINS = [("Ops", "ops@example.com")] if pairs else ["ops@example.com"]
    if django.VERSION >= (6, 1):  # MAILERS replaces EMAIL_BACKEND
        settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    client = DjangoClient(raise_request_exception=False)
    handler = AdminEmailHandler(include_html=True)
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        for index, (where, entry) in enumerate(placements(password, hung_server.port)):
            settings.REDIS_CONNECTIONS = {"default": entry}
            settings.DEBUG = True
            if index == 0:  # Django's own filter shows it (else this test would prove nothing)
                settings.DEFAULT_EXCEPTION_REPORTER_FILTER = DJANGO_FILTER
                get_default_exception_reporter_filter.cache_clear()
                page = client.get("/hangs/").content.decode()
                assert "auth_args" in page
                assert shows(password, page), f"{where}: the test did not reach the handshake"
            # Ours does not, neither on the DEBUG page nor in the error e-mail.
            settings.DEFAULT_EXCEPTION_REPORTER_FILTER = FILTER
            get_default_exception_reporter_filter.cache_clear()
            page = client.get("/hangs/").content.decode()
            assert "auth_args" in page and "Timeout reading from socket" in page
            assert not shows(password, page), f"{where}: the password is on the DEBUG page"
            settings.DEBUG = False
            mailoutbox.clear()
            response = client.get("/hangs/")
            assert response.status_code == 500
            # Django's own handler (text) and ours (with the HTML report attached).
            htmls = [html for mail in mailoutbox for html, _ in mail.alternatives]
            assert len(htmls) == 1 and "auth_args" in htmls[0]
            for mail in mailoutbox:
                texts = [mail.subject, mail.body, *(html for html, _ in mail.alternatives)]
                assert not any(shows(password, t) for t in texts), f"{where}: in an e-mail"
    finally:
        logger.removeHandler(handler)


# -- property: any shape of frame variable, any password -----------------------------------------

SPECIALS = [*"/?#@: %&+='\"\\<>[]{}|^`~!$*(),;", "ü", "€", "\t", "\n"]
words = st.text(string.ascii_letters + string.digits, min_size=5, max_size=8).map(
    lambda w: "Qz" + w
)
passwords = st.lists(st.tuples(words, st.sampled_from(SPECIALS)), min_size=1, max_size=3).flatmap(
    lambda pairs: words.map(lambda last: "".join(w + c for w, c in pairs) + last)
)


class Holder:
    """An object whose repr shows what it holds (as many connection-like objects do)."""

    def __init__(self, held: object) -> None:
        self.held = held

    def __repr__(self) -> str:
        return f"Holder(held={self.held!r})"


def shapes(password: str) -> list[object]:
    encoded = password.encode()
    long_text = f"AUTH default {password} " + "x " * 60  # pprint wraps it over lines
    return [
        password,
        encoded,
        ("default", password),
        ["AUTH", encoded],
        {"password": password, "nested": {"args": ("AUTH", "default", password)}},
        {password: "as a key"},
        {frozenset({password})},
        Holder(password),
        [Holder(encoded), long_text],
        long_text,
        f"redis://default:{quote(password, safe='')}@127.0.0.1:6390/0",
    ]


def failing_frame(**variables: Any) -> None:
    raise RuntimeError("a view failed")


@hypothesis_settings(max_examples=60, deadline=None, database=None)
@given(password=passwords, where=st.sampled_from(["OPTIONS", "URL", "SENTINEL_KWARGS"]))
def test_frame_variables_never_show_a_configured_password(password: str, where: str) -> None:
    entry: dict[str, Any] = {
        "OPTIONS": {"URL": "redis://127.0.0.1:6390/0", "OPTIONS": {"password": password}},
        "URL": {"URL": f"redis://default:{quote(password, safe='')}@127.0.0.1:6390/0"},
        "SENTINEL_KWARGS": {
            "SENTINELS": [("127.0.0.1", 26390)],
            "SERVICE_NAME": "m",
            "SENTINEL_KWARGS": {"password": password},
        },
    }[where]
    with override_settings(
        REDIS_CONNECTIONS={"default": entry}, DEFAULT_EXCEPTION_REPORTER_FILTER=FILTER, DEBUG=True
    ):
        get_default_exception_reporter_filter.cache_clear()
        try:
            failing_frame(**{f"v{i}": shape for i, shape in enumerate(shapes(password))})
        except RuntimeError:
            reporter = ExceptionReporter(RequestFactory().get("/"), *sys.exc_info())
        pages = [reporter.get_traceback_text(), reporter.get_traceback_html()]
    get_default_exception_reporter_filter.cache_clear()
    pieces = re.findall(r"Qz[A-Za-z0-9]+", password)
    assert "Holder(held=" in unescape(pages[1])  # the HTML lists the variables, masked
    for page in pages:
        assert not shows(password, page)
        for piece in pieces:
            assert piece not in page and piece not in unescape(page), (piece, password)
