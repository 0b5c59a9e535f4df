"""Named Redis connections for Django and Flask: one pool per name per process."""

from __future__ import annotations

from redis_conn.async_pipeline import AsyncPipeline, async_pipeline
from redis_conn.exceptions import (
    ConfigurationError,
    ConnectionLostAfterWrite,
    ConnectionNotFound,
    OutcomeUnknown,
    PipelineError,
    PoolExhausted,
    RedisConnError,
    ReplyNotUnderstood,
    ResultNotReady,
    TimeoutAfterWrite,
)
from redis_conn.pipeline import Future, Pipeline, pipeline
from redis_conn.registry import (
    ConnectionRegistry,
    connections,
    get_async_cluster_redis,
    get_async_redis,
    get_async_standalone_redis,
    get_cluster_redis,
    get_redis,
    get_standalone_redis,
)
from redis_conn.request_scope import current_pipeline

__all__ = [
    "AsyncPipeline",
    "ConfigurationError",
    "ConnectionLostAfterWrite",
    "ConnectionNotFound",
    "ConnectionRegistry",
    "Future",
    "OutcomeUnknown",
    "Pipeline",
    "PipelineError",
    "PoolExhausted",
    "RedisConnError",
    "ReplyNotUnderstood",
    "ResultNotReady",
    "TimeoutAfterWrite",
    "async_pipeline",
    "connections",
    "current_pipeline",
    "get_async_cluster_redis",
    "get_async_redis",
    "get_async_standalone_redis",
    "get_cluster_redis",
    "get_redis",
    "get_standalone_redis",
    "pipeline",
]
