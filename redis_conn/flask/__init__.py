"""Flask integration: ``RedisConn``, the request pipeline, ``flask redis pools`` and ``health``."""

from __future__ import annotations

from redis_conn.flask.extension import RedisConn
from redis_conn.flask.views import health

__all__ = ["RedisConn", "health"]
