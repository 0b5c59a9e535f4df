"""A health probe view for Flask, with the policy of Django's: statuses for anyone.

::

    from redis_conn.flask import health

    app.add_url_rule("/health", view_func=health)
    # or only some connections:
    app.add_url_rule("/readyz", view_func=health, defaults={"names": ["default"]})

200 when every connection answers PING, else 503; JSON, never cached; GET and HEAD only (405
otherwise). Everyone sees the overall status and each connection's name and status. The whole
report (targets, errors, pools, servers: what ``flask redis pools --json`` prints, passwords
masked) is shown only when ``app.config["REDIS_CONN_HEALTH_DETAILS"]`` says so: ``True`` for
everyone (an internal-only endpoint), or a function of no arguments asked per request, e.g.
``lambda: current_user.is_authenticated and current_user.is_admin``. Default: ``False``.
"""

from __future__ import annotations

from collections.abc import Sequence

from flask import current_app, jsonify
from flask.wrappers import Response

from redis_conn.flask.state import app_state
from redis_conn.health import exit_code, public_report

#: The Cache-Control of Django's never_cache: no proxy serves a stale answer.
NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


def health(names: Sequence[str] | None = None) -> Response:
    """PING every connection of the current app (or ``names``): JSON, status 200 or 503."""
    state = app_state(current_app)
    report = state.registry.health(ping=True, names=names)
    details = state.health_details
    show_all = details() if callable(details) else details
    response = jsonify(report if show_all else public_report(report))
    response.status_code = 200 if exit_code(report) == 0 else 503
    response.headers["Cache-Control"] = NEVER_CACHE
    return response
