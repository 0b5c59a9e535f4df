"""Flask-Caching on a named connection of the app's RedisConn::

    app.config["CACHE_TYPE"] = "redis_conn.flask.caching.RedisConnCache"
    app.config["CACHE_REDIS_CONNECTION"] = "cache"    # default: "default"
    rc.init_app(app)          # before Cache(app): the connection must be known
    cache = Cache(app)

The cache is Flask-Caching's own ``RedisCache`` (its keys, its serializer, CACHE_KEY_PREFIX,
CACHE_DEFAULT_TIMEOUT ...), on the connection's pool instead of a second one. The
``CACHE_REDIS_*`` settings that build a client (URL, host, port, password, db) are refused.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_caching.backends.rediscache import RedisCache

from redis_conn.exceptions import ConfigurationError
from redis_conn.flask.named import app_connection
from redis_conn.flask.state import app_registry

#: The config key naming the connection.
CONNECTION_SETTING = "CACHE_REDIS_CONNECTION"
_CLIENT_SETTINGS = (
    "CACHE_REDIS_URL",
    "CACHE_REDIS_HOST",
    "CACHE_REDIS_PORT",
    "CACHE_REDIS_PASSWORD",
    "CACHE_REDIS_DB",
)


class RedisConnCache(RedisCache):
    """Flask-Caching's RedisCache whose client is the app's named connection."""

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> RedisConnCache:
        given = [key for key in _CLIENT_SETTINGS if config.get(key)]
        if given:
            raise ConfigurationError(
                [
                    f"{', '.join(given)} cannot be used with RedisConnCache: it uses the "
                    f"connection named by {CONNECTION_SETTING}; set the server in "
                    "REDIS_CONNECTIONS."
                ]
            )
        name = config.get(CONNECTION_SETTING, "default")
        client = app_connection(app_registry(app), name)
        if config.get("CACHE_KEY_PREFIX"):
            kwargs["key_prefix"] = config["CACHE_KEY_PREFIX"]
        return cls(client, *args, **kwargs)
