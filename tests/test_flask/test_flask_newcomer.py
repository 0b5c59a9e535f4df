"""What a flask-redis user or a newcomer does first: REDIS_URL, a missing or misspelled
REDIS_CONNECTIONS, and flask-redis's ``rc.incr("hits")`` on the extension object."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from redis_conn import ConfigurationError, ConnectionNotFound
from redis_conn.flask import RedisConn
from redis_conn.flask.extension import FakeDefaultWarning, app_registry

MakeApp = Callable[..., Flask]

FAKE_WARNING = (
    "The Flask app 'shop' has neither REDIS_CONNECTIONS nor REDIS_URL in its config, so its "
    "'default' Redis connection is an in-process fake server (fakeredis): its data lives in "
    "this process only, is lost on restart and is not shared with other workers. Set "
    "app.config['REDIS_URL'] (e.g. 'redis://127.0.0.1:6379/0') or "
    "app.config['REDIS_CONNECTIONS']; in debug or testing mode the fake server is used "
    "without this warning."
)


@pytest.fixture
def plain_apps() -> Iterator[list[Flask]]:
    """Apps made by hand (not through make_app): their pools are closed after the test."""
    apps: list[Flask] = []
    yield apps
    for app in apps:
        if "redis_conn" in app.extensions:
            app_registry(app).close_all()


def shop(apps: list[Flask], **config: Any) -> Flask:
    app = Flask("shop")
    app.config.update(config)
    apps.append(app)
    return app


# -- REDIS_URL ------------------------------------------------------------------------------


def test_redis_url_is_the_default_connection(
    rc: RedisConn, plain_apps: list[Flask], redis_server: Any, raw_a: redis.Redis
) -> None:
    app = shop(plain_apps, REDIS_URL=redis_server.url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real server: nothing to warn about
        rc.init_app(app)

    @app.get("/")
    def index() -> str:
        rc.request_pipeline.incr("hits")
        return "ok"

    assert app.test_client().get("/").status_code == 200
    assert raw_a.get("hits") == "1"  # on the server, not in a fake store
    with app.app_context():
        assert rc.registry.names() == ["default"]
        assert rc.registry.spec("default").kind == "standalone"
    result = app.test_cli_runner().invoke(args=["redis", "pools"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1].split()[:4] == [
        "default",
        "standalone",
        redis_server.url,
        "ok",
    ]


def test_redis_url_adds_default_to_the_other_connections(
    rc: RedisConn,
    plain_apps: list[Flask],
    redis_server: Any,
    redis_server_b: Any,
    raw_a: redis.Redis,
    raw_b: redis.Redis,
) -> None:
    app = shop(
        plain_apps,
        REDIS_URL=redis_server.url,
        REDIS_CONNECTIONS={"users": {"URL": redis_server_b.url}},
    )
    rc.init_app(app)
    with app.app_context():
        assert rc.registry.names() == ["default", "users"]
        rc.get().set("where", "a")
        rc.get("users").set("where", "b")
    assert (raw_a.get("where"), raw_b.get("where")) == ("a", "b")


def test_redis_url_equal_to_the_default_url_is_accepted(
    rc: RedisConn, plain_apps: list[Flask], redis_server: Any
) -> None:
    app = shop(
        plain_apps,
        REDIS_URL=redis_server.url,
        REDIS_CONNECTIONS={"default": {"URL": redis_server.url, "MAX_CONNECTIONS": 7}},
    )
    rc.init_app(app)
    with app.app_context():
        assert rc.registry.spec("default").max_connections == 7


def test_redis_url_and_another_default_are_refused(rc: RedisConn, plain_apps: list[Flask]) -> None:
    app = shop(
        plain_apps,
        REDIS_URL="redis://127.0.0.1:6390/0",
        REDIS_CONNECTIONS={"default": {"URL": "redis://127.0.0.1:6391/0"}},
    )
    with pytest.raises(ConfigurationError) as excinfo:
        rc.init_app(app)
    assert str(excinfo.value) == (
        "REDIS_URL and REDIS_CONNECTIONS['default'] both configure the 'default' Redis "
        "connection, differently. HINT: Keep one of them: remove REDIS_URL, or the 'default' "
        "entry of REDIS_CONNECTIONS."
    )
    assert "redis_conn" not in app.extensions


def test_redis_url_must_be_a_string(rc: RedisConn, plain_apps: list[Flask]) -> None:
    app = shop(plain_apps, REDIS_URL=6379)
    with pytest.raises(ConfigurationError) as excinfo:
        rc.init_app(app)
    assert str(excinfo.value) == (
        "REDIS_URL must be a string, the URL of the 'default' Redis connection, not int."
    )


def test_a_bad_redis_url_is_reported_with_its_password_masked(
    rc: RedisConn, plain_apps: list[Flask]
) -> None:
    app = shop(plain_apps, REDIS_URL="http://:s3cret@10.0.0.5/0")
    with pytest.raises(ConfigurationError) as excinfo:
        rc.init_app(app)
    assert str(excinfo.value) == (
        "Redis connection 'default' has URL 'http://:***@10.0.0.5/0' with scheme 'http'. "
        "HINT: Use redis://, rediss:// (TLS) or unix://."
    )


# -- the embedded fake default is never silent outside debug and testing ----------------------


def test_no_settings_outside_debug_and_testing_warns(
    rc: RedisConn, plain_apps: list[Flask]
) -> None:
    app = shop(plain_apps)
    with pytest.warns(FakeDefaultWarning) as record:
        rc.init_app(app)
    assert [str(w.message) for w in record] == [FAKE_WARNING]
    assert record[0].filename == __file__  # points at the init_app call, not at redis_conn


@pytest.mark.parametrize("mode", ["debug", "testing"])
def test_no_settings_in_debug_or_testing_mode_is_quiet(
    rc: RedisConn, plain_apps: list[Flask], mode: str
) -> None:
    app = shop(plain_apps)
    setattr(app, mode, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc.init_app(app)
    with app.app_context():
        assert rc.registry.spec("default").kind == "fake"


def test_an_empty_redis_url_counts_as_unset(rc: RedisConn, plain_apps: list[Flask]) -> None:
    # flask-redis apps often say app.config["REDIS_URL"] = os.environ.get("REDIS_URL").
    app = shop(plain_apps, REDIS_URL="")
    with pytest.warns(FakeDefaultWarning):
        rc.init_app(app)


# -- a misspelled REDIS_CONNECTIONS -----------------------------------------------------------


@pytest.mark.parametrize("typo", ["REDIS_CONNECTION", "REDIS_CONECTIONS", "redis_connections"])
def test_a_misspelled_redis_connections_is_refused(
    rc: RedisConn, plain_apps: list[Flask], typo: str
) -> None:
    app = shop(plain_apps, **{typo: {"default": {"URL": "redis://127.0.0.1:6390/0"}}})
    with pytest.raises(ConfigurationError) as excinfo:
        rc.init_app(app)
    assert str(excinfo.value) == (
        f"The Flask app 'shop' has {typo!r} in its config, which redis_conn does not read, "
        "and no REDIS_CONNECTIONS. HINT: Did you mean REDIS_CONNECTIONS?"
    )


def test_our_other_settings_are_not_mistaken_for_a_typo(
    rc: RedisConn, plain_apps: list[Flask], redis_server: Any
) -> None:
    app = shop(plain_apps, REDIS_URL=redis_server.url, REDIS_CONN_WORKERS=2, REDIS_OPTIONS={})
    rc.init_app(app)
    with app.app_context():
        assert rc.registry.names() == ["default"]


# -- flask-redis habits on the extension object ------------------------------------------------


def test_redis_commands_on_the_extension_say_where_they_go(
    rc: RedisConn, make_app: MakeApp, redis_server: Any
) -> None:
    app = make_app({"default": {"URL": redis_server.url}})
    with app.app_context():
        with pytest.raises(AttributeError) as excinfo:
            rc.incr("hits")  # type: ignore[attr-defined]
        assert str(excinfo.value) == (
            "'RedisConn' object has no attribute 'incr': it is not a Redis client, it holds "
            "the app's named connections. Use rc.get('default').incr(...) on the client of "
            "the 'default' connection (rc.get(name) for another), or "
            "rc.request_pipeline.incr(...) to queue it in the request's pipeline."
        )
        assert excinfo.value.name == "incr"
        assert not hasattr(rc, "hset")
        # What the message says works.
        assert rc.get("default").incr("hits") == 1
        with pytest.raises(AttributeError) as other:
            rc.no_such_thing  # type: ignore[attr-defined]  # noqa: B018
        assert str(other.value) == "'RedisConn' object has no attribute 'no_such_thing'"


def test_get_with_a_key_says_it_takes_a_connection_name(
    rc: RedisConn, make_app: MakeApp, redis_server: Any, raw_a: redis.Redis
) -> None:
    app = make_app({"default": {"URL": redis_server.url}, "users": {"ALIAS": "default"}})
    raw_a.set("hits", "3")
    with app.app_context():
        with pytest.raises(ConnectionNotFound) as excinfo:
            rc.get("hits")
        assert str(excinfo.value) == (
            "RedisConn.get('hits'): get() takes a connection name, and 'hits' is not a "
            "configured connection (configured: 'default', 'users'). To read the key 'hits', "
            "ask a client: rc.get('default').get('hits')."
        )
        assert isinstance(excinfo.value, KeyError) and excinfo.value.name == "hits"
        with pytest.raises(ConnectionNotFound) as item:
            rc["hits"]
        assert str(item.value) == (
            "RedisConn['hits']: rc[name] takes a connection name, and 'hits' is not a "
            "configured connection (configured: 'default', 'users'). To read the key 'hits', "
            "ask a client: rc.get('default').get('hits')."
        )
        assert rc.get("default").get("hits") == b"3"
