"""Cases for tests/test_typing.py, checked by ``mypy --strict`` with django-stubs; not run.

A line ending in ``# E: text`` must get that error, ``# N: text`` that note (``reveal_type``);
every other line must get nothing.
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
    request.redis.incr("hits")  # E: "HttpRequest" has no attribute "redis"  [attr-defined]
    return HttpResponse("ok")


def typed_request(request: RedisHttpRequest) -> HttpResponse:
    hits = request.redis.incr("hits")
    reveal_type(hits)  # N: Revealed type is "redis_conn.pipeline.Future[Any]"
    reveal_type(request.redis["users"])  # N: Revealed type is "redis_conn.pipeline.Pipeline"
    request.redis.execute()
    return HttpResponse(str(hits.result))


async def typed_async_request(request: RedisHttpRequest) -> HttpResponse:
    request.redis.incr("hits")
    await request.redis.aexecute()
    return HttpResponse("ok")


def either_kind() -> None:
    reveal_type(redis_conn.get_redis("users"))  # N: Revealed type is "redis.client.Redis | redis.cluster.RedisCluster"


def wants_a_redis(client: redis.Redis) -> None: ...


def wants_a_cluster(client: RedisCluster) -> None: ...


def typed_getters() -> None:
    wants_a_redis(redis_conn.get_redis("users"))  # E: Argument 1 to "wants_a_redis" has incompatible type "Redis | RedisCluster"; expected "Redis"  [arg-type]
    wants_a_redis(redis_conn.get_standalone_redis("users"))
    wants_a_cluster(redis_conn.get_cluster_redis("cache"))
    reveal_type(redis_conn.get_cluster_redis("cache"))  # N: Revealed type is "redis.cluster.RedisCluster"


async def typed_async_getters() -> None:
    standalone = redis_conn.get_async_standalone_redis("users")
    reveal_type(standalone)  # N: Revealed type is "redis.asyncio.client.Redis"
    cluster: AsyncRedisCluster = redis_conn.get_async_cluster_redis("cache")
    await cluster.aclose()
