"""Production proof, secrets: a password planted in every kind of URL (standalone, unix, TLS,
Sentinel, Cluster, an alias, a server that is down, a wrong password) never appears in the CLI
text and JSON (Django and Flask), the health view, log records at every level, exception
messages, reprs and tracebacks, or the reprs of clients, pools, connections and pipelines.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import string
import traceback
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command
from django.http import HttpRequest, HttpResponse
from django.test import Client as DjangoClient
from django.test import RequestFactory
from django.urls import path
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from redis_conn import ConfigurationError, ConnectionRegistry, PipelineError, PoolExhausted
from redis_conn.async_pipeline import async_pipeline
from redis_conn.config import parse, validate
from redis_conn.django.checks import check_settings
from redis_conn.django.views import health as health_view
from redis_conn.flask import RedisConn
from redis_conn.flask.extension import app_registry
from redis_conn.health_text import render
from redis_conn.masking import mask_url
from redis_conn.pipeline import pipeline
from redis_conn.registry import connections
from redis_conn.request_scope import PipelineProxy, RequestPipeline

try:
    from servers import ClusterDeployment, RedisServer, SentinelDeployment
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import ClusterDeployment, RedisServer, SentinelDeployment

PLANTED = "pl4nted-Pa55word-Xq7"  # accepted by the test servers' passwordless default user
SENTINEL_PLANTED = "s3ntinel-Pa55word-Zk4"
# Every character that cuts a URL short, must be escaped in a repr, or means something in a
# query string or in HTML; in URLs they are percent-encoded (raw, they are a
# ConfigurationError, see test_configuration_errors).
NASTY = "N4styPw/Qx9Lm?#@: Zk8Jw%4G'\"<wörd>&+="
SENTINEL_NASTY = "S3ntPw/Rt5Ku?#@: Hy6Fd"
WRONG = "wr0ng-Pa55word-Jm2"
ACL_PASSWORD = "app-s3cret-pw"  # server B's real ACL user
SECRETS = (PLANTED, SENTINEL_PLANTED, NASTY, SENTINEL_NASTY, WRONG, ACL_PASSWORD)


def visible_forms(secret: str) -> set[str]:
    """The secret as typed, percent-encoded, escaped inside a repr, and each piece of it
    between two special characters that is long enough to be recognised (>= 5)."""
    forms = {secret, quote(secret, safe=""), repr(secret)[1:-1], repr(secret + "'\"")[1:-4]}
    forms.update(piece for piece in re.split(r"[^\w]+", secret) if len(piece) >= 5)
    return forms


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        for form in visible_forms(secret):
            assert form not in text, f"a password ({form!r}) shows in {where}: {text[:2000]}"


def exception_text(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, args and the whole chained traceback."""
    parts = [str(exc), repr(exc), repr(exc.args), *traceback.format_exception(exc)]
    for attr in ("errors", "problems", "failed_commands"):
        if hasattr(exc, attr):
            parts.append(repr(getattr(exc, attr)))
    return "\n".join(parts)


@pytest.fixture(params=["plain", "nasty"])
def password(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(the primary's password, the sentinels' password): plain, or every nasty character."""
    return (PLANTED, SENTINEL_PLANTED) if request.param == "plain" else (NASTY, SENTINEL_NASTY)


@pytest.fixture
def planted(
    password: tuple[str, str],
    redis_server: RedisServer,
    redis_server_b: RedisServer,
    tls_server: RedisServer,
    redis_sentinel: SentinelDeployment,
    redis_cluster: ClusterDeployment,
    killable_server: RedisServer,
) -> dict[str, Any]:
    """REDIS_CONNECTIONS with a password in every kind of URL, in OPTIONS and SENTINEL_KWARGS."""
    killable_server.kill()
    a, b = redis_server, redis_server_b
    raw, sentinel_raw = password
    pw = quote(raw, safe="")
    return {
        "standalone": {"URL": b.acl_url},
        "planted": {"URL": f"redis://default:{pw}@127.0.0.1:{a.port}/0"},
        "users": {"ALIAS": "planted"},
        "unix": {"URL": f"unix://default:{pw}@{a.unix_socket}?db=0"},
        "unix_query": {"URL": f"unix://{a.unix_socket}?db=0&username=default&password={pw}"},
        "tls": {
            "URL": f"rediss://default:{pw}@127.0.0.1:{tls_server.port}/0",
            "OPTIONS": {"ssl_ca_certs": tls_server.ca_cert},
        },
        "sentinel": {
            "SENTINELS": redis_sentinel.sentinels,
            "SERVICE_NAME": redis_sentinel.service_name,
            "SENTINEL_KWARGS": {"username": "default", "password": sentinel_raw},
            "OPTIONS": {"username": "default", "password": raw},
        },
        "cluster": {
            "URL": f"redis://default:{pw}@{redis_cluster.url.split('://')[1]}",
            "CLUSTER": True,
        },
        "down": {
            "URL": f"redis://default:{pw}@127.0.0.1:{killable_server.port}/0",
            "RETRY": 0,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
        },
        "wrong": {"URL": f"redis://app:{WRONG}@127.0.0.1:{b.port}/0", "RETRY": 0},
    }


class EverythingHandler(logging.Handler):
    """Keeps every record, formatted with its traceback, and the record's own attributes."""

    def __init__(self) -> None:
        super().__init__(level=1)
        self.texts: list[str] = []
        self.formatter_ = logging.Formatter("%(levelname)s %(name)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.formatter_.format(record))
        self.texts.append(repr({k: v for k, v in vars(record).items() if k != "exc_info"}))


@pytest.fixture
def every_log_record() -> Iterator[EverythingHandler]:
    """Capture every record of every logger at every level (1 and up)."""
    handler = EverythingHandler()
    names = ["", "redis", "redis_conn", "redis_conn.request", "django", "flask", "asyncio"]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(1)
        lg.propagate = False
        lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


def test_the_test_setup_really_uses_the_passwords(
    planted: dict[str, Any], password: tuple[str, str]
) -> None:
    """The planted passwords reach the servers (else the other tests here prove nothing)."""
    registry = ConnectionRegistry(planted)
    try:
        for name in ("standalone", "planted", "unix", "unix_query", "tls", "sentinel", "cluster"):
            assert registry.get(name).ping() is True, name
        for name in ("planted", "unix", "unix_query", "tls"):
            kwargs = registry.get(name).connection_pool.connection_kwargs
            assert kwargs["password"] == password[0], name
        assert registry.get("sentinel").connection_pool.connection_kwargs["password"] == password[0]
        manager = registry.get("sentinel").sentinel_manager  # type: ignore[union-attr]
        assert manager.sentinel_kwargs["password"] == password[1]
        assert registry.get("standalone").acl_whoami() == "app"
    finally:
        registry.close_all()


def test_health_report_text_and_json(
    planted: dict[str, Any], every_log_record: EverythingHandler
) -> None:
    registry = ConnectionRegistry(planted)
    try:
        report = registry.health(ping=True)
        statuses = {c["name"]: c["status"] for c in report["connections"]}
        assert statuses["down"] == "down" and statuses["wrong"] == "down"
        assert statuses["planted"] == "ok" and statuses["cluster"] == "ok"
        assert_no_secret(json.dumps(report), "the health report")
        assert_no_secret(render(report), "the health report as text")
        assert_no_secret(render(report, as_json=True), "the health report as JSON")
        no_ping = registry.health(ping=False)
        assert_no_secret(json.dumps(no_ping) + render(no_ping), "the report without PING")
        targets = {c["name"]: c["target"] for c in report["connections"]}
        assert targets["planted"].startswith("redis://default:***@127.0.0.1:")
    finally:
        registry.close_all()
    assert_no_secret("\n".join(every_log_record.texts), "a log record")


def test_exceptions_of_every_failure(
    planted: dict[str, Any], every_log_record: EverythingHandler
) -> None:
    registry = ConnectionRegistry({**planted, "tight": {**planted["planted"], "BLOCKING": False}})
    failures: list[BaseException] = []

    def capture(action: Any) -> None:
        try:
            action()
        except Exception as exc:
            failures.append(exc)
        else:
            raise AssertionError(f"{action} did not fail")

    try:
        capture(lambda: registry.get("down").get("k"))
        capture(lambda: registry.get("wrong").get("k"))
        capture(lambda: registry.get("nope"))
        tight = registry.get("tight")
        held = [tight.connection_pool.get_connection() for _ in range(50)]
        capture(lambda: tight.get("k"))
        for conn in held:
            tight.connection_pool.release(conn)

        def failing_pipeline() -> None:
            connections.configure(planted)
            try:
                with pipeline(name="planted") as p:
                    p.set("k", "v")
                    p["down"].incr("n")
                    p["wrong"].incr("n")
                    p["users"].lpush("l", "x")
                    p.execute()
            finally:
                connections.configure(None)

        capture(failing_pipeline)

        async def async_failures() -> list[BaseException]:
            caught: list[BaseException] = []
            for name in ("down", "wrong"):
                try:
                    await registry.get_async(name).get("k")
                except Exception as exc:
                    caught.append(exc)
            connections.configure(planted)
            try:
                async with async_pipeline(name="down") as p:
                    p.incr("n")
                    p["planted"].incr("n")
                    await p.execute()
            except PipelineError as exc:
                caught.append(exc)
            finally:
                await connections.aclose_async()
                await registry.aclose_async()
                connections.configure(None)
            return caught

        async_caught = asyncio.run(async_failures())
        assert len(async_caught) == 3
        failures.extend(async_caught)
    finally:
        registry.close_all()
    kinds = [type(exc).__name__ for exc in failures]
    assert "PoolExhausted" in kinds and "PipelineError" in kinds and "ConnectionNotFound" in kinds
    assert any(isinstance(exc, PoolExhausted) for exc in failures)
    for exc in failures:
        assert_no_secret(exception_text(exc), f"a {type(exc).__name__}")
    assert_no_secret("\n".join(every_log_record.texts), "a log record")


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"URL": f"http://:{PLANTED}@127.0.0.1:1/0"}, id="bad-scheme"),
        pytest.param({"URL": f"redis://:{PLANTED}@127.0.0.1:99999/0"}, id="bad-port"),
        pytest.param({"URL": f"redis://:{PLANTED}@127.0.0.1:1/0?db=x"}, id="bad-query"),
        pytest.param({"URL": f"redis://:{PLANTED}@127.0.0.1:1/0", "BOGUS": 1}, id="unknown-key"),
        pytest.param(
            {"URL": f"redis://:{PLANTED}@127.0.0.1:1/0", "SENTINELS": 3}, id="url-and-sentinels"
        ),
        pytest.param({"URL": f"unix://:{PLANTED}@/tmp/x.sock", "CLUSTER": True}, id="unix-cluster"),
        pytest.param(
            {"URL": f"redis://:{PLANTED}@127.0.0.1:1/0", "OPTIONS": {"password": PLANTED, 1: 2}},
            id="options-with-a-bad-key",
        ),
        pytest.param(
            {"URL": f"redis://:{PLANTED}@127.0.0.1:1/0", "OPTIONS": {"passwrd": PLANTED}},
            id="misspelt-option",
        ),
        pytest.param(
            {
                "URL": f"redis://:{PLANTED}@127.0.0.1:1/0",
                "OPTIONS": {"url": f"redis://:{PLANTED}@x"},
            },
            id="url-in-options",
        ),
        pytest.param(
            {"SENTINELS": [("127.0.0.1", 1)], "OPTIONS": {"password": PLANTED}},
            id="sentinel-without-service",
        ),
        pytest.param(
            {"SENTINELS": "x", "SERVICE_NAME": "m", "SENTINEL_KWARGS": {"password": PLANTED}},
            id="bad-sentinels",
        ),
        pytest.param(
            {"ALIAS": "other", "URL": f"redis://:{PLANTED}@127.0.0.1:1/0"}, id="alias-and-url"
        ),
        pytest.param({"URL": 5, "OPTIONS": {"password": PLANTED}}, id="url-not-a-string"),
        pytest.param(
            {
                "SENTINELS": [("127.0.0.1", 1)],
                "SERVICE_NAME": "m",
                "SENTINEL_KWARGS": {"password": PLANTED, None: 1},
            },
            id="sentinel-kwargs-with-a-bad-key",
        ),
        *(
            pytest.param(entry, id=f"{where}-{kind}")
            for kind, secret in (
                ("nasty", NASTY),
                ("sentinel-nasty", SENTINEL_NASTY),
                ("slash", "Qz7Lw/" + PLANTED),
                ("hash", "Qz7Lw#" + PLANTED),
            )
            for where, entry in (
                ("raw-in-url", {"URL": f"redis://:{secret}@127.0.0.1:1/0"}),
                ("raw-user-and-password", {"URL": f"redis://u:{secret}@127.0.0.1:1/0", "X": 1}),
                ("raw-in-unix-url", {"URL": f"unix://u:{secret}@/tmp/r.sock?db=0"}),
                ("raw-in-query", {"URL": f"redis://127.0.0.1:1/0?password={secret}", "X": 1}),
                ("raw-in-cluster-url", {"URL": f"redis://:{secret}@127.0.0.1:1", "CLUSTER": True}),
                (
                    "options-and-url",
                    {
                        "URL": f"redis://:{quote(secret, safe='')}@127.0.0.1:1/0",
                        "OPTIONS": {"password": secret, "db": 3},
                    },
                ),
                (
                    "sentinel-kwargs",
                    {
                        "SENTINELS": [("127.0.0.1", 1)],
                        "SERVICE_NAME": "m",
                        "SENTINEL_KWARGS": {"password": secret, "bogus": secret},
                        "OPTIONS": {"password": secret, "protocol": 9},
                    },
                ),
                (
                    "options-refused-together",
                    {
                        "URL": f"redis://:{quote(secret, safe='')}@127.0.0.1:1/0",
                        "OPTIONS": {"credential_provider": secret},
                    },
                ),
            )
        ),
    ],
)
def test_configuration_errors(
    entry: dict[str, Any], every_log_record: EverythingHandler, settings: Any
) -> None:
    raw = {"x": entry, "other": {"FAKE": True}}
    with pytest.raises(ConfigurationError) as info:
        ConnectionRegistry().configure(raw)
    assert_no_secret(exception_text(info.value), "a ConfigurationError")
    settings.REDIS_CONNECTIONS = raw
    checks = check_settings()
    assert any(m.id.startswith("redis_conn.E0") for m in checks)
    assert_no_secret("\n".join(f"{m.msg} {m.hint}" for m in checks), "a system check")
    assert_no_secret("\n".join(every_log_record.texts), "a log record")


def test_reprs_of_clients_pools_connections_and_pipelines(planted: dict[str, Any]) -> None:
    registry = ConnectionRegistry(planted)
    shown: list[str] = [repr(registry)]
    try:
        for name in planted:
            spec = registry.spec(name)
            shown += [repr(spec), str(spec.target)]
            if name in ("down", "wrong"):
                continue
            client = registry.get(name)
            client.ping()
            shown += [repr(client), str(client)]
            if name == "cluster":
                for node in client.get_nodes():
                    shown += [repr(node), repr(node.redis_connection)]
                    pool = node.redis_connection.connection_pool
                    shown += [repr(pool), repr(pool.get_connection())]
                shown.append(repr(client.pipeline()))
                continue
            pool = client.connection_pool
            conn = pool.get_connection()
            shown += [repr(pool), str(pool), repr(conn), str(conn)]
            pool.release(conn)
            shown.append(repr(client.pipeline()))
            if name == "sentinel":
                shown += [repr(client.sentinel_manager), repr(client.sentinel_manager.sentinels)]

        async def async_reprs() -> list[str]:
            out = []
            for name in ("planted", "unix", "tls", "sentinel", "cluster"):
                client = registry.get_async(name)
                await client.ping()
                out += [repr(client), str(client)]
                if name != "cluster":
                    out.append(repr(client.connection_pool))
            await registry.aclose_async()
            return out

        shown += asyncio.run(async_reprs())
        connections.configure({"default": planted["planted"], **planted})
        try:
            with pipeline(name="planted") as p:
                future = p.set("k", PLANTED)  # a value is not shown either
                shown += [repr(p), repr(future), repr(p["cluster"])]
                p.execute()
                shown += [repr(future)]
            scope = RequestPipeline(description="GET /")
            proxy = PipelineProxy(scope)
            proxy.incr("n")
            shown += [repr(scope), repr(proxy)]
            scope.flush()
            shown += [repr(scope), repr(proxy)]
        finally:
            connections.configure(None)
    finally:
        registry.close_all()
    for text in shown:
        assert_no_secret(text, "a repr")


# -- the command-line reports and the health view -----------------------------------------------


def test_django_redis_pools_text_and_json(
    planted: dict[str, Any], settings: Any, every_log_record: EverythingHandler
) -> None:
    settings.REDIS_CONNECTIONS = planted
    for options in ([], ["--json"], ["--no-ping"], ["--json", "--connection", "down"]):
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("redis_pools", *options, stdout=out, stderr=err)
            failure = ""
        except CommandError as exc:
            failure = exception_text(exc)
        assert out.getvalue()
        assert_no_secret(out.getvalue() + err.getvalue() + failure, f"redis_pools {options}")
    assert_no_secret("\n".join(every_log_record.texts), "a log record")


def test_flask_redis_pools_text_and_json(
    planted: dict[str, Any], every_log_record: EverythingHandler
) -> None:
    app = Flask(__name__)
    app.config["REDIS_CONNECTIONS"] = planted
    RedisConn().init_app(app)
    runner = app.test_cli_runner()
    try:
        for options in ([], ["--json"], ["--no-ping"], ["--json", "--connection", "down"]):
            result = runner.invoke(args=["redis", "pools", *options])
            assert result.output
            assert result.exit_code == (0 if options == ["--no-ping"] else 1)
            text = result.output + (exception_text(result.exception) if result.exception else "")
            assert_no_secret(text, f"flask redis pools {options}")
    finally:
        app_registry(app).close_all()
    assert_no_secret("\n".join(every_log_record.texts), "a log record")


def failing_view(request: HttpRequest) -> HttpResponse:
    request.redis.incr("n")  # type: ignore[attr-defined]
    request.redis["down"].incr("n")  # type: ignore[attr-defined]
    return HttpResponse("ok")


urlpatterns = [path("fails/", failing_view), path("health/", health_view)]


def test_django_health_view_and_a_failing_request(
    planted: dict[str, Any], settings: Any, every_log_record: EverythingHandler
) -> None:
    settings.REDIS_CONNECTIONS = {"default": planted["planted"], **planted}
    settings.ROOT_URLCONF = __name__
    factory = RequestFactory()
    for staff in (True, False):
        request = factory.get("/health/")
        request.user = SimpleNamespace(is_staff=staff)  # type: ignore[assignment]
        response = health_view(request)
        assert response.status_code == 503
        body = response.content.decode()
        assert ("target" in body) is staff
        assert_no_secret(body, f"the health view (staff={staff})")
    client = DjangoClient(raise_request_exception=False)
    for on_error in ("raise", "log"):
        settings.REDIS_CONN_ON_FLUSH_ERROR = on_error
        response = client.get("/fails/")
        assert response.status_code == (500 if on_error == "raise" else 200)
        assert_no_secret(response.content.decode(), "an error page")
    assert_no_secret("\n".join(every_log_record.texts), "a log record")
    assert any("failed to flush" in text for text in every_log_record.texts)


# -- property: whatever the password, wherever it is, it never shows ------------------------------
# A password is made of distinctive words ("Qz" + letters and digits) joined by characters that
# cut URLs short, need escaping in a repr, or mean something in a query string or HTML. Placed in
# the URL (raw or percent-encoded, user part or ?password=), OPTIONS or SENTINEL_KWARGS, beside
# settings that make the configuration wrong or not, no word of it may appear in a problem, a
# ConfigurationError, a spec's repr or target, or a health report (with PING, every connection
# down: their errors are shown).

SPECIALS = [*"/?#@: %&+='\"\\<>[]{}|^`~!$*(),;", "ü", "€", "\t"]
WORD_CHARACTERS = string.ascii_letters + string.digits
words = st.text(WORD_CHARACTERS, min_size=5, max_size=8).map(lambda w: "Qz" + w)
nasty_passwords = st.lists(
    st.tuples(words, st.sampled_from(SPECIALS)), min_size=1, max_size=4
).flatmap(lambda pairs: words.map(lambda last: "".join(w + c for w, c in pairs) + last))
# In a query string '&' starts the next parameter: a raw one there would split the password
# into an unknown option name, which is shown (the docs say to percent-encode it).
QUERY_UNSAFE = "&"


def placed(password: str, where: str) -> dict[str, Any]:
    encoded = quote(password, safe="")
    query_raw = "".join(c for c in password if c not in QUERY_UNSAFE)
    return {
        "user-raw": {"URL": f"redis://:{password}@127.0.0.1:1/0"},
        "user-and-name-raw": {"URL": f"redis://app:{password}@127.0.0.1:1/0"},
        "user-encoded": {"URL": f"redis://app:{encoded}@127.0.0.1:1/0"},
        "tls-encoded": {"URL": f"rediss://:{encoded}@127.0.0.1:1/0"},
        "unix-raw": {"URL": f"unix://app:{password}@/tmp/none.sock?db=0"},
        "query-raw": {"URL": f"redis://127.0.0.1:1/0?username=app&password={query_raw}"},
        "query-encoded": {"URL": f"unix:///tmp/none.sock?db=0&password={encoded}"},
        "cluster-raw": {"URL": f"redis://:{password}@127.0.0.1:1", "CLUSTER": True},
        "cluster-encoded": {"URL": f"redis://:{encoded}@127.0.0.1:1", "CLUSTER": True},
        "options": {"URL": "redis://127.0.0.1:1/0", "OPTIONS": {"password": password}},
        "sentinel": {
            "SENTINELS": [("127.0.0.1", 1)],
            "SERVICE_NAME": "m",
            "SENTINEL_KWARGS": {"password": password},
            "OPTIONS": {"password": password},
        },
    }[where]


PERTURBATIONS: list[dict[str, Any]] = [
    {},
    {"BOGUS": 1},
    {"RETRY": -1},
    {"OPTIONS": {"db": 5}},
    {"OPTIONS": {"protocol": 9}},
    {"OPTIONS": {"password": "Qzother0"}},
    {"OPTIONS": {"credential_provider": "Qzcred00"}},
    {"CLUSTER": True},
    {"READ_FROM_REPLICAS": True},
]


@settings(max_examples=250, deadline=None, database=None)
@given(
    password=nasty_passwords,
    where=st.sampled_from(
        [
            *("user-raw", "user-and-name-raw", "user-encoded", "tls-encoded", "unix-raw"),
            *("query-raw", "query-encoded", "cluster-raw", "cluster-encoded", "options"),
            "sentinel",
        ]
    ),
    extra=st.sampled_from(PERTURBATIONS),
)
def test_a_password_never_shows_whatever_its_characters(
    password: str, where: str, extra: dict[str, Any]
) -> None:
    entry = {**placed(password, where), "RETRY": 0, "SOCKET_CONNECT_TIMEOUT": 0.5}
    for key, value in extra.items():
        entry[key] = {**entry.get(key, {}), **value} if key == "OPTIONS" else value
    raw = {"x": entry, "alias": {"ALIAS": "x"}}
    shown = [str(p) for p in validate(raw)]
    try:
        specs = parse(raw)
    except ConfigurationError as exc:
        assert shown
        shown.append(exception_text(exc))
    else:
        assert not shown
        shown += [repr(s) + s.target for s in specs.values()]
        registry = ConnectionRegistry(raw)
        # An unreachable sentinel is retried by redis-py's own sentinel clients for seconds.
        ping = where != "sentinel"
        try:
            report = registry.health(ping=ping)
            assert report["status"] == ("down" if ping else "ok")
            shown += [json.dumps(report), render(report)]
        finally:
            registry.close_all()
    if isinstance(entry.get("URL"), str):
        shown.append(mask_url(entry["URL"]))
    pieces = [w for w in re.findall(r"Qz[A-Za-z0-9]+", password)]
    for text in shown:
        for piece in [password, *pieces]:
            assert piece not in text, f"{piece!r} of {password!r} ({where}) shows: {text[:1500]}"
