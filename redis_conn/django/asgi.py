"""Close the Redis connections when an ASGI server shuts down; Django has no hook for it.

::

    # asgi.py
    from django.core.asgi import get_asgi_application
    from redis_conn.django.asgi import RedisLifespan

    application = RedisLifespan(get_asgi_application())

Django's ASGI handler does not speak the ASGI lifespan protocol, so an async view's clients
(``get_async_redis``, which belong to the server's event loop) were never closed: their sockets
ended with the process. This wrapper answers the lifespan messages itself and passes every
other scope (``http``, ``websocket``) to the application unchanged. On shutdown it awaits the
close of the asyncio clients made on the server's loop, then closes every pool (the clients
that synchronous views used from worker threads).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from redis_conn.registry import ConnectionRegistry, connections

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: ASGI applications type scope and messages in several ways (Django's stubs:
# dict and Mapping; others: MutableMapping), and the wrapper only passes them along.
ASGIApp = Callable[..., Awaitable[None]]


class RedisLifespan:
    """An ASGI application: ``app`` plus the lifespan protocol, which closes the connections."""

    def __init__(self, app: ASGIApp, *, registry: ConnectionRegistry | None = None) -> None:
        self.app = app
        self.registry = registry  # None: the process-wide connections, read at shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Nothing to open: pools are created on first use.
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                except Exception as exc:  # the server logs it and still exits
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def aclose(self) -> None:
        """Close this loop's asyncio clients, then every pool of the registry."""
        registry = self.registry if self.registry is not None else connections
        await registry.aclose_async()
        registry.close_all()
