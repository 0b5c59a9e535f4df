"""A health probe for load balancers and Kubernetes; off unless a URLconf routes to it.

::

    from redis_conn.django.views import health

    urlpatterns = [path("healthz/redis/", health)]
    # or only some connections:
    urlpatterns = [path("readyz/", health, {"names": ["default", "users"]})]

200 when every connection answers PING, else 503. Anonymous callers see only the overall
status and each connection's name and status; staff users (``request.user.is_staff``) see the
whole report of ``manage.py redis_pools --json``, which never holds a password either.
Only GET and HEAD; anything else is 405, also with Django's CSRF middleware (a probe sends
no CSRF token, and the view changes nothing). Each probe is one attempt on a connection of
its own (:mod:`redis_conn.health`), so a down server is reported at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from redis_conn.health import exit_code, public_report
from redis_conn.registry import connections

#: What anyone may see (statuses only); kept under its old name.
public = public_report


@csrf_exempt  # else CsrfViewMiddleware answers a POST with 403 before require_safe's 405
@never_cache
@require_safe
def health(request: HttpRequest, names: Sequence[str] | None = None) -> JsonResponse:
    """PING every connection (or ``names``); JSON body, status 200 or 503, never cached."""
    # A probe runs every few seconds: no CLIENT LIST (O(clients) on the server) each time.
    report = connections.health(ping=True, names=names, sockets=False)
    body: dict[str, Any] = report if _is_staff(request) else public_report(report)
    return JsonResponse(body, status=200 if exit_code(report) == 0 else 503)


def _is_staff(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)  # absent without django.contrib.auth's middleware
    return bool(getattr(user, "is_staff", False))
