"""Fixtures for the Django tests: the registry follows settings; real servers on demand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from redis_conn.django.apps import install


@pytest.fixture(autouse=True)
def registry_from_settings() -> Iterator[None]:
    """Each test starts with the registry reading Django settings (other tests may have called
    ``connections.configure()``), and its pools are closed afterwards."""
    install()
    yield
    install()


@pytest.fixture
def real_servers(settings: Any, redis_server: Any, redis_server_b: Any) -> Any:
    """REDIS_CONNECTIONS on the two session servers: default on A, messages on B."""
    settings.REDIS_CONNECTIONS = {
        "default": {"URL": redis_server.url},
        "messages": {"URL": redis_server_b.url},
    }
    return settings


@pytest.fixture
def server_a(redis_server: Any) -> Iterator[Any]:
    client = redis_server.client(decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def server_b(redis_server_b: Any) -> Iterator[Any]:
    client = redis_server_b.client(decode_responses=True)
    yield client
    client.close()
