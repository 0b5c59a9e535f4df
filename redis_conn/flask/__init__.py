"""Flask integration: ``RedisConn``, the request pipeline and ``flask redis pools``."""

from __future__ import annotations

from redis_conn.flask.extension import RedisConn

__all__ = ["RedisConn"]
