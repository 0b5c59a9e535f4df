"""Fake Redis connections in Django's own test cases.

::

    from django.test import TestCase
    from redis_conn.testing.django import FakeRedisMixin, use_fake_redis

    class CounterTests(FakeRedisMixin, TestCase):       # self.fake_redis in every test
        ...

    @use_fake_redis()                                   # the same, as a class decorator
    class FeedTests(TestCase):
        ...

Each test gets new, empty fake servers in ``setUp`` and the real settings back in its cleanup.
``override_settings(REDIS_CONNECTIONS=...)`` inside a test is followed: the new connections
are faked too.
"""

from __future__ import annotations

import unittest
from typing import TYPE_CHECKING

from django.test.utils import TestContextDecorator

# Re-exported: the receiver fake_connections() connects while Django's app is loaded.
from redis_conn.django.conf import follow_setting_changes
from redis_conn.registry import ConnectionRegistry
from redis_conn.testing import FakeConnections, fake_connections

__all__ = ["FakeRedisMixin", "follow_setting_changes", "use_fake_redis"]


class use_fake_redis(TestContextDecorator):  # lower case, like override_settings
    """Fake Redis connections for a test class, a test method or a ``with`` block.

    On a class, every test gets new fake servers in ``setUp`` (after ``setUpTestData``) and
    finds the swap as ``self.fake_redis``; ``with use_fake_redis() as fake:`` gives it directly.
    """

    def __init__(self, registry: ConnectionRegistry | None = None) -> None:
        super().__init__(attr_name="fake_redis")
        self.registry = registry
        self._active: list[FakeConnections] = []

    def enable(self) -> FakeConnections:
        swap = fake_connections(self.registry).start()
        self._active.append(swap)
        return swap

    def disable(self) -> None:
        self._active.pop().stop()


if TYPE_CHECKING:
    _TestCase = unittest.TestCase
else:
    _TestCase = object


class FakeRedisMixin(_TestCase):
    """Mix into a ``TestCase``: every test runs on new fake servers, ``self.fake_redis``."""

    fake_redis: FakeConnections

    def setUp(self) -> None:
        self.fake_redis = fake_connections().start()
        self.addCleanup(self.fake_redis.stop)
        super().setUp()
