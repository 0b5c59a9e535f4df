"""Views the tests call through the test client (routed in urls.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

import redis_conn.request_scope
from redis_conn.pipeline import pipeline

TAGGED_COMMANDS = 20


def redis(request: HttpRequest) -> Any:
    return request.redis  # type: ignore[attr-defined]


def hits(request: HttpRequest) -> HttpResponse:
    redis(request).incr("hits")
    return HttpResponse("ok")


def two_backends(request: HttpRequest) -> HttpResponse:
    redis(request).incr("hits")
    redis(request)["messages"].lpush("log", "seen")
    return HttpResponse("ok")


def execute_midway(request: HttpRequest) -> JsonResponse:
    first = redis(request).incr("hits")
    redis(request).execute()
    redis(request).incr("hits")
    return JsonResponse({"first": first.result, "queued_after": len(redis(request))})


def unused(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def raises(request: HttpRequest) -> HttpResponse:
    redis(request).incr("hits")
    raise ValueError("the view failed")


def not_found(request: HttpRequest) -> HttpResponse:
    redis(request).incr("hits")
    raise Http404("no such thing")


def record_visit(user_id: int, pipe: Any = None) -> Any:
    """Library code written against the core API, unaware of Django."""
    with pipeline(pipe, name="messages", autocommit=True) as p:
        return p.rpush("visits", user_id)


def library_code(request: HttpRequest) -> HttpResponse:
    current = redis_conn.request_scope.current_pipeline()
    record_visit(1, current)  # joins the request's batch
    record_visit(2, redis(request))  # the same, through request.redis
    return HttpResponse(f"{len(redis(request))} queued")


def tagged(request: HttpRequest, tag: str) -> JsonResponse:
    """Queue commands tagged with this request's tag; report what this request saw."""
    p = redis(request)
    futures = []
    for i in range(TAGGED_COMMANDS):
        futures.append(p.rpush(f"req:{tag}", f"{tag}:{i}"))
        if i % 5 == 0:
            time.sleep(0.001)  # let other threads interleave
    seen = len(p)
    same = redis_conn.request_scope.current_pipeline() is p._scope.pipeline
    p.execute()
    p.rpush(f"req:{tag}", f"{tag}:after")  # flushed by the middleware
    return JsonResponse({"seen": seen, "same": same, "results": [f.result for f in futures]})


def streaming(request: HttpRequest) -> StreamingHttpResponse:
    redis(request).incr("hits")

    def chunks() -> Iterator[str]:
        yield "start;"
        try:
            redis(request).incr("hits")
        except RuntimeError as exc:
            yield f"refused: {exc}"

    return StreamingHttpResponse(chunks())


async def async_hits(request: HttpRequest) -> HttpResponse:
    redis(request).incr("hits")
    redis(request)["messages"].lpush("log", "seen")
    return HttpResponse("ok")


async def async_raises(request: HttpRequest) -> HttpResponse:
    redis(request).incr("hits")
    raise ValueError("the async view failed")


async def async_slow(request: HttpRequest) -> HttpResponse:
    # BLPOP with a timeout keeps the server busy for that long: the flush takes 0.3 s.
    redis(request).blpop(["nothing-here"], timeout=0.3)
    return HttpResponse("ok")


async def async_execute_midway(request: HttpRequest) -> JsonResponse:
    first = redis(request).incr("hits")
    await redis(request).aexecute()
    return JsonResponse({"first": first.result})


async def async_tagged(request: HttpRequest, tag: str) -> JsonResponse:
    p = redis(request)
    for i in range(TAGGED_COMMANDS):
        p.rpush(f"req:{tag}", f"{tag}:{i}")
        await asyncio.sleep(0)  # let the other requests' tasks run
    same = redis_conn.request_scope.current_pipeline() is p._scope.pipeline
    return JsonResponse({"seen": len(p), "same": same})


class FailsAfterTheView:
    """A middleware below RequestPipelineMiddleware that fails on the way out."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.get_response(request)
        raise RuntimeError("a middleware failed after the view")


class AnswersExceptions:
    """A middleware whose process_exception turns a view's exception into a response."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response: HttpResponse = self.get_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse:
        return HttpResponse("handled", status=418)
