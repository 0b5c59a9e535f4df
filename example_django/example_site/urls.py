from __future__ import annotations

from django.urls import path

from redis_conn.django.views import health

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("api/stats/", views.stats_json, name="stats"),
    path("health/", health, name="health"),
    path("about/", views.about, name="about"),
    path("visits/", views.visits, name="visits"),
]
