from __future__ import annotations

from django.urls import path

from . import observability_views
from .urls import urlpatterns as base

urlpatterns = [
    *base,
    path("dashboard/", observability_views.dashboard),
    path("async/dashboard/", observability_views.async_dashboard),
    path("quiet/", observability_views.quiet),
    path("timed/", observability_views.timed),
]
