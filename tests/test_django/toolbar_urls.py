from __future__ import annotations

from debug_toolbar.toolbar import debug_toolbar_urls

from .timing_urls import urlpatterns as base

urlpatterns = [*base, *debug_toolbar_urls()]
