"""RETRY: reconnect and resend after a dropped connection, but never after a refused login.

redis-py's ``AuthenticationError`` and ``AuthorizationError`` subclass its ``ConnectionError``,
so a plain ``Retry(supported_errors=(ConnectionError,))`` would send a wrong password again,
with backoff, RETRY times for every command: seconds of delay and a flood of failed AUTHs in the
server's ACL log, for an answer that cannot change. These classes re-raise them at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio.retry import Retry as RedisAsyncRetry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import AuthenticationError, AuthorizationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry as RedisRetry

T = TypeVar("T")

NEVER_RETRIED: tuple[type[Exception], ...] = (AuthenticationError, AuthorizationError)


class _FinalError(Exception):
    """Carries an error past the retry loop, which only catches the errors it may retry."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Retry(RedisRetry):
    """redis-py's sync ``Retry`` that gives up at once on authentication errors."""

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
    """redis-py's asyncio ``Retry`` that gives up at once on authentication errors."""

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
