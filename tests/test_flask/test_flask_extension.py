"""RedisConn: init_app, per-app state and connections, and the core API inside an app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

import redis_conn
from redis_conn import ConfigurationError, ConnectionNotFound
from redis_conn.flask import RedisConn
from redis_conn.flask.extension import app_registry
from redis_conn.pipeline import pipeline
from redis_conn.registry import current_registry
from redis_conn.request_scope import current_pipeline

MakeApp = Callable[..., Flask]


def test_init_app_validates_the_settings_at_once(rc: RedisConn) -> None:
    app = Flask(__name__)
    app.config["REDIS_CONNECTIONS"] = {
        "users": {"URL": "redis://127.0.0.1:1/0", "MAX_CONNECTION": 5},
    }
    with pytest.raises(ConfigurationError) as info:
        rc.init_app(app)
    assert str(info.value) == (
        "Redis connection 'users' has an unknown key 'MAX_CONNECTION'. "
        "HINT: Did you mean MAX_CONNECTIONS?"
    )
    assert "redis_conn" not in app.extensions
    # Fixed, the same app can be registered.
    app.config["REDIS_CONNECTIONS"] = {"users": {"URL": "redis://127.0.0.1:1/0"}}
    rc.init_app(app)
    assert app_registry(app).names() == ["users"]


def test_invalid_settings_never_show_a_password(rc: RedisConn) -> None:
    app = Flask(__name__)
    app.config["REDIS_CONNECTIONS"] = {"users": {"URL": "http://:s3cret@10.0.0.5/0"}}
    with pytest.raises(ConfigurationError) as info:
        rc.init_app(app)
    assert str(info.value) == (
        "Redis connection 'users' has URL 'http://:***@10.0.0.5/0' with scheme 'http'. "
        "HINT: Use redis://, rediss:// (TLS) or unix://."
    )


def test_on_flush_error_setting_is_validated(rc: RedisConn) -> None:
    app = Flask(__name__)
    app.config["REDIS_CONN_ON_FLUSH_ERROR"] = "ignore"
    with pytest.raises(ConfigurationError) as info:
        rc.init_app(app)
    assert str(info.value) == "REDIS_CONN_ON_FLUSH_ERROR must be 'raise' or 'log', not 'ignore'."


def test_without_settings_an_app_gets_one_fake_default(rc: RedisConn, make_app: MakeApp) -> None:
    first, second = make_app(), make_app()
    with first.app_context():
        assert rc.registry.names() == ["default"]
        assert rc.registry.spec("default").kind == "fake"
        rc.get().set("k", "first")
    with second.app_context():
        assert rc.get().get("k") is None  # each app has its own fake server
    with first.app_context():
        assert rc.get().get("k") == b"first"


def test_a_second_init_app_on_the_same_app_is_refused(rc: RedisConn, make_app: MakeApp) -> None:
    app = make_app()
    message = (
        "A 'RedisConn' instance has already been registered on this Flask app. Import and use "
        "that instance instead of calling init_app() again; to change REDIS_CONNECTIONS, "
        "create a new app."
    )
    with pytest.raises(RuntimeError) as info:
        rc.init_app(app)
    assert str(info.value) == message
    with pytest.raises(RuntimeError) as info:
        RedisConn().init_app(app)
    assert str(info.value) == message


def test_state_lives_in_app_extensions_never_on_the_extension(
    rc: RedisConn, make_app: MakeApp
) -> None:
    app = make_app({"default": {"FAKE": True}})
    assert vars(rc) == {}
    state = app.extensions["redis_conn"]
    assert state.extension is rc
    with app.app_context():
        assert rc.registry is state.registry is app_registry(app)


def test_the_constructor_form_registers_the_app() -> None:
    app = Flask(__name__)
    app.testing = True  # the fake default, without FakeDefaultWarning
    rc = RedisConn(app)
    with app.app_context():
        assert rc.registry.names() == ["default"]
    app_registry(app).close_all()


def test_get_outside_an_app_context_says_what_to_do(rc: RedisConn, make_app: MakeApp) -> None:
    make_app()
    with pytest.raises(RuntimeError) as info:
        rc.get("users")
    assert str(info.value) == (
        "RedisConn.get('users') was used outside of an application context, so there is no "
        "app to take the connections from. Did you forget rc.init_app(app), or to push an app "
        "context ('with app.app_context():')? Views and 'flask' commands have one."
    )


def test_an_app_without_init_app_says_what_to_do(rc: RedisConn) -> None:
    app = Flask("shop")
    with app.app_context(), pytest.raises(RuntimeError) as info:
        rc["default"]
    assert str(info.value) == (
        "RedisConn['default']: the Flask app 'shop' is not registered with redis_conn. "
        "Did you forget to call rc.init_app(app) in the app factory?"
    )


def test_an_app_of_another_instance_is_refused(make_app: MakeApp) -> None:
    app = make_app()
    with app.app_context(), pytest.raises(RuntimeError) as info:
        RedisConn().get()
    assert str(info.value) == (
        f"RedisConn.get('default'): the Flask app {app.name!r} was registered with another "
        "RedisConn instance. Import and use that instance instead."
    )


def test_get_and_item_give_one_client_per_name_and_aliases_share_it(
    rc: RedisConn, make_app: MakeApp, two_servers: dict[str, Any]
) -> None:
    app = make_app(two_servers)
    with app.app_context():
        assert rc.get("default") is rc["default"] is rc.get() is rc["sessions"]
        assert rc.get("messages") is not rc.get("default")
        assert isinstance(rc.get("messages"), redis.Redis)
        with pytest.raises(ConnectionNotFound) as info:
            rc.get("nope")
    assert str(info.value) == (
        "RedisConn.get('nope'): get() takes a connection name, and 'nope' is not a configured "
        "connection (configured: 'default', 'messages', 'sessions'). To read the key 'nope', "
        "ask a client: rc.get('default').get('nope')."
    )


def test_two_apps_on_one_extension_use_their_own_servers_and_pools(
    rc: RedisConn,
    make_app: MakeApp,
    redis_server: Any,
    redis_server_b: Any,
    raw_a: redis.Redis,
    raw_b: redis.Redis,
) -> None:
    app_a = make_app({"default": {"URL": redis_server.url}})
    app_b = make_app({"default": {"URL": redis_server_b.url}})

    for app in (app_a, app_b):

        @app.get("/")
        def index() -> str:
            rc.get().set("direct", "yes")
            rc.request_pipeline.incr("hits")
            return "ok"

    assert app_a.test_client().get("/").status_code == 200
    for _ in range(2):
        assert app_b.test_client().get("/").status_code == 200

    assert (raw_a.get("hits"), raw_b.get("hits")) == ("1", "2")
    assert raw_a.get("direct") == raw_b.get("direct") == "yes"
    with app_a.app_context():
        client_a = rc.get()
    with app_b.app_context():
        client_b = rc.get()
    assert isinstance(client_a, redis.Redis) and isinstance(client_b, redis.Redis)
    assert client_a is not client_b
    assert client_a.connection_pool is not client_b.connection_pool


def test_core_api_resolves_names_in_the_current_app(
    rc: RedisConn,
    make_app: MakeApp,
    redis_server: Any,
    redis_server_b: Any,
    raw_a: redis.Redis,
    raw_b: redis.Redis,
) -> None:
    app_a = make_app({"default": {"URL": redis_server.url}})
    app_b = make_app({"default": {"URL": redis_server_b.url}})

    def library_code(value: str) -> None:  # knows nothing of Flask
        redis_conn.get_redis().set("plain", value)
        with pipeline(name="default", autocommit=True) as p:
            p.set("piped", value)

    with app_a.app_context():
        assert current_registry() is app_registry(app_a)
        assert redis_conn.get_redis() is rc.get()
        library_code("a")
        with app_b.app_context():  # the innermost app wins
            assert redis_conn.get_redis() is rc.get() is not app_registry(app_a).get()
            library_code("b")
    assert (raw_a.get("plain"), raw_a.get("piped")) == ("a", "a")
    assert (raw_b.get("plain"), raw_b.get("piped")) == ("b", "b")
    # Outside any app: the process-wide registry.
    assert current_registry() is redis_conn.connections


def test_current_pipeline_is_none_outside_a_request(rc: RedisConn, make_app: MakeApp) -> None:
    app = make_app()
    assert current_pipeline() is None
    with app.app_context():
        assert current_pipeline() is None
        with pytest.raises(RuntimeError) as info:
            rc.request_pipeline  # noqa: B018
    assert str(info.value) == (
        "RedisConn.request_pipeline belongs to a request, and there is no request here. "
        "Outside a request use 'with redis_conn.pipeline(name=...) as p:' and call p.execute()."
    )
