"""Flask-Limiter (the ``limits`` library) on a named connection::

    import redis_conn.flask.limiter  # registers the "redis-conn" storage scheme

    app.config["RATELIMIT_STORAGE_URI"] = "redis-conn://limits"   # the connection name
    limiter = Limiter(get_remote_address, app=app)

The storage is ``limits``' own ``RedisStorage`` (its keys and Lua scripts); its client is the
named connection of the current Flask app (inside a request, that app's RedisConn), looked up
on every use. ``redis-conn://`` alone means the "default" connection.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis
from limits.storage import RedisStorage
from limits.storage.base import Storage

from redis_conn.flask.named import NamedClient
from redis_conn.registry import get_redis

SCHEME = "redis-conn"


def storage_uri(connection: str = "default") -> str:
    """The RATELIMIT_STORAGE_URI for ``connection``."""
    return f"{SCHEME}://{connection}"


class RedisConnStorage(RedisStorage):
    """``limits``' RedisStorage whose client is the named connection of the current app."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012  (limits registers the class by this list)

    def __init__(
        self,
        uri: str,
        key_prefix: str = RedisStorage.PREFIX,
        wrap_exceptions: bool = False,
        **options: Any,
    ) -> None:
        if options:
            raise ValueError(
                f"Storage {uri!r} takes no options ({', '.join(sorted(options))}): the "
                "connection's settings are in REDIS_CONNECTIONS."
            )
        # RedisStorage.__init__ would build a client from the URI: set up what it sets instead.
        Storage.__init__(self, uri, wrap_exceptions=wrap_exceptions)
        name = urlsplit(uri).netloc or "default"
        self.key_prefix = key_prefix
        self.target_server = "redis"
        self.dependency = redis
        self.storage = NamedClient(name, lambda: get_redis(name))
        self.initialize_storage(uri)

    def initialize_storage(self, _uri: str) -> None:
        # Scripts are bound to the stand-in, so they too run on the current app's client.
        script = redis.commands.core.Script
        for attribute, text in (
            ("lua_moving_window", self.SCRIPT_MOVING_WINDOW),
            ("lua_acquire_moving_window", self.SCRIPT_ACQUIRE_MOVING_WINDOW),
            ("lua_clear_keys", self.SCRIPT_CLEAR_KEYS),
            ("lua_incr_expire", self.SCRIPT_INCR_EXPIRE),
            ("lua_sliding_window", self.SCRIPT_SLIDING_WINDOW),
            ("lua_acquire_sliding_window", self.SCRIPT_ACQUIRE_SLIDING_WINDOW),
        ):
            setattr(self, attribute, script(self.storage, text))
