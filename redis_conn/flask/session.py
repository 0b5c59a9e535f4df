"""Flask-Session on a named connection of the app's RedisConn::

    app.config["SESSION_REDIS_CONNECTION"] = "sessions"   # default: "default"
    rc.init_app(app)
    RedisConnSession(app)        # instead of flask_session.Session(app)

Sessions are stored as Flask-Session's Redis type stores them (SESSION_KEY_PREFIX,
SESSION_PERMANENT, SESSION_ID_LENGTH, SESSION_SERIALIZATION_FORMAT apply), on the
connection's pool. Unlike ``SESSION_REDIS``, a Redis Cluster connection works too.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_session.base import ServerSideSessionInterface
from flask_session.defaults import Defaults
from flask_session.redis import RedisSessionInterface

from redis_conn.exceptions import ConfigurationError
from redis_conn.flask.named import NamedClient, app_connection
from redis_conn.flask.state import app_registry

#: The config key naming the connection.
CONNECTION_SETTING = "SESSION_REDIS_CONNECTION"


class RedisConnSessionInterface(RedisSessionInterface):
    """Flask-Session's Redis session interface on the app's named connection."""

    client: Any

    def __init__(self, app: Flask, *, connection: str = "default") -> None:
        self.client: NamedClient = app_connection(app_registry(app), connection)
        config = app.config
        # RedisSessionInterface.__init__ would insist on a redis.Redis instance (and make one
        # on localhost otherwise); the common part is ServerSideSessionInterface's.
        ServerSideSessionInterface.__init__(
            self,
            app,
            key_prefix=config.get("SESSION_KEY_PREFIX", Defaults.SESSION_KEY_PREFIX),
            use_signer=config.get("SESSION_USE_SIGNER", Defaults.SESSION_USE_SIGNER),
            permanent=config.get("SESSION_PERMANENT", Defaults.SESSION_PERMANENT),
            sid_length=config.get("SESSION_ID_LENGTH", Defaults.SESSION_ID_LENGTH),
            serialization_format=config.get(
                "SESSION_SERIALIZATION_FORMAT", Defaults.SESSION_SERIALIZATION_FORMAT
            ),
        )


class RedisConnSession:
    """``RedisConnSession(app)`` or ``init_app(app)``: server-side sessions in Redis."""

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if app.config.get("SESSION_REDIS") is not None:
            raise ConfigurationError(
                [
                    "SESSION_REDIS cannot be used with RedisConnSession: it uses the connection "
                    f"named by {CONNECTION_SETTING}; set the server in REDIS_CONNECTIONS."
                ]
            )
        name = app.config.get(CONNECTION_SETTING, "default")
        app.session_interface = RedisConnSessionInterface(app, connection=name)
