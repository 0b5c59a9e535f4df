"""A stand-in for a named connection's client, looked up on every use.

Flask extensions keep the client they are given for the life of the app. Handing them the
client object itself would pin it: after ``close_all()`` or in a forked worker the registry
makes a new client and pool, and the extension would go on using the old one, a second pool.
:class:`NamedClient` forwards every attribute to the registry's current client instead.

The extensions store bytes (pickles, msgpack), so its GET and MGET read values as bytes even
on a connection with ``OPTIONS={"decode_responses": True}``, as the Django cache does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis_conn.clients import Client
from redis_conn.internals import NEVER_DECODE
from redis_conn.registry import ConnectionRegistry

_BYTES = {NEVER_DECODE: True}


class NamedClient:
    """Forwards to ``lookup()``: the client of connection ``name``, as it is now."""

    def __init__(self, name: str, lookup: Callable[[], Client]) -> None:
        self.connection_name = name
        self._lookup = lookup

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._lookup(), attribute)

    def get(self, name: Any) -> Any:
        client: Any = self._lookup()
        return client.execute_command("GET", name, **_BYTES)

    def mget(self, keys: Any, *args: Any) -> Any:
        names = [keys, *args] if isinstance(keys, (str, bytes)) else [*keys, *args]
        client: Any = self._lookup()
        return client.execute_command("MGET", *names, **_BYTES)

    def get_encoder(self) -> _ScriptEncoder:
        # redis-py's Script asks for it when it is built (to hash the script text), which may
        # be before any app context exists: answer without looking the client up.
        return _ScriptEncoder()

    def __repr__(self) -> str:
        return f"<NamedClient {self.connection_name!r}>"


class _ScriptEncoder:
    @staticmethod
    def encode(value: str | bytes) -> bytes:
        return value.encode() if isinstance(value, str) else value


def app_connection(registry: ConnectionRegistry, name: str) -> NamedClient:
    """The stand-in for connection ``name`` of ``registry`` (an unknown name fails now)."""
    registry.spec(name)
    return NamedClient(name, lambda: registry.get(name))
