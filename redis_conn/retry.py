"""RETRY: reconnect and resend after a dropped connection, but never a write, never a bad login.

Three kinds of ``ConnectionError`` are given up on at once:

- :class:`~redis_conn.exceptions.OutcomeUnknown` (``ConnectionLostAfterWrite``): a command that
  is not read-only was written before the connection dropped, so it may have run; sending it
  again could run it twice (CONTRACT section 6). The guarded connections raise it.
- redis-py's ``AuthenticationError`` and ``AuthorizationError``: re-sending a wrong password,
  with backoff, RETRY times for every command means seconds of delay and a flood of failed
  AUTHs in the server's ACL log, for an answer that cannot change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.retry import Retry as RedisAsyncRetry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry as RedisRetry

from redis_conn.exceptions import OutcomeUnknown

T = TypeVar("T")

NEVER_RETRIED: tuple[type[Exception], ...] = (
    OutcomeUnknown,
    AuthenticationError,
    AuthorizationError,
)


class _FinalError(Exception):
    """Carries an error past the retry loop, which only catches the errors it may retry."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Retry(RedisRetry):
    """redis-py's sync ``Retry`` that gives up at once on :data:`NEVER_RETRIED` errors."""

    def call_with_retry(self, do: Callable[[], T], fail: Any, *args: Any, **kwargs: Any) -> T:
        def attempt() -> T:
            try:
                return do()
            except NEVER_RETRIED as error:
                raise _FinalError(error) from None

        try:
            return super().call_with_retry(attempt, fail, *args, **kwargs)
        except _FinalError as final:
            error = final.error
        raise error


class AsyncRetry(RedisAsyncRetry):
    """redis-py's asyncio ``Retry`` that gives up at once on :data:`NEVER_RETRIED` errors."""

    async def call_with_retry(
        self, do: Callable[[], Awaitable[T]], fail: Any, *args: Any, **kwargs: Any
    ) -> T:
        async def attempt() -> T:
            try:
                return await do()
            except NEVER_RETRIED as error:
                raise _FinalError(error) from None

        try:
            return await super().call_with_retry(attempt, fail, *args, **kwargs)
        except _FinalError as final:
            error = final.error
        raise error


def make_retry(attempts: int, retry_class: type[RedisRetry] | type[RedisAsyncRetry] = Retry) -> Any:
    """Retry connection errors ``attempts`` times with exponential backoff and jitter.

    Timeouts are not retried: the server may already have run a non-idempotent command.
    """
    return retry_class(
        EqualJitterBackoff(cap=1.0, base=0.05),
        attempts,
        supported_errors=(RedisConnectionError,),
    )
