"""redis-py's standalone clients, with the two things a named connection adds to them.

- **A reply that cannot be read is an unknown outcome** (CONTRACT section 13). Once a command
  was written, any failure inside the client while its reply is read or parsed (a bug, or a
  redis-py release that changed something the package relies on) surfaces as
  :class:`~redis_conn.exceptions.ReplyNotUnderstood`, section 6's "may or may not have run"
  error, never as a bare ``AttributeError`` or ``TypeError``. Errors the server sent and
  redis-py's own errors pass unchanged.
- **A pipeline gives its connection back once** (CONTRACT sections 6 and 10). redis-py's
  ``Pipeline.__del__`` calls ``reset()``, which releases the pipeline's connection; a pipeline
  whose ``reset()`` was interrupted between releasing the connection and forgetting it would
  release it a second time when the garbage collector (in any thread) finalises it, while
  another thread holds it. Ours forgets instead: a connection still held by a dropped pipeline
  is only weakly referenced by the pool, so it is closed and its place freed when collected.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio
import redis.asyncio.client
import redis.client
from redis.exceptions import RedisError

from redis_conn.exceptions import ReplyNotUnderstood
from redis_conn.read_only import batch_label
from redis_conn.read_only import command_name as what

__all__ = ["AsyncNamedPipeline", "AsyncNamedRedis", "NamedPipeline", "NamedRedis"]


def _unreadable(pool: Any, what: str, exc: Exception) -> ReplyNotUnderstood:
    return ReplyNotUnderstood(str(getattr(pool, "connection_name", "") or ""), what, exc)


def _batch_label(pipe: Any) -> str:
    # redis-py's sync pipeline says ``transaction``, its asyncio one ``is_transaction``.
    transaction = getattr(pipe, "transaction", None) or getattr(pipe, "is_transaction", False)
    kind = "transaction" if transaction or pipe.explicit_transaction else "pipeline"
    return batch_label(kind, len(pipe.command_stack))


class _SyncReplies:
    """Mixed in front of a redis-py sync client or pipeline: the reply rule."""

    connection_pool: Any

    def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
        try:
            return super().parse_response(connection, command_name, **options)  # type: ignore[misc]
        except RedisError:
            raise
        except Exception as exc:
            raise _unreadable(self.connection_pool, what((command_name,)), exc) from exc


class _AsyncReplies:
    """Mixed in front of a redis-py asyncio client or pipeline: the reply rule."""

    connection_pool: Any

    async def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
        try:
            return await super().parse_response(  # type: ignore[misc]
                connection, command_name, **options
            )
        except RedisError:
            raise
        except Exception as exc:
            raise _unreadable(self.connection_pool, what((command_name,)), exc) from exc


class NamedRedis(_SyncReplies, redis.Redis):
    """``redis.Redis`` for a named connection (see the module docstring)."""

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> NamedPipeline:
        return NamedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class NamedPipeline(_SyncReplies, redis.client.Pipeline):
    """redis-py's pipeline, with the reply rule and a single release."""

    #: Set by a CLIENT_CACHE connection's client: the batch's writes drop local copies.
    client_cache: Any = None

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        label = _batch_label(self)
        cache = self.client_cache
        sent = [args for args, _ in self.command_stack] if cache is not None else []
        try:
            return super().execute(raise_on_error)
        except RedisError:
            raise
        except Exception as exc:  # after the batch was written (packing raises DataError)
            raise _unreadable(self.connection_pool, label, exc) from exc
        finally:
            if cache is not None:
                cache.wrote_all(sent)

    def __del__(self) -> None:
        # Never release from a finalizer (see the module docstring): forget the connection.
        self.connection = None


class AsyncNamedRedis(_AsyncReplies, redis.asyncio.Redis):  # type: ignore[misc]
    """``redis.asyncio.Redis`` for a named connection: the reply rule."""

    def pipeline(
        self, transaction: bool = True, shard_hint: str | None = None
    ) -> redis.asyncio.client.Pipeline:
        return AsyncNamedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class AsyncNamedPipeline(_AsyncReplies, redis.asyncio.client.Pipeline):  # type: ignore[misc]
    """redis-py's asyncio pipeline with the reply rule."""

    #: Set by a CLIENT_CACHE connection's client: the batch's writes drop local copies.
    client_cache: Any = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        label = _batch_label(self)
        cache = self.client_cache
        sent = [args for args, _ in self.command_stack] if cache is not None else []
        try:
            return await super().execute(raise_on_error)
        except RedisError:
            raise
        except Exception as exc:
            raise _unreadable(self.connection_pool, label, exc) from exc
        finally:
            if cache is not None:
                cache.wrote_all(sent)
