"""Library code written against the core API only: it knows nothing of Flask.

Given the request's pipeline it joins that batch; given nothing it runs at once. Inside a Flask
app context, ``get_redis`` and ``pipeline`` use that app's connections.
"""

from __future__ import annotations

from typing import cast

from redis_conn import get_redis
from redis_conn.pipeline import Future, Pipeline, pipeline

FEED_LENGTH = 50


def feed_key(user_id: int) -> str:
    return f"feed:{{{user_id}}}"


def post(user_id: int, text: str, pipe: Pipeline | None = None) -> Future[int]:
    """Put ``text`` on top of the user's feed; the future is the feed's new length."""
    with pipeline(pipe, name="users", autocommit=True) as p:
        length: Future[int] = p.lpush(feed_key(user_id), text)
        p.ltrim(feed_key(user_id), 0, FEED_LENGTH - 1)
    return length


def latest(user_id: int, count: int = 10) -> list[str]:
    """The user's newest messages, newest first (read at once, not batched)."""
    # The example's connections have decode_responses=True: str, not bytes.
    return cast("list[str]", get_redis("users").lrange(feed_key(user_id), 0, count - 1))
