"""System checks: every id, its exact message, and no network I/O."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import Error, Warning, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from redis_conn.django.checks import W001, check_settings, default_worker_threads
from redis_conn.registry import connections

URL = "redis://127.0.0.1:6390/0"
REPO = Path(__file__).resolve().parents[2]


def error(connection: str | None, message: str, hint: str | None, id: str) -> Error:
    obj = "REDIS_CONNECTIONS" if connection is None else f"REDIS_CONNECTIONS[{connection!r}]"
    return Error(message, hint=hint, obj=obj, id=f"redis_conn.{id}")


CONFIG_ERRORS = {
    "E001": (
        ["redis://127.0.0.1:6390/0"],
        error(
            None,
            "REDIS_CONNECTIONS must be a dict of connection name to settings dict, not list.",
            "Map each connection name to a dict of settings, e.g. "
            "REDIS_CONNECTIONS = {'default': {'URL': 'redis://127.0.0.1:6379/0'}}.",
            "E001",
        ),
    ),
    "E002": (
        {"users": {"URL": URL, "MAX_CONECTIONS": 5}},
        error(
            "users",
            "Redis connection 'users' has an unknown key 'MAX_CONECTIONS'.",
            "Did you mean MAX_CONNECTIONS?",
            "E002",
        ),
    ),
    "E003": (
        {"users": {"URL": URL, "MAX_CONNECTIONS": "20"}},
        error(
            "users",
            "Redis connection 'users' has MAX_CONNECTIONS='20' (str); expected a whole number "
            ">= 1.",
            "Leave MAX_CONNECTIONS out to use the default, 50.",
            "E003",
        ),
    ),
    "E004": (
        {"users": {"MAX_CONNECTIONS": 5}},
        error(
            "users",
            "Redis connection 'users' has no URL.",
            "Add URL (redis://, rediss:// or unix://), or use ALIAS, FAKE or SENTINELS.",
            "E004",
        ),
    ),
    "E005": (
        {"users": {"URL": "http://:s3cret@127.0.0.1:6390/0"}},
        error(
            "users",
            "Redis connection 'users' has URL 'http://:***@127.0.0.1:6390/0' with scheme 'http'.",
            "Use redis://, rediss:// (TLS) or unix://.",
            "E005",
        ),
    ),
    "E006": (
        {"default": {"URL": URL}, "sessions": {"ALIAS": "nope"}},
        error(
            "sessions",
            "Redis connection 'sessions' has ALIAS 'nope', which is not a configured connection.",
            "Configured connections: 'default'.",
            "E006",
        ),
    ),
    "E007": (
        {"a": {"ALIAS": "b"}, "b": {"ALIAS": "a"}},
        error(
            "a",
            "Redis connection 'a' has an ALIAS loop: 'a' -> 'b' -> 'a'.",
            "Point one of them at a connection with a URL (or FAKE).",
            "E007",
        ),
    ),
    "E008": (
        {"default": {"URL": URL}, "sessions": {"ALIAS": "default", "MAX_CONNECTIONS": 3}},
        error(
            "sessions",
            "Redis connection 'sessions' has ALIAS and also MAX_CONNECTIONS; an alias shares its "
            "target's client and pool, so no other key is allowed beside it.",
            "Remove MAX_CONNECTIONS, or make 'sessions' its own connection.",
            "E008",
        ),
    ),
    "E009": (
        {"users": {"URL": URL, "READ_FROM_REPLICAS": True}},
        error(
            "users",
            "Redis connection 'users' has READ_FROM_REPLICAS without CLUSTER; it applies to "
            "Redis Cluster only.",
            "Add CLUSTER: True, or remove READ_FROM_REPLICAS.",
            "E009",
        ),
    ),
    "E010": (
        {"users": {"URL": URL, "OPTIONS": {"decode_respones": True}}},
        error(
            "users",
            "Redis connection 'users' has OPTIONS['decode_respones'], which a tcp connection "
            "does not accept.",
            "Did you mean 'decode_responses'?",
            "E010",
        ),
    ),
}


@pytest.fixture(autouse=True)
def quiet_defaults(settings: Any) -> None:
    settings.DEBUG = True  # no W003 for the fake default
    settings.REDIS_CONN_WORKER_THREADS = 8


@pytest.mark.parametrize("problem_id", sorted(CONFIG_ERRORS))
def test_each_configuration_problem_is_an_error_with_its_id(settings: Any, problem_id: str) -> None:
    settings.REDIS_CONNECTIONS, expected = CONFIG_ERRORS[problem_id]
    assert check_settings() == [expected]


def test_every_problem_is_reported_at_once(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {
        "users": {"URL": URL, "MAX_CONECTIONS": 5},
        "cache": {"URL": "http://127.0.0.1:6390/0"},
    }
    assert [m.id for m in check_settings()] == ["redis_conn.E002", "redis_conn.E005"]


def test_manage_py_check_shows_the_error_with_connection_key_and_hint(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {"users": {"URL": "redis://:s3cret@h:6390/1", "MAX_CONECTIONS": 5}}
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", tags=["redis_conn"])
    text = str(excinfo.value)
    assert (
        "REDIS_CONNECTIONS['users']: (redis_conn.E002) Redis connection 'users' has an unknown "
        "key 'MAX_CONECTIONS'.\n\tHINT: Did you mean MAX_CONNECTIONS?"
    ) in text
    assert "s3cret" not in text


def test_a_valid_configuration_passes(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": URL},
        "users": {"URL": "redis://:s3cret@127.0.0.1:6391/1", "MAX_CONNECTIONS": 20},
        "sessions": {"ALIAS": "default"},
    }
    assert check_settings() == []
    assert run_checks(tags=["redis_conn"]) == []


def test_w001_when_redis_connections_is_not_set(settings: Any) -> None:
    del settings.REDIS_CONNECTIONS
    assert check_settings() == [W001]
    assert W001.msg == (
        "REDIS_CONNECTIONS is not set, so the 'default' connection is an in-process fake server "
        "(fakeredis): its data lives in this process only, is lost on restart and is not shared "
        "with other workers."
    )
    assert connections.names() == ["default"]
    assert connections.spec("default").kind == "fake"


def test_w002_a_non_blocking_pool_smaller_than_the_thread_count(settings: Any) -> None:
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": URL, "BLOCKING": False, "MAX_CONNECTIONS": 4},
        "big": {"URL": URL, "BLOCKING": False, "MAX_CONNECTIONS": 8},  # enough for 8 threads
        "waits": {"URL": URL, "MAX_CONNECTIONS": 1},  # blocking: waits instead of failing
        "sessions": {"ALIAS": "default"},  # judged with its target, not twice
    }
    assert check_settings() == [
        Warning(
            "Redis connection 'default' has BLOCKING=False and MAX_CONNECTIONS=4, fewer than the "
            "8 threads a worker may serve requests on; when more than 4 of them use it at once, "
            "the others fail at once with PoolExhausted.",
            hint="Raise MAX_CONNECTIONS to at least 8, or set BLOCKING to True to wait up to "
            "POOL_TIMEOUT for a free connection, or set REDIS_CONN_WORKER_THREADS to the number "
            "of threads your server runs per process.",
            obj="REDIS_CONNECTIONS['default']",
            id="redis_conn.W002",
        )
    ]


def test_w002_threshold_defaults_to_python_s_thread_pool_size(settings: Any) -> None:
    del settings.REDIS_CONN_WORKER_THREADS
    threads = default_worker_threads()
    settings.REDIS_CONNECTIONS = {
        "small": {"URL": URL, "BLOCKING": False, "MAX_CONNECTIONS": threads - 1},
        "enough": {"URL": URL, "BLOCKING": False, "MAX_CONNECTIONS": threads},
        "default": {"ALIAS": "enough"},  # request.redis needs one (redis_conn.E103)
    }
    assert [(m.id, m.obj) for m in check_settings()] == [
        ("redis_conn.W002", "REDIS_CONNECTIONS['small']")
    ]


def test_w003_a_fake_connection_when_debug_is_off(settings: Any) -> None:
    settings.DEBUG = False
    settings.REDIS_CONNECTIONS = {"default": {"URL": URL}, "dev": {"FAKE": True}}
    assert check_settings() == [
        Warning(
            "Redis connection 'dev' is FAKE while DEBUG is False: its data lives in this process "
            "only, is lost on restart and is not shared with other workers.",
            hint="Give it a URL of a real server, or silence redis_conn.W003 if that is intended.",
            obj="REDIS_CONNECTIONS['dev']",
            id="redis_conn.W003",
        )
    ]


def test_e101_on_flush_error_must_be_raise_or_log(settings: Any) -> None:
    settings.REDIS_CONN_ON_FLUSH_ERROR = "ignore"
    assert check_settings() == [
        Error(
            "REDIS_CONN_ON_FLUSH_ERROR is 'ignore'; it must be 'raise' or 'log'.",
            hint="'raise' (the default) lets a failed flush of the request pipeline become a 500 "
            "response; 'log' keeps the response and logs the failed commands at ERROR.",
            obj="REDIS_CONN_ON_FLUSH_ERROR",
            id="redis_conn.E101",
        )
    ]
    settings.REDIS_CONN_ON_FLUSH_ERROR = "log"
    assert check_settings() == []


@pytest.mark.parametrize("value", [0, "8", 2.5, True])
def test_e102_worker_threads_must_be_a_positive_whole_number(settings: Any, value: object) -> None:
    settings.REDIS_CONN_WORKER_THREADS = value
    assert check_settings() == [
        Error(
            f"REDIS_CONN_WORKER_THREADS is {value!r}; it must be a whole number >= 1.",
            hint="Set it to the number of threads your server runs per process, or remove it.",
            obj="REDIS_CONN_WORKER_THREADS",
            id="redis_conn.E102",
        )
    ]


def test_no_check_opens_a_network_connection(
    settings: Any, redis_server: Any, server_a: Any
) -> None:
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": redis_server.url, "BLOCKING": False, "MAX_CONNECTIONS": 2},
        "sessions": {"ALIAS": "default"},
    }
    before = server_a.info("stats")["total_connections_received"]
    messages = run_checks(tags=["redis_conn"])
    call_command("check", tags=["redis_conn"], verbosity=0)
    after = server_a.info("stats")["total_connections_received"]
    assert [m.id for m in messages] == ["redis_conn.W002"]
    assert after == before
    assert connections.created_clients() == {}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(
            {"URL": "redis://[::1:6379/0"},
            error(
                "users",
                "Redis connection 'users' has URL 'redis://[::1:6379/0' that redis-py cannot "
                "parse: Invalid IPv6 URL.",
                None,
                "E005",
            ),
            id="unclosed-ipv6-bracket",  # was a raw ValueError that crashed manage.py check
        ),
        pytest.param(
            {"URL": URL, "OPTIONS": {"db": 7}},
            error(
                "users",
                "Redis connection 'users' has OPTIONS['db']=7 and a URL naming db 0; redis-py "
                "would use the URL's db 0.",
                "Keep the database number in the URL (end it with /7 if that is the one you "
                "mean) and remove OPTIONS['db'].",
                "E009",
            ),
            id="db-twice",
        ),
        pytest.param(
            {"URL": URL, "RETRY": 10**12},
            error(
                "users",
                "Redis connection 'users' has RETRY=1000000000000 (int); expected a whole number "
                ">= 0 and <= 20.",
                "Leave RETRY out to use the default, 3.",
                "E003",
            ),
            id="retry-huge",
        ),
        pytest.param(
            {"URL": "redis://:s3cr/et@127.0.0.1:6390/0"},
            error(
                "users",
                "Redis connection 'users' has URL 'redis://:***@127.0.0.1:6390/0' with an '@' "
                "after the host: a '/', '?' or '#' in the user name or password cut the URL "
                "short, so redis-py would read the rest of the password as the host, path or "
                "query.",
                "Percent-encode the user name and password, e.g. urllib.parse.quote(password, "
                "safe=''), or move the password to OPTIONS['password'].",
                "E005",
            ),
            id="unencoded-slash-in-password",
        ),
    ],
)
def test_settings_redis_py_would_refuse_are_check_errors(
    settings: Any, entry: dict[str, Any], expected: Error
) -> None:
    settings.REDIS_CONNECTIONS = {"users": entry}
    assert check_settings() == [expected]
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", tags=["redis_conn"])
    assert f"(redis_conn.{expected.id[-4:]}) {expected.msg}" in str(excinfo.value)


@pytest.mark.parametrize("typo", ["REDIS_CONNECTION", "REDIS_CONECTIONS"])
def test_e107_a_misspelled_redis_connections(settings: Any, typo: str) -> None:
    del settings.REDIS_CONNECTIONS
    setattr(settings, typo, {"default": {"URL": URL}})
    assert check_settings() == [
        Error(
            f"The setting {typo} is not read by redis_conn, and REDIS_CONNECTIONS is not set, so "
            "the 'default' Redis connection is an in-process fake server (fakeredis).",
            hint="Did you mean REDIS_CONNECTIONS?",
            obj=typo,
            id="redis_conn.E107",
        ),
        W001,
    ]
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", tags=["redis_conn"])
    assert f"{typo}: (redis_conn.E107) The setting {typo} is not read" in str(excinfo.value)


def test_e107_not_for_our_other_settings_nor_when_redis_connections_is_set(settings: Any) -> None:
    settings.REDIS_CONN_WORKERS = 2
    settings.REDIS_CONNECTION = {"default": {"URL": URL}}  # beside the real one: not used
    settings.REDIS_CONNECTIONS = {"default": {"URL": URL}}
    assert check_settings() == []
    del settings.REDIS_CONNECTIONS
    del settings.REDIS_CONNECTION
    assert check_settings() == [W001]


MIDDLEWARE_WITHOUT_THE_APP = """
SECRET_KEY = "not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "tests.test_django.urls"
INSTALLED_APPS = ["django.contrib.contenttypes"]
MIDDLEWARE = ["redis_conn.django.middleware.RequestPipelineMiddleware"]
REDIS_CONNECTIONS = {"default": {"URL": "redis://127.0.0.1:6390/0"}}
"""


def test_the_middleware_without_the_app_stops_the_server_at_start(tmp_path: Path) -> None:
    # `manage.py check` loads nothing of redis_conn when its app is not installed, so no check
    # of ours can run; the middleware refuses when the server loads it, before any request.
    (tmp_path / "no_app_settings.py").write_text(MIDDLEWARE_WITHOUT_THE_APP)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "no_app_settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
    }
    started = subprocess.run(
        [sys.executable, "-m", "django", "runserver", "127.0.0.1:0", "--noreload"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode != 0
    assert (
        "django.core.exceptions.ImproperlyConfigured: RequestPipelineMiddleware needs the "
        "redis_conn app: add 'redis_conn.django' to INSTALLED_APPS so that REDIS_CONNECTIONS "
        "is read and checked."
    ) in started.stderr
