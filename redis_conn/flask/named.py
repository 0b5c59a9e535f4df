"""A stand-in for a named connection's client, looked up on every use.

Flask extensions keep the client they are given for the life of the app. Handing them the
client object itself would pin it: after ``close_all()`` or in a forked worker the registry
makes a new client and pool, and the extension would go on using the old one, a second pool.
:class:`NamedClient` forwards every attribute to the registry's current client instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis_conn.clients import Client
from redis_conn.exceptions import ConfigurationError
from redis_conn.registry import ConnectionRegistry


class NamedClient:
    """Forwards to ``lookup()``: the client of connection ``name``, as it is now."""

    def __init__(self, name: str, lookup: Callable[[], Client]) -> None:
        self.connection_name = name
        self._lookup = lookup

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._lookup(), attribute)

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


def bytes_connection(registry: ConnectionRegistry, name: str, user: str) -> NamedClient:
    """The named client of ``registry`` for an extension that stores bytes (pickle, msgpack).

    Raises ConfigurationError if the connection decodes replies to str: the extension would
    fail on its first read.
    """
    spec = registry.spec(name)
    if spec.options.get("decode_responses"):
        raise ConfigurationError(
            [
                f"{user} needs bytes from Redis, but connection {name!r} has OPTIONS "
                "decode_responses=True. Give it a connection without decode_responses (an "
                "ALIAS cannot drop it: it shares the pool)."
            ]
        )
    return NamedClient(name, lambda: registry.get(name))
