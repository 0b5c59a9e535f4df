from __future__ import annotations

from django.urls import path

from redis_conn.django.views import health

from . import views

urlpatterns = [
    path("hits/", views.hits),
    path("two-backends/", views.two_backends),
    path("execute-midway/", views.execute_midway),
    path("unused/", views.unused),
    path("raises/", views.raises),
    path("not-found/", views.not_found),
    path("library/", views.library_code),
    path("tagged/<str:tag>/", views.tagged),
    path("streaming/", views.streaming),
    path("async/hits/", views.async_hits),
    path("async/raises/", views.async_raises),
    path("async/slow/", views.async_slow),
    path("async/execute-midway/", views.async_execute_midway),
    path("async/tagged/<str:tag>/", views.async_tagged),
    path("healthz/", health),
    path("healthz/default/", health, {"names": ["default"]}),
]
