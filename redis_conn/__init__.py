"""Named Redis connections for Django and Flask: one pool per name per process."""

from __future__ import annotations

from redis_conn.exceptions import (
    ConfigurationError,
    ConnectionNotFound,
    PipelineError,
    PoolExhausted,
    RedisConnError,
    ResultNotReady,
)
from redis_conn.registry import ConnectionRegistry, connections, get_async_redis, get_redis

__all__ = [
    "ConfigurationError",
    "ConnectionNotFound",
    "ConnectionRegistry",
    "PipelineError",
    "PoolExhausted",
    "RedisConnError",
    "ResultNotReady",
    "connections",
    "get_async_redis",
    "get_redis",
]
