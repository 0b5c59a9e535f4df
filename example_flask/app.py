"""The app factory of the example site.

Run it on in-process FAKE servers (nothing else to install)::

    flask --app example_flask.app run

and on real servers by giving their URLs::

    REDIS_URL=redis://127.0.0.1:6390/0 REDIS_USERS_URL=redis://127.0.0.1:6391/0 \\
        flask --app example_flask.app run

``flask --app example_flask.app redis pools`` prints the health report of its connections.
``/about`` is cached by Flask-Caching on the "default" connection (``pip install -e
.[flask,flask-ext]``): redis_conn's cache type, so the cache shares that connection's pool.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_caching import Cache

from redis_conn.flask import RedisConn

#: One extension object for every app the factory makes (the tests make several).
rc = RedisConn()
#: Flask-Caching, on the "default" connection of each app's RedisConn (CACHE_TYPE below).
cache = Cache()


def connections_from_env(environ: Mapping[str, str] = os.environ) -> dict[str, dict[str, Any]]:
    """REDIS_URL and REDIS_USERS_URL when set, else an in-process FAKE server for each."""

    def connection(variable: str) -> dict[str, Any]:
        url = environ.get(variable)
        server: dict[str, Any] = {"URL": url} if url else {"FAKE": True}
        return {**server, "OPTIONS": {"decode_responses": True}}

    return {
        "default": connection("REDIS_URL"),
        "users": connection("REDIS_USERS_URL"),  # the per-user feeds
        "hits": {"ALIAS": "default"},  # page counters: another name for the same pool
    }


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["REDIS_CONNECTIONS"] = connections_from_env()
    app.config["CACHE_TYPE"] = "redis_conn.flask.caching.RedisConnCache"
    app.config["CACHE_REDIS_CONNECTION"] = "default"
    if test_config is not None:
        app.config.update(test_config)
    rc.init_app(app)
    cache.init_app(app)  # after rc: the cache looks its connection up in the app's RedisConn

    from example_flask.views import site

    app.register_blueprint(site)
    return app
