"""The example's pages. Every Redis command goes through ``request.redis``, the request's pipeline.

* ``/`` counts a hit (``default``), adds to the visitor's feed (``activity``), stamps the
  visitor's session (``sessions``, an alias of ``default``: the same batch) and remembers the
  last visitor (``cache``). Nothing is sent while the view runs: the middleware sends one batch
  per server after the view returns, the servers concurrently.
* ``/dashboard/`` needs answers, so it calls ``request.redis.execute()`` mid-view.
* ``/api/stats/`` is the dashboard as JSON; ``/health/`` is ``redis_conn.django.views.health``.
* ``/about/`` is cached for 30 s by Django's ``cache_page``, and ``/visits/`` counts your visits
  in your session: both through Django's cache API, stored by redis_conn's cache backend on
  the ``default`` connection.

Pick a visitor with ``?user=ann``; there are no accounts and no database.
"""

from __future__ import annotations

import re
import time
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.cache import cache_page

from redis_conn.django import RedisHttpRequest
from redis_conn.registry import connections

FEED_LENGTH = 10
CACHE_SECONDS = 300
LAST_VISITOR = "cache:{home}:last_visitor"  # a hash tag: cluster-ready, one slot per page


def visitor(request: HttpRequest) -> str:
    """``?user=`` when it is a plain short name, else ``guest``."""
    user = request.GET.get("user", "")
    return user if re.fullmatch(r"[A-Za-z0-9_-]{1,30}", user) else "guest"


def record_activity(request: RedisHttpRequest, user: str, what: str) -> None:
    feed = request.redis["activity"]
    feed.lpush(f"feed:{user}", f"{time.strftime('%H:%M:%S')} {what}")
    feed.ltrim(f"feed:{user}", 0, FEED_LENGTH - 1)


def home(request: RedisHttpRequest) -> HttpResponse:
    user = visitor(request)
    request.redis.incr("hits:home")
    record_activity(request, user, "visited the home page")
    request.redis["sessions"].hset(f"session:{user}", "last_seen", int(time.time()))
    request.redis["cache"].set(LAST_VISITOR, user, ex=CACHE_SECONDS)
    # Sent after this return, before the response leaves: one round trip per server.
    body = format_html(
        "<p>Hello, {}. This visit was counted, added to your activity feed and stamped on "
        "your session, in one batch per Redis server, after this view returned.</p>"
        '<p><a href="/dashboard/?user={}">Your dashboard</a> · '
        '<a href="/api/stats/?user={}">as JSON</a> · <a href="/health/">health</a> · '
        '<a href="/about/">about</a> · <a href="/visits/">your visits</a> · '
        "visit as {}</p>",
        user,
        user,
        user,
        format_html_join(" ", '<a href="/?user={}">{}</a>', ((u, u) for u in ("ann", "bob"))),
    )
    return HttpResponse(page("redis_conn example", body))


def read_stats(request: RedisHttpRequest, user: str) -> dict[str, Any]:
    """Queue the reads on three servers, run them in one go, and return the answers."""
    p = request.redis
    own_hit = p.incr("hits:dashboard")
    home_hits = p.get("hits:home")
    feed = p["activity"].lrange(f"feed:{user}", 0, FEED_LENGTH - 1)
    last_seen = p["sessions"].hget(f"session:{user}", "last_seen")
    last_visitor = p["cache"].get(LAST_VISITOR)
    p.execute()  # mid-view: every future above now has its .result
    record_activity(request, user, "looked at the dashboard")  # sent after the view
    return {
        "user": user,
        "hits": {"home": int(home_hits.result or 0), "dashboard": own_hit.result},
        "feed": feed.result,
        "last_seen": None if last_seen.result is None else int(last_seen.result),
        "last_visitor": last_visitor.result,
        "connections": {
            name: {"kind": connections.spec(name).kind, "target": connections.spec(name).target}
            for name in connections.names()
        },
    }


def dashboard(request: RedisHttpRequest) -> HttpResponse:
    stats = read_stats(request, visitor(request))
    body = format_html(
        "<p>Home page hits: <b>{}</b> · dashboard hits: <b>{}</b> · last visitor: {}</p>"
        "<h2>{}'s activity</h2><ol>{}</ol>"
        "<h2>Connections</h2><table>{}</table>"
        "<p><small>FAKE connections keep their data in this process only: it is gone when "
        "the process ends, and <code>runserver</code>'s autoreloader restarts it whenever a "
        "file changes. Give REDIS_URL (and friends) to use real servers.</small></p>"
        '<p><a href="/?user={}">Home</a></p>',
        stats["hits"]["home"],
        stats["hits"]["dashboard"],
        stats["last_visitor"] or "nobody yet",
        stats["user"],
        format_html_join("", "<li>{}</li>", ((entry,) for entry in stats["feed"])),
        format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            ((name, c["kind"], c["target"]) for name, c in stats["connections"].items()),
        ),
        stats["user"],
    )
    return HttpResponse(page(f"Dashboard of {stats['user']}", body))


def stats_json(request: RedisHttpRequest) -> JsonResponse:
    return JsonResponse(read_stats(request, visitor(request)))


@cache_page(30)
def about(request: HttpRequest) -> HttpResponse:
    """Rendered once per 30 seconds; in between, Django's cache serves it from Redis."""
    body = format_html(
        "<p>This page was rendered at {} and is cached for 30 seconds with Django's "
        "<code>cache_page</code>, on the <code>default</code> connection.</p>"
        '<p><a href="/">Home</a></p>',
        time.strftime("%H:%M:%S"),
    )
    return HttpResponse(page("About", body))


def visits(request: HttpRequest) -> JsonResponse:
    """Your visits to this page, kept in your session (the cache session engine)."""
    count = request.session.get("visits", 0) + 1
    request.session["visits"] = count
    return JsonResponse({"visits": count})


def page(title: str, body: SafeString) -> SafeString:
    return format_html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{}</title>'
        "<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:44em;margin:2em auto}}"
        "td{{padding:0 1em 0 0}}</style></head><body><h1>{}</h1>{}</body></html>",
        title,
        title,
        body,
    )
