"""Flask-Caching, Flask-Session and Flask-Limiter on named connections of the app's RedisConn,
with the real extensions and a real server: one pool per connection, never a second one."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from flask import Flask, session
from flask_caching import Cache
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from redis_conn.exceptions import ConfigurationError
from redis_conn.flask import RedisConn
from redis_conn.flask.caching import RedisConnCache
from redis_conn.flask.extension import app_registry
from redis_conn.flask.limiter import RedisConnStorage, storage_uri
from redis_conn.flask.session import RedisConnSession, RedisConnSessionInterface

try:
    from servers import wait_until
except ModuleNotFoundError:  # tests/ imported as a package
    from tests.servers import wait_until

CACHE_TYPE = "redis_conn.flask.caching.RedisConnCache"


def connections(url: str) -> dict[str, Any]:
    return {"default": {"URL": url}, "cache": {"ALIAS": "default"}, "limits": {"ALIAS": "default"}}


@pytest.fixture
def earlier_clients(raw_a: redis.Redis) -> set[str]:
    """The ids of server A's connections before the test (other tests' idle pools)."""
    return {str(c["id"]) for c in raw_a.client_list()}


def new_clients(raw: redis.Redis, earlier: set[str]) -> list[dict[str, Any]]:
    """The server's connections opened during the test, ``raw``'s own excepted."""
    return [c for c in raw.client_list() if str(c["id"]) not in earlier]


def assert_one_pool(app: Flask, raw: redis.Redis, earlier: set[str]) -> None:
    registry = app_registry(app)
    assert set(registry.created_clients()) == {"default"}
    usage = registry.get("default").connection_pool.usage()
    assert usage.created == len(new_clients(raw, earlier)) == 1


def test_flask_caching_uses_the_named_connection(
    make_app: Any, rc: RedisConn, redis_server: Any, raw_a: redis.Redis, earlier_clients: set[str]
) -> None:
    app = make_app(
        connections(redis_server.url),
        cache_type=CACHE_TYPE,
        cache_redis_connection="cache",
        cache_key_prefix="fc:",
    )
    cache = Cache(app)
    calls: list[int] = []

    @app.get("/slow")
    @cache.cached(timeout=60)
    def slow() -> str:
        calls.append(1)
        return f"computed {len(calls)}"

    client = app.test_client()
    assert client.get("/slow").text == "computed 1"
    assert client.get("/slow").text == "computed 1"  # from Redis
    assert raw_a.keys("fc:*") == ["fc:view//slow"]
    with app.app_context():
        cache.set("doc", {"a": 1})
        assert cache.get("doc") == {"a": 1}
        assert isinstance(app.extensions["cache"][cache], RedisConnCache)
        rc.get("default").incr("hits")  # raw use, the same pool
    assert_one_pool(app, raw_a, earlier_clients)


def test_flask_caching_follows_the_registry_after_close_all(
    make_app: Any, redis_server: Any, raw_a: redis.Redis, earlier_clients: set[str]
) -> None:
    app = make_app(connections(redis_server.url), cache_type=CACHE_TYPE)
    cache = Cache(app)
    with app.app_context():
        cache.set("k", 1)
        app_registry(app).close_all()  # the old client and pool are gone
        assert cache.get("k") == 1  # on the registry's new client
    assert_one_pool(app, raw_a, earlier_clients)


def test_flask_caching_refuses_a_client_of_its_own(make_app: Any, redis_server: Any) -> None:
    app = make_app(
        connections(redis_server.url), cache_type=CACHE_TYPE, cache_redis_url=redis_server.url
    )
    with pytest.raises(ConfigurationError) as caught:
        Cache(app)
    assert str(caught.value) == (
        "CACHE_REDIS_URL cannot be used with RedisConnCache: it uses the connection named by "
        "CACHE_REDIS_CONNECTION; set the server in REDIS_CONNECTIONS."
    )


def test_flask_caching_and_session_on_a_decoding_connection(
    make_app: Any, redis_server: Any
) -> None:
    app = make_app(
        {"default": {"URL": redis_server.url, "OPTIONS": {"decode_responses": True}}},
        cache_type=CACHE_TYPE,
        secret_key="not-secret",
    )
    cache = Cache(app)
    RedisConnSession(app)

    @app.post("/remember/<name>")
    def remember(name: str) -> str:
        session["user"] = name
        return "ok"

    @app.get("/whoami")
    def whoami() -> str:
        return str(session.get("user", "anonymous"))

    with app.app_context():
        cache.set_many({"a": {"x": 1}, "n": 3})
        assert cache.get("a") == {"x": 1}  # a pickle, read as bytes
        assert cache.get_many("a", "n", "z") == [{"x": 1}, 3, None]
        raw = app_registry(app).get("default")
        assert raw.get("flask_cache_n") == "3"  # raw use still decodes
    client = app.test_client()
    client.post("/remember/ann")
    assert client.get("/whoami").text == "ann"  # msgpack, read as bytes


@pytest.fixture
def session_app(make_app: Any, redis_server: Any) -> Flask:
    app: Flask = make_app(
        {"default": {"URL": redis_server.url}, "sessions": {"ALIAS": "default"}},
        secret_key="not-secret",
        session_redis_connection="sessions",
    )
    RedisConnSession(app)

    @app.post("/login/<name>")
    def login(name: str) -> str:
        session["user"] = name
        return "ok"

    @app.post("/logout")
    def logout() -> str:
        session.clear()
        return "ok"

    @app.get("/whoami")
    def whoami() -> str:
        return str(session.get("user", "anonymous"))

    return app


def test_flask_session_login_logout(
    session_app: Flask, raw_a: redis.Redis, earlier_clients: set[str]
) -> None:
    assert isinstance(session_app.session_interface, RedisConnSessionInterface)
    client = session_app.test_client()
    client.post("/login/ann")
    assert client.get("/whoami").text == "ann"
    (key,) = raw_a.keys("session:*")
    assert 0 < raw_a.ttl(key) <= 31 * 24 * 3600  # PERMANENT_SESSION_LIFETIME
    client.post("/logout")
    assert raw_a.keys("session:*") == []
    assert client.get("/whoami").text == "anonymous"
    assert_one_pool(session_app, raw_a, earlier_clients)


def test_flask_session_expires_in_redis(session_app: Flask, raw_a: redis.Redis) -> None:
    session_app.config["PERMANENT_SESSION_LIFETIME"] = 1
    client = session_app.test_client()
    client.post("/login/ann")
    assert client.get("/whoami").text == "ann"
    deadline = time.monotonic() + 10
    while raw_a.keys("session:*") and time.monotonic() < deadline:
        time.sleep(0.05)  # polling Redis's own expiry, bounded by the deadline
    assert raw_a.keys("session:*") == []
    assert client.get("/whoami").text == "anonymous"


def test_flask_session_refuses_session_redis(make_app: Any, redis_server: Any) -> None:
    app = make_app({"default": {"URL": redis_server.url}}, session_redis=redis.Redis())
    with pytest.raises(ConfigurationError) as caught:
        RedisConnSession(app)
    assert str(caught.value) == (
        "SESSION_REDIS cannot be used with RedisConnSession: it uses the connection named by "
        "SESSION_REDIS_CONNECTION; set the server in REDIS_CONNECTIONS."
    )
    app.config["SESSION_REDIS"].close()


def limited_app(make_app: Any, url: str, strategy: str) -> Flask:
    app: Flask = make_app(
        connections(url), ratelimit_storage_uri=storage_uri("limits"), ratelimit_strategy=strategy
    )
    limiter = Limiter(get_remote_address, app=app, default_limits=["2 per minute"])
    assert isinstance(limiter.storage, RedisConnStorage)

    @app.get("/")
    def index() -> str:
        return "ok"

    return app


@pytest.mark.parametrize("strategy", ["fixed-window", "moving-window", "sliding-window-counter"])
def test_flask_limiter_counts_on_the_named_connection(
    make_app: Any, redis_server: Any, raw_a: redis.Redis, strategy: str, earlier_clients: set[str]
) -> None:
    app = limited_app(make_app, redis_server.url, strategy)
    client = app.test_client()
    assert [client.get("/").status_code for _ in range(3)] == [200, 200, 429]
    assert raw_a.keys("LIMITS:*") != []
    assert_one_pool(app, raw_a, earlier_clients)


def test_flask_limiter_follows_each_app(
    make_app: Any, redis_server: Any, redis_server_b: Any, raw_a: redis.Redis, raw_b: redis.Redis
) -> None:
    app_a = limited_app(make_app, redis_server.url, "fixed-window")
    app_b = limited_app(make_app, redis_server_b.url, "fixed-window")
    assert app_a.test_client().get("/").status_code == 200
    assert [app_b.test_client().get("/").status_code for _ in range(3)] == [200, 200, 429]
    assert len(raw_a.keys("LIMITS:*")) == 1
    assert len(raw_b.keys("LIMITS:*")) == 1
    (key_a,) = raw_a.keys("LIMITS:*")
    assert raw_a.get(key_a) == "1"  # raw_a decodes; app A counted its own request only


def test_limiter_storage_takes_no_options() -> None:
    with pytest.raises(ValueError) as caught:
        RedisConnStorage("redis-conn://limits", socket_timeout=1)
    assert str(caught.value) == (
        "Storage 'redis-conn://limits' takes no options (socket_timeout): the connection's "
        "settings are in REDIS_CONNECTIONS."
    )


def test_flask_caching_reads_locally_on_a_client_cache_connection(
    make_app: Any, redis_server: Any, raw_a: redis.Redis
) -> None:
    """CLIENT_CACHE on the connection: Flask-Caching's reads are answered from process
    memory, and another client's write is seen (CONTRACT section 11)."""
    app = make_app(
        {
            "default": {"URL": redis_server.url, "CLIENT_CACHE": True},
            "plain": {"URL": redis_server.url},
        },
        cache_type=CACHE_TYPE,
        cache_key_prefix="fcc:",
    )
    cache = Cache(app)
    # Another process, as far as the cache can tell: a connection without CLIENT_CACHE.
    writer = Cache(
        app,
        config={
            "CACHE_TYPE": CACHE_TYPE,
            "CACHE_REDIS_CONNECTION": "plain",
            "CACHE_KEY_PREFIX": "fcc:",
        },
    )
    with app.app_context():
        local = app_registry(app).client_cache("default")
        assert local is not None
        wait_until(lambda: local.listening, 10, lambda: "the client cache listens")
        cache.set("doc", {"a": 1})

        def answered_locally() -> bool:
            hits = local.hits
            return bool(cache.get("doc") == {"a": 1} and local.hits > hits)

        wait_until(answered_locally, 10, lambda: "Flask-Caching's get answered locally")
        writer.set("doc", {"a": 2})
        wait_until(lambda: cache.get("doc") == {"a": 2}, 10, lambda: "the new value is seen")
