"""The web benchmark's views, next to the example site's own pages.

* ``bench/plain/``: no Redis at all (what the middleware costs a page that does not use it).
* ``bench/per-command/``: 20 INCRs, each its own round trip, on the shared client.
* ``bench/pipelined/``: the same 20 INCRs queued on ``request.redis``: one round trip.
* ``bench/new-client/``: the common mistake, a ``redis.Redis`` built in the view: a new pool
  and a new connection (TCP connect and handshake) on every request.
"""

from __future__ import annotations

import os

import redis
from django.http import HttpRequest, HttpResponse
from django.urls import path
from example_site.urls import urlpatterns as example_urlpatterns

from redis_conn import get_redis

COMMANDS = 20


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def per_command(request: HttpRequest) -> HttpResponse:
    client = get_redis()
    for i in range(COMMANDS):
        client.incr(f"bench:{i % 4}")
    return HttpResponse("ok")


def pipelined(request: HttpRequest) -> HttpResponse:
    queue = request.redis  # type: ignore[attr-defined]
    for i in range(COMMANDS):
        queue.incr(f"bench:{i % 4}")
    return HttpResponse("ok")


def new_client(request: HttpRequest) -> HttpResponse:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for i in range(COMMANDS):
        client.incr(f"bench:{i % 4}")
    return HttpResponse("ok")


urlpatterns = [
    *example_urlpatterns,
    path("bench/plain/", plain),
    path("bench/per-command/", per_command),
    path("bench/pipelined/", pipelined),
    path("bench/new-client/", new_client),
]
