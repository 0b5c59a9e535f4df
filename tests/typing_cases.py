"""Cases for tests/test_typing.py, checked by ``mypy --strict`` with django-stubs; not run.

A comment ``# E: text`` says that the line after it gets that error, ``# N: text`` that note
(of ``reveal_type``); every other line must get nothing.
"""

from __future__ import annotations

from typing import reveal_type

import redis
from django.http import HttpRequest, HttpResponse
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

import redis_conn
from redis_conn.django import RedisHttpRequest


def untyped_request(request: HttpRequest) -> HttpResponse:
    # E: "HttpRequest" has no attribute "redis"  [attr-defined]
    request.redis.incr("hits")
    return HttpResponse("ok")


def typed_request(request: RedisHttpRequest) -> HttpResponse:
    hits = request.redis.incr("hits")
    # N: Revealed type is "redis_conn.futures.Future[Any]"
    reveal_type(hits)
    # N: Revealed type is "redis_conn.pipeline.Pipeline"
    reveal_type(request.redis["users"])
    request.redis.execute()
    return HttpResponse(str(hits.result))


async def typed_async_request(request: RedisHttpRequest) -> HttpResponse:
    request.redis.incr("hits")
    await request.redis.aexecute()
    return HttpResponse("ok")


def either_kind() -> None:
    # N: Revealed type is "redis.client.Redis | redis.cluster.RedisCluster"
    reveal_type(redis_conn.get_redis("users"))


def wants_a_redis(client: redis.Redis) -> None: ...


def wants_a_cluster(client: RedisCluster) -> None: ...


def typed_getters() -> None:
    # E: Argument 1 to "wants_a_redis" has incompatible type "Redis | RedisCluster"; expected "Redis"  [arg-type]
    wants_a_redis(redis_conn.get_redis("users"))
    wants_a_redis(redis_conn.get_standalone_redis("users"))
    wants_a_cluster(redis_conn.get_cluster_redis("cache"))
    # N: Revealed type is "redis.cluster.RedisCluster"
    reveal_type(redis_conn.get_cluster_redis("cache"))


async def typed_async_getters() -> None:
    standalone = redis_conn.get_async_standalone_redis("users")
    # N: Revealed type is "redis.asyncio.client.Redis"
    reveal_type(standalone)
    cluster: AsyncRedisCluster = redis_conn.get_async_cluster_redis("cache")
    await cluster.aclose()
