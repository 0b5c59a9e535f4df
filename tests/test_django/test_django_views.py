"""The health view: status only for anyone, the masked report for staff, 200 or 503."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, RequestFactory

from redis_conn.django.views import health

PASSWORD = "app-s3cret-pw"


@pytest.fixture
def configured(settings: Any, redis_server: Any, redis_server_b: Any) -> Any:
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": redis_server.url},
        "users": {"URL": redis_server_b.acl_url},
    }
    return settings


@pytest.fixture
def one_down(configured: Any, killable_server: Any) -> Any:
    configured.REDIS_CONNECTIONS = {
        **configured.REDIS_CONNECTIONS,
        "down": {"URL": killable_server.url, "RETRY": 0},
    }
    killable_server.kill()
    return configured


def test_anonymous_sees_statuses_only(configured: Any, client: Client) -> None:
    response = client.get("/healthz/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "connections": [{"name": "default", "status": "ok"}, {"name": "users", "status": "ok"}],
    }
    assert "no-store" in response["Cache-Control"]


def test_503_when_a_connection_is_down(one_down: Any, client: Client) -> None:
    response = client.get("/healthz/")
    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded",
        "connections": [
            {"name": "default", "status": "ok"},
            {"name": "users", "status": "ok"},
            {"name": "down", "status": "down"},
        ],
    }
    assert b"127.0.0.1" not in response.content  # no targets, no error texts


def test_staff_sees_the_whole_masked_report(one_down: Any, redis_server_b: Any) -> None:
    request = RequestFactory().get("/healthz/")
    request.user = User(username="ops", is_staff=True)
    response = health(request)
    assert response.status_code == 503
    body = json.loads(response.content)
    users = body["connections"][1]
    assert users["target"] == redis_server_b.acl_url.replace(PASSWORD, "***")
    assert users["server"]["role"] == "master"
    assert "Connection refused" in body["connections"][2]["error"]
    assert PASSWORD.encode() not in response.content


def test_a_user_who_is_not_staff_sees_statuses_only(configured: Any) -> None:
    request = RequestFactory().get("/healthz/")
    request.user = User(username="someone", is_staff=False)
    assert json.loads(health(request).content) == {
        "status": "ok",
        "connections": [{"name": "default", "status": "ok"}, {"name": "users", "status": "ok"}],
    }


def test_the_urlconf_can_name_the_connections_to_probe(one_down: Any, client: Client) -> None:
    response = client.get("/healthz/default/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "connections": [{"name": "default", "status": "ok"}]}


def test_only_get_and_head(configured: Any, client: Client) -> None:
    assert client.head("/healthz/").status_code == 200
    assert client.post("/healthz/").status_code == 405


def test_post_is_405_also_with_the_csrf_middleware(configured: Any) -> None:
    configured.MIDDLEWARE = [
        "django.middleware.csrf.CsrfViewMiddleware",
        *configured.MIDDLEWARE,
    ]
    client = Client(enforce_csrf_checks=True)  # as a real browser or probe meets it
    assert client.post("/healthz/").status_code == 405
    assert client.put("/healthz/").status_code == 405
    assert client.get("/healthz/").status_code == 200
    # The exemption is the health view's only: another view still gets CSRF's 403.
    assert client.post("/hits/").status_code == 403


def test_a_stopped_server_is_down_and_its_error_names_the_connection(
    settings: Any, killable_server: Any, client: Client
) -> None:
    # A stopped server: RETRY (3 by default) would make a command wait out the backoff.
    settings.REDIS_CONNECTIONS = {"default": {"URL": killable_server.url}}
    killable_server.kill()
    response = client.get("/healthz/")
    assert response.status_code == 503
    assert response.json() == {
        "status": "down",
        "connections": [{"name": "default", "status": "down"}],
    }
    request = RequestFactory().get("/healthz/")
    request.user = User(username="ops", is_staff=True)
    error = json.loads(health(request).content)["connections"][0]["error"]
    assert error == (
        f"ConnectionError: Redis connection 'default': Error 111 connecting to "
        f"127.0.0.1:{killable_server.port}. Connection refused."
    )
