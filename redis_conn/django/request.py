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

from django.http import HttpRequest

from redis_conn.pipeline import Pipeline


class RequestRedis(Pipeline):
    """The type of ``request.redis``: the request's root pipeline on ``default``, plus
    ``aexecute()`` for async views. Never instantiated; the middleware sets a proxy that
    creates the pipeline on first use."""

    async def aexecute(self) -> None:
        """``execute()`` for async views: the round trips run in a worker thread."""
        raise NotImplementedError  # the proxy implements it; this class only types it

    def __getitem__(self, name: str) -> Pipeline:  # type: ignore[override]
        # The same root on another connection is a plain Pipeline: aexecute() is the root's.
        raise NotImplementedError


class RedisHttpRequest(HttpRequest):
    """An ``HttpRequest`` that went through ``RequestPipelineMiddleware``."""

    redis: RequestRedis
