"""Views of the observability tests: pages a browser loads, with the toolbar or Server-Timing."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse

PAGE = (
    "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
)


def redis(request: HttpRequest) -> Any:
    return request.redis  # type: ignore[attr-defined]


def dashboard(request: HttpRequest) -> HttpResponse:
    """Three commands on two servers, an execute() in the middle: 2 executes, 3 round trips."""
    p = redis(request)
    p.set("greeting", "s3cret-value")
    p.incr("page:views")
    p.execute()  # the first round trip, to read a result in the view
    p.incr("page:views")
    p["messages"].lpush("audit:log", "s3cret-entry")
    return HttpResponse(PAGE.format(title="Dashboard"))


async def async_dashboard(request: HttpRequest) -> HttpResponse:
    p = redis(request)
    p.incr("page:views")
    p["messages"].lpush("audit:log", "s3cret-entry")
    return HttpResponse(PAGE.format(title="Async dashboard"))


def quiet(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE.format(title="No Redis here"))


def timed(request: HttpRequest) -> HttpResponse:
    """A view that reports its own timing too: the header keeps both."""
    redis(request).incr("page:views")
    response = HttpResponse(PAGE.format(title="Timed"))
    response["Server-Timing"] = "app;dur=12"
    return response
