"""A Flask app for the browser tests (``flask --app tests.test_flask.browser_app run``).

Its connections come from the environment variable REDIS_CONN_TEST_CONNECTIONS (JSON).
"""

from __future__ import annotations

import json
import os

from flask import Flask

from redis_conn.flask import RedisConn

PAGE = (
    "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
)

rc = RedisConn()


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["REDIS_CONNECTIONS"] = json.loads(os.environ["REDIS_CONN_TEST_CONNECTIONS"])
    app.config["REDIS_CONN_SERVER_TIMING"] = True
    rc.init_app(app)

    @app.get("/dashboard")
    def dashboard() -> str:
        p = rc.request_pipeline
        p.incr("page:views")
        p.execute()  # one round trip now, to read the count
        p.incr("page:views")
        p["messages"].lpush("audit:log", "seen")
        return PAGE.format(title="Flask dashboard")

    @app.get("/async-dashboard")
    async def async_dashboard() -> str:
        rc.request_pipeline.incr("page:views")
        return PAGE.format(title="Flask async dashboard")

    return app
