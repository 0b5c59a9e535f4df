"""Django's ``BaseCacheTests`` on redis_conn's backend (sync and async paths), and sessions.

Only classes are defined here; every test of the cache classes is Django's own.
"""

from __future__ import annotations

import time

import redis
from cache import tests as django_cache_tests
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.test import TestCase, override_settings

from redis_conn.django.cache import RedisCache
from redis_conn.registry import current_registry

from .backends import ASYNC_TWINS, AsyncPathRedisCache

SYNC_PARAMS = {"BACKEND": "redis_conn.django.cache.RedisCache", "LOCATION": "cache"}
ASYNC_PARAMS = {
    "BACKEND": "redis_conn_cache_suite.backends.AsyncPathRedisCache",
    "LOCATION": "async_cache",
}
# BaseCache's own async methods that only call other async methods (ours): inherited, and
# asyncio-only all the same (test_django_cache_async.py checks no sync client is made).
BUILT_ON_OURS = frozenset({"aget_or_set", "adecr", "adecr_version"})
CACHED_PARAMS = {"BACKEND": "redis_conn.django.cache.RedisCache", "LOCATION": "cached"}
ASYNC_CACHED_PARAMS = {
    "BACKEND": "redis_conn_cache_suite.backends.AsyncPathRedisCache",
    "LOCATION": "async_cached",
}
SESSION_PARAMS = {"BACKEND": "redis_conn.django.cache.RedisCache", "LOCATION": "sessions"}


def caches_setting(params: dict[str, str]) -> dict[str, dict[str, object]]:
    # Exactly what Django's RedisCacheTests uses, on our backend.
    return django_cache_tests.caches_setting_for_tests(
        base=params, exclude=django_cache_tests.redis_excluded_caches
    )


@override_settings(CACHES=caches_setting(SYNC_PARAMS))
class RedisConnCacheTests(django_cache_tests.BaseCacheTests, TestCase):
    incr_decr_type_error = redis.ResponseError
    # The one test of Django's RedisCacheTests about the backend rather than its client class.
    test_get_backend_timeout_method = (
        django_cache_tests.RedisCacheTests.test_get_backend_timeout_method
    )

    def test_backend_is_redis_conn(self) -> None:
        self.assertIs(type(caches["default"]), RedisCache)


@override_settings(CACHES=caches_setting(ASYNC_PARAMS))
class RedisConnAsyncPathCacheTests(django_cache_tests.BaseCacheTests, TestCase):
    incr_decr_type_error = redis.ResponseError
    test_get_backend_timeout_method = (
        django_cache_tests.RedisCacheTests.test_get_backend_timeout_method
    )

    def test_backend_answers_through_async_methods(self) -> None:
        cache = caches["default"]
        self.assertIs(type(cache), AsyncPathRedisCache)
        for name in ASYNC_TWINS:
            self.assertEqual(getattr(type(cache), name[1:]).answered_by, name)
            # The async method itself is redis_conn's, not Django's sync_to_async default.
            self.assertIs(getattr(type(cache), name), getattr(RedisCache, name))
            if name in BUILT_ON_OURS:
                continue
            self.assertIsNot(getattr(RedisCache, name), getattr(BaseCache, name))


@override_settings(CACHES=caches_setting(CACHED_PARAMS))
class RedisConnClientCacheTests(RedisConnCacheTests):
    """Every test again with CLIENT_CACHE: a local copy never outlives a write."""

    def test_reads_were_answered_locally(self) -> None:
        cache = caches["default"]
        cache.set("local", "value")
        for _ in range(50):
            self.assertEqual(cache.get("local"), "value")
        local = cache._redis(None).client_cache  # type: ignore[attr-defined]
        self.assertGreater(local.hits, 0)


@override_settings(CACHES=caches_setting(ASYNC_CACHED_PARAMS))
class RedisConnAsyncClientCacheTests(RedisConnAsyncPathCacheTests):
    """The async path (MULTIPLEX) again with CLIENT_CACHE."""

    def test_reads_were_answered_locally(self) -> None:
        cache = caches["default"]
        cache.set("local", "value")
        local = current_registry().client_cache("async_cached")
        assert local is not None
        hits = local.hits
        for _ in range(50):
            self.assertEqual(cache.get("local"), "value")  # aget, behind the sync facade
        self.assertGreater(local.hits, hits)


@override_settings(
    CACHES={"default": SESSION_PARAMS},
    SESSION_ENGINE="django.contrib.sessions.backends.cache",
    ROOT_URLCONF="redis_conn_cache_suite.urls",
)
class SessionsOnRedisConnCacheTests(TestCase):
    """Log in, log out and session expiry, with the sessions in Redis through our backend."""

    @classmethod
    def setUpTestData(cls) -> None:
        User.objects.create_user("ann", password="s3cret-pw")

    def setUp(self) -> None:
        self.redis = redis.Redis.from_url(settings.REDIS_CONNECTIONS["sessions"]["URL"])
        self.addCleanup(self.redis.close)
        caches["default"].clear()

    def log_in(self) -> None:
        response = self.client.post("/login/", {"username": "ann", "password": "s3cret-pw"})
        self.assertEqual(response.status_code, 302)

    def test_login_and_logout(self) -> None:
        self.assertEqual(self.client.get("/whoami/").content, b"anonymous")
        self.log_in()
        session_key = self.client.cookies[settings.SESSION_COOKIE_NAME].value
        self.assertEqual(
            self.session_keys(), [f":1:django.contrib.sessions.cache{session_key}".encode()]
        )
        self.assertEqual(self.client.get("/whoami/").content, b"ann")
        self.client.post("/logout/")
        self.assertEqual(self.client.get("/whoami/").content, b"anonymous")
        self.assertEqual(self.session_keys(), [])

    def test_session_expires_in_redis(self) -> None:
        with self.settings(SESSION_COOKIE_AGE=1):
            self.log_in()
            self.assertEqual(self.client.get("/whoami/").content, b"ann")
            self.assertGreater(self.redis.pttl(self.session_keys()[0]), 0)
            deadline = time.monotonic() + 10
            while self.session_keys() and time.monotonic() < deadline:
                time.sleep(0.05)  # polling Redis's own expiry, bounded by the deadline
            self.assertEqual(self.session_keys(), [])
            self.assertEqual(self.client.get("/whoami/").content, b"anonymous")

    def session_keys(self) -> list[bytes]:
        return self.redis.keys(":1:django.contrib.sessions.cache*")
