"""The example site's cache: a cached page and cache-backed sessions, on its FAKE default."""

from __future__ import annotations

from typing import Any

from django.test import Client

import redis_conn
from example_django.example_site import settings as example_settings


def use_example(settings: Any) -> None:
    settings.ROOT_URLCONF = "example_django.example_site.urls"
    settings.MIDDLEWARE = example_settings.MIDDLEWARE
    settings.REDIS_CONNECTIONS = example_settings.connections_from_env({})  # FAKE
    settings.CACHES = example_settings.CACHES
    settings.SESSION_ENGINE = example_settings.SESSION_ENGINE


def test_the_about_page_is_cached_on_the_default_connection(settings: Any) -> None:
    use_example(settings)
    client = Client()
    first = client.get("/about/")
    assert first.status_code == 200
    assert b"cached for 30 seconds" in first.content
    assert client.get("/about/").content == first.content
    keys = redis_conn.get_redis("default").keys("example:1:views.decorators.cache.*")
    assert len(keys) == 2  # the page and its headers, as Django's cache middleware stores them
    assert redis_conn.connections.spec("default").kind == "fake"


def test_visits_count_in_the_cache_backed_session(settings: Any) -> None:
    use_example(settings)
    client, other = Client(), Client()
    assert [client.get("/visits/").json() for _ in range(2)] == [{"visits": 1}, {"visits": 2}]
    assert other.get("/visits/").json() == {"visits": 1}  # another session
    sessions = redis_conn.get_redis("default").keys("example:1:django.contrib.sessions.cache*")
    assert len(sessions) == 2
