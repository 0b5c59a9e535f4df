"""The pytest plugin (entry point ``redis_conn``): the opt-in fixture ``redis_conn_fake``.

::

    def test_counter(redis_conn_fake):
        redis_conn.get_redis().incr("hits")
        assert redis_conn_fake.get().get("hits") == b"1"

Every test that asks for it runs on new, empty fake servers, one per configured connection
(aliases share their target's), and the real settings are back after the test. Nothing is
swapped for tests that do not ask. Works with pytest-django: a change of REDIS_CONNECTIONS
during the test (the ``settings`` fixture, ``override_settings``) is faked in its turn.

To swap another registry (a Flask app's), override ``redis_conn_registry`` in a conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from redis_conn.registry import ConnectionRegistry
    from redis_conn.testing import FakeConnections

# redis_conn is imported inside the fixtures, not here: pytest loads entry-point plugins
# before coverage measurement starts, and a plugin module costs every session that loads it.


@pytest.fixture
def redis_conn_registry() -> ConnectionRegistry:
    """The registry ``redis_conn_fake`` swaps: ``redis_conn.connections`` by default.

    Override it for a Flask app: ``return app_registry(app)``.
    """
    from redis_conn.registry import current_registry

    return current_registry()


@pytest.fixture
def redis_conn_fake(redis_conn_registry: ConnectionRegistry) -> Iterator[FakeConnections]:
    """Every Redis connection swapped for an empty fake server for this test."""
    from redis_conn.testing import fake_connections

    with fake_connections(redis_conn_registry) as fake:
        yield fake
