"""The pages: a hit counter, per-user feeds, stats (an async view), a health check, and an
"about" page cached by Flask-Caching."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from flask import Blueprint, abort, request

from example_flask import feeds
from example_flask.app import cache, rc
from redis_conn.flask import health

site = Blueprint("site", __name__)
# Names and statuses for anyone; the whole report only with REDIS_CONN_HEALTH_DETAILS.
site.add_url_rule("/health", view_func=health)


@site.get("/")
def index() -> dict[str, Any]:
    hits = rc.request_pipeline["hits"].incr("hits:/")
    rc.request_pipeline.execute()  # send what is queued so far, to read the count
    return {"page": "/", "hits": hits.result}


@site.post("/users/<int:user_id>/feed")
def post_message(user_id: int) -> tuple[dict[str, Any], int]:
    text = (request.get_json(silent=True) or {}).get("text")
    if not isinstance(text, str) or not text.strip():
        abort(400, description='Send JSON like {"text": "hello"}.')
    # Both commands join the request's batch, sent once after this view returns; two
    # connections, so two round trips, run concurrently.
    feeds.post(user_id, text, rc.request_pipeline)
    rc.request_pipeline.incr("stats:posts")
    return {"user": user_id, "queued": True}, 202


@site.get("/users/<int:user_id>/feed")
def read_feed(user_id: int) -> dict[str, Any]:
    rc.request_pipeline["hits"].incr("hits:feed")  # sent after the view returns
    return {"user": user_id, "messages": feeds.latest(user_id)}


@site.get("/stats")
async def stats() -> dict[str, Any]:
    views = rc.request_pipeline["hits"].incr("hits:/stats")
    posts = rc.request_pipeline.get("stats:posts")
    # The round trip runs in a worker thread, not on the event loop.
    await asyncio.to_thread(rc.request_pipeline.execute)
    return {"posts": int(posts.result or 0), "stats_views": views.result}


@site.get("/about")
@cache.cached(timeout=30)
def about() -> dict[str, Any]:
    """Rendered once per 30 seconds; in between, Flask-Caching serves it from Redis."""
    return {"page": "/about", "rendered_at": time.time()}
