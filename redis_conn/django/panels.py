"""A django-debug-toolbar panel: the commands of the request pipeline, by connection.

Install the ``debug-toolbar`` extra and add the panel to the toolbar's list::

    from debug_toolbar.settings import PANELS_DEFAULTS

    DEBUG_TOOLBAR_PANELS = [*PANELS_DEFAULTS, "redis_conn.django.panels.RedisPanel"]

The panel shows each ``execute()`` of the request's pipeline (the flush after the view is the
last): per connection, the commands it sent in that one round trip, by name and key as in
error messages (never a value), and the round trips the pipeline saved over sending each
command alone; and the reads a ``CLIENT_CACHE`` answered from process memory (no round
trip at all). It reads what :class:`~redis_conn.request_scope.RequestStats` counted, so it
adds nothing to the request.
"""

from __future__ import annotations

from contextvars import Token
from typing import Any

from debug_toolbar.panels import Panel
from django.http import HttpRequest, HttpResponseBase
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from redis_conn.client_cache import LOCAL_READS, LocalRead
from redis_conn.exceptions import ResultNotReady
from redis_conn.pipeline import Future
from redis_conn.request_scope import RequestPipeline, RequestStats

_SCOPE_ATTR = "_redis_conn_scope"  # where RequestPipelineMiddleware keeps the request's


class RedisPanel(Panel):
    """Redis commands of the request pipeline, by connection, with the round trips saved."""

    title = _("Redis")
    template = "redis_conn/debug_toolbar/panel.html"
    is_async = True  # it only reads what the middleware recorded

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()
        if not stats or not stats.get("commands"):
            return ""
        commands, round_trips = stats["commands"], stats["round_trips"]
        text = ngettext("%(n)d command", "%(n)d commands", commands) % {"n": commands}
        trips = ngettext("%(n)d round trip", "%(n)d round trips", round_trips) % {"n": round_trips}
        return f"{text} in {trips}"

    def enable_instrumentation(self) -> None:
        # Reads a CLIENT_CACHE answered locally are written down while the request runs.
        self._local_reads: list[LocalRead] = []
        self._local_reads_token: Token[list[LocalRead] | None] | None = LOCAL_READS.set(
            self._local_reads
        )

    def disable_instrumentation(self) -> None:
        token = getattr(self, "_local_reads_token", None)
        if token is not None:
            LOCAL_READS.reset(token)
            self._local_reads_token = None

    def generate_stats(self, request: HttpRequest, response: HttpResponseBase) -> None:
        scope = request.__dict__.get(_SCOPE_ATTR)
        stats = scope.stats if isinstance(scope, RequestPipeline) else RequestStats()
        self.record_stats(
            panel_stats(
                stats,
                used=isinstance(scope, RequestPipeline),
                local_reads=getattr(self, "_local_reads", []),
            )
        )
        self._server_timing = response.headers.get("Server-Timing")

    def get_headers(self, request: HttpRequest) -> dict[str, str]:
        # The toolbar replaces a response's Server-Timing header with its panels' timings;
        # keep the one the response had (REDIS_CONN_SERVER_TIMING's, the app's own).
        headers: dict[str, str] = super().get_headers(request)
        kept = getattr(self, "_server_timing", None)
        if kept:
            ours = headers.get("Server-Timing")
            headers["Server-Timing"] = f"{kept}, {ours}" if ours else kept
        return headers


def panel_stats(
    stats: RequestStats, *, used: bool = True, local_reads: list[LocalRead] | None = None
) -> dict[str, Any]:
    """What the panel shows, as plain data (the toolbar may store it as JSON)."""
    executes = [
        {
            "number": number,
            "batches": [
                {"connection": connection, "commands": [_describe(f) for f in futures]}
                for connection, futures in sent
            ],
        }
        for number, sent in enumerate(stats.rounds, start=1)
    ]
    connections: dict[str, dict[str, Any]] = {}
    for sent in stats.rounds:
        for connection, futures in sent:
            totals = connections.setdefault(
                connection, {"connection": connection, "commands": 0, "round_trips": 0}
            )
            totals["commands"] += len(futures)
            totals["round_trips"] += 1
    return {
        "middleware": used,
        "commands": stats.commands,
        "round_trips": stats.round_trips,
        "saved": stats.commands - stats.round_trips,
        "duration_ms": round(stats.seconds * 1000, 2),
        "connections": list(connections.values()),
        "executes": executes,
        "local_reads": [
            {"connection": read.connection, "command": read.command} for read in local_reads or []
        ],
    }


def _describe(future: Future[Any]) -> dict[str, str]:
    # "'users': HSET u{1}" -> "HSET u{1}": the connection is the table's row already.
    text = future.command.partition(": ")[2]
    try:
        future.result  # noqa: B018 (only whether it raises; the value is never shown)
        status = "ok"
    except ResultNotReady:
        status = "not sent"
    except Exception as exc:
        status = f"failed: {type(exc).__name__}"
    return {"command": text, "status": status}
