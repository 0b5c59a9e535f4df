"""``request.redis``: one root pipeline per request, sent once after the view returns.

One class serves WSGI and ASGI (``sync_capable`` / ``async_capable``, as Django's
``MiddlewareMixin``). Per request it costs one small object and a ContextVar set/reset; the
pipeline itself is created only when the view first uses ``request.redis`` (or
``redis_conn.current_pipeline()``), and a request that queued nothing sends nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponseBase

from redis_conn.django.conf import ON_FLUSH_ERROR_SETTING, SERVER_TIMING_SETTING
from redis_conn.django.request import RedisHttpRequest, RequestRedis
from redis_conn.request_scope import (
    OnError,
    PipelineProxy,
    RequestPipeline,
    activate,
    deactivate,
    server_timing_header,
)

_SCOPE_ATTR = "_redis_conn_scope"

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class RequestPipelineMiddleware:
    """Give each request ``request.redis``, its root pipeline on the default connection.

    ``request.redis["messages"]`` queues on another connection in the same batch and
    ``request.redis.execute()`` sends what is queued so far. The rest is sent after the view
    returns, before the response leaves this middleware; if the view raised, it is discarded.
    A failed send follows ``REDIS_CONN_ON_FLUSH_ERROR``, read at each flush: ``"raise"``
    (the default: the error propagates and becomes a 500) or ``"log"`` (logged at ERROR on
    ``redis_conn.request``; the response is kept).

    A streaming response is flushed when the view returns it, before its content is
    generated: its generator cannot queue into ``request.redis`` (that raises RuntimeError).

    With ``REDIS_CONN_SERVER_TIMING = True``, a response whose request sent commands gets
    ``Server-Timing: redis;dur=<ms>;desc="<N> commands, <M> round trips"``.

    List it last in MIDDLEWARE: Django offers a view's exception to ``process_exception``
    from the last middleware to the first, and one that answers with a response stops it
    from reaching this one, which then could not tell that the view raised.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse | AsyncGetResponse) -> None:
        if not apps.is_installed("redis_conn.django"):
            raise ImproperlyConfigured(
                "RequestPipelineMiddleware needs the redis_conn app: add 'redis_conn.django' "
                "to INSTALLED_APPS so that REDIS_CONNECTIONS is read and checked."
            )
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.__acall__(request)
        scope = _start(request)
        token = activate(scope)
        get_response = cast(GetResponse, self.get_response)  # not async_mode
        try:
            response = get_response(request)
        except BaseException:
            scope.discard()
            raise
        else:
            _flush(scope)
            _server_timing(scope, response)
        finally:
            deactivate(token)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        scope = _start(request)
        token = activate(scope)
        get_response = cast(AsyncGetResponse, self.get_response)  # async_mode said so
        try:
            response = await get_response(request)
        except BaseException:
            scope.discard()
            raise
        else:
            if scope.started:
                await scope.aflush(on_error=_on_error())
                _server_timing(scope, response)
            else:
                scope.flush()  # nothing queued: only marks the request's pipeline finished
        finally:
            deactivate(token)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        # Django turns a view's exception into a response before it reaches __call__:
        # this hook is how the middleware learns that the view raised.
        _discard(request)


def _start(request: HttpRequest) -> RequestPipeline:
    scope = RequestPipeline(description=f"{request.method} {request.path}")
    request.__dict__[_SCOPE_ATTR] = scope
    cast(RedisHttpRequest, request).redis = cast(RequestRedis, PipelineProxy(scope))
    return scope


def _discard(request: HttpRequest | None) -> None:
    scope = getattr(request, _SCOPE_ATTR, None) if request is not None else None
    if scope is not None:
        scope.discard()


def _flush(scope: RequestPipeline) -> None:
    # The setting is read only when there is something to send: an unused pipeline costs nothing.
    scope.flush(on_error=_on_error() if scope.started else "raise")


def _server_timing(scope: RequestPipeline, response: HttpResponseBase) -> None:
    # Read only when the request used its pipeline: an unused one costs nothing.
    if scope.started and getattr(settings, SERVER_TIMING_SETTING, False) is True:
        stats = scope.stats
        if stats.round_trips:
            existing = response.headers.get("Server-Timing")
            response.headers["Server-Timing"] = server_timing_header(existing, stats)


def _on_error() -> OnError:
    value: OnError = getattr(settings, ON_FLUSH_ERROR_SETTING, "raise")
    return value


def _exception_turned_into_response(*, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # A middleware below this one raised (the view returned): the client gets a 500,
    # so what the view queued is not sent either.
    _discard(request)


got_request_exception.connect(
    _exception_turned_into_response, dispatch_uid="redis_conn.got_request_exception"
)
