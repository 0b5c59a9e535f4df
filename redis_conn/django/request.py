"""Typed views: annotate ``request`` as :class:`RedisHttpRequest` and a type checker knows
``request.redis`` (the django-htmx pattern)::

    from django.http import HttpResponse
    from redis_conn.django import RedisHttpRequest

    def view(request: RedisHttpRequest) -> HttpResponse:
        hits = request.redis.incr("hits")  # Future[Any]
        ...

Both classes are for annotations: Django still passes its own request (``WSGIRequest``,
``ASGIRequest``), to which ``RequestPipelineMiddleware`` adds ``redis``; nothing here changes
what a view receives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

from redis_conn.pipeline import Pipeline

if TYPE_CHECKING:

    class RequestRedis(Pipeline):
        """The type of ``request.redis``: the request's root pipeline on ``default``, plus
        ``aexecute()`` for async views."""

        async def aexecute(self) -> None:
            """``execute()`` for async views: the round trips run in a worker thread."""

        def __getitem__(self, name: str) -> Pipeline: ...  # type: ignore[override]

else:
    # What the middleware really sets: a proxy that creates the root pipeline on first use
    # and passes every attribute to it (aexecute() is its own).
    from redis_conn.request_scope import PipelineProxy as RequestRedis


class RedisHttpRequest(HttpRequest):
    """An ``HttpRequest`` that went through ``RequestPipelineMiddleware``."""

    redis: RequestRedis
