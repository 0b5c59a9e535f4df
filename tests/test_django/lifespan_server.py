"""A Django site under a real uvicorn, for tests/test_django/test_django_asgi.py (not a test).

Usage: python lifespan_server.py REDIS_URL wrapped|bare

Prints ``PORT <n>`` once it listens. Runs until SIGTERM, which uvicorn turns into a graceful
shutdown (the lifespan shutdown included); then prints ``SERVER-STOPPED`` and, still alive,
waits for its stdin to close, so that the test can look at the Redis server meanwhile.
"""

from __future__ import annotations

import signal
import socket
import sys

import django
import uvicorn
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

import redis_conn
from redis_conn.django.asgi import RedisLifespan


def sync_view(request: HttpRequest) -> HttpResponse:
    # Runs in a worker thread: the process-wide synchronous pool.
    return HttpResponse(str(redis_conn.get_redis().incr("sync")))


async def async_view(request: HttpRequest) -> HttpResponse:
    # Runs on uvicorn's event loop: an asyncio client of that loop.
    return HttpResponse(str(await redis_conn.get_async_redis().incr("async")))


urlpatterns = [path("sync/", sync_view), path("async/", async_view)]


def main(url: str, mode: str) -> None:
    settings.configure(
        SECRET_KEY="lifespan-test",
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["redis_conn.django"],
        MIDDLEWARE=["redis_conn.django.middleware.RequestPipelineMiddleware"],
        REDIS_CONNECTIONS={"default": {"URL": url}},
    )
    django.setup()
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()
    app = RedisLifespan(django_app) if mode == "wrapped" else django_app
    sock = socket.create_server(("127.0.0.1", 0))
    print("PORT", sock.getsockname()[1], flush=True)
    config = uvicorn.Config(app, lifespan="auto", log_level="info")
    # uvicorn restores this handler after its graceful shutdown and raises the signal again:
    # ignore it then, so the process outlives the server.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.Server(config).run(sockets=[sock])
    print("SERVER-STOPPED", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
