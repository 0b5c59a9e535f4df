"""IGNORE_EXCEPTIONS in one place: the ``omit_exception`` decorator (as django-redis's).

A cache method decorated with ``@omit_exception("GET", miss=CALL_DEFAULT)`` runs as written;
when Redis is down or slow (:data:`NETWORK_ERRORS`) the cache's ``_ignored`` re-raises, or with
IGNORE_EXCEPTIONS logs (naming the command and the prefixed key) and returns the miss value.
The key and the miss value are worked out from the call's arguments only on that error path.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: A down server, a full pool, a timeout: what IGNORE_EXCEPTIONS turns into a miss.
NETWORK_ERRORS = (RedisConnectionError, RedisTimeoutError)

F = TypeVar("F", bound=Callable[..., Any])

#: The call's arguments by name (defaults applied), ``self`` among them.
Arguments = Mapping[str, Any]


def CALL_DEFAULT(args: Arguments) -> Any:  # read as a constant: miss=CALL_DEFAULT
    """The miss value is the call's own ``default`` argument (``get(key, default)``)."""
    return args["default"]


def made_key(args: Arguments) -> str:
    """The Redis key of the call's ``key`` and ``version`` (``prefix`` too, where it has one)."""
    return str(args["self"].client.make_key(args["key"], args["version"], args.get("prefix")))


def first_key(args: Arguments) -> str:
    """The Redis key of the first key of the call's ``data`` (``set_many(data)``)."""
    return str(args["self"].client.make_key(next(iter(args["data"])), args["version"]))


def omit_exception(
    command: str,
    miss: Any = None,
    *,
    key: Callable[[Arguments], str] = made_key,
) -> Callable[[F], F]:
    """Decorate a cache method, sync or async, so that a network error goes to ``_ignored``.

    ``miss`` is what the method returns for an ignored failure: a constant (not callable), or
    a function of the call's arguments (:func:`CALL_DEFAULT`, or e.g. ``lambda a: {}`` for a
    fresh mutable value). ``key`` makes the prefixed key the log names (default: from the
    call's ``key`` and ``version``).
    """

    def decorate(method: F) -> F:
        signature = inspect.signature(method)

        def ignored(exc: Exception, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            self = args[0]
            if not self._ignore_exceptions:
                raise exc
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = bound.arguments
            result = miss(arguments) if callable(miss) else miss
            return self._ignored(exc, command, key(arguments), result)

        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await method(*args, **kwargs)
                except NETWORK_ERRORS as exc:
                    return ignored(exc, args, kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except NETWORK_ERRORS as exc:
                return ignored(exc, args, kwargs)

        return cast(F, wrapper)

    return decorate
