"""Test support: every configured Redis connection swapped for an in-process fake server.

::

    from redis_conn.testing import fake_connections

    with fake_connections() as fake:
        redis_conn.get_redis("users").set("u{1}", "joe")   # fakeredis, no server touched
        fake.flush()                                       # empty every fake server

The swap keeps the configured names and aliases (an alias still shares its target's fake
server) and the OPTIONS that shape replies (:data:`KEPT_OPTIONS`); it ends by restoring the
settings the registry had before. Nothing here imports a framework: the pytest fixture is in
:mod:`redis_conn.testing.pytest_plugin`, the Django TestCase helpers in
:mod:`redis_conn.testing.django`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from redis_conn.clients import Client
from redis_conn.config import EMBEDDED_DEFAULT, parse
from redis_conn.registry import (
    ConnectionRegistry,
    SettingsLoader,
    SettingsSource,
    connections,
    current_registry,
)

__all__ = ["KEPT_OPTIONS", "FakeConnections", "fake_connections", "fake_settings"]

#: OPTIONS a fake connection keeps: they change what commands return, so tests must see them.
#: The others (TLS, credentials, socket tuning, ...) mean nothing to an in-process server.
KEPT_OPTIONS = frozenset(
    {"decode_responses", "encoding", "encoding_errors", "protocol", "legacy_responses"}
)


def fake_settings(settings: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The FAKE twin of a REDIS_CONNECTIONS mapping: the same names, the same aliases.

    ``None`` stands for the embedded default. Invalid settings raise
    :class:`~redis_conn.ConfigurationError`, as the real registry would.
    """
    specs = parse(EMBEDDED_DEFAULT if settings is None else settings)
    fakes: dict[str, dict[str, Any]] = {}
    for name, spec in specs.items():
        if spec.alias_of is not None:
            fakes[name] = {"ALIAS": spec.alias_of}
            continue
        options = {key: value for key, value in spec.options.items() if key in KEPT_OPTIONS}
        fakes[name] = {"FAKE": True, "OPTIONS": options} if options else {"FAKE": True}
    return fakes


class FakeConnections:
    """One swap of a registry's connections for fakes; :meth:`start` it, then :meth:`stop` it.

    Use it through :func:`fake_connections` (a context manager), the pytest fixture
    ``redis_conn_fake`` or :mod:`redis_conn.testing.django`. Each start makes new, empty fake
    servers; :meth:`stop` puts the original settings back (their pools are recreated lazily,
    and connections that were FAKE before start afresh too).
    """

    def __init__(self, registry: ConnectionRegistry | None = None) -> None:
        self.registry = current_registry() if registry is None else registry
        self._original: SettingsSource | None = None
        self._fake_loader: SettingsLoader | None = None
        self._unfollow: Callable[[], None] = _nothing

    @property
    def active(self) -> bool:
        return self._original is not None

    def start(self) -> FakeConnections:
        if self._original is not None:
            raise RuntimeError(
                "This FakeConnections is already started; stop() it first, or make another."
            )
        self._original = self.registry.source
        self._install(self._original)
        self._unfollow = _follow_framework(self)
        return self

    def stop(self) -> None:
        """Restore the registry's original settings (a second call does nothing)."""
        original, self._original = self._original, None
        if original is None:
            return
        self._unfollow()
        self._unfollow, self._fake_loader = _nothing, None
        original.apply_to(self.registry)

    def follow(self) -> None:
        """Swap again after a framework gave the registry new settings while this is active.

        The Django support calls it when ``REDIS_CONNECTIONS`` changes (``override_settings``,
        pytest-django's ``settings`` fixture): the new connections are faked in their turn.
        """
        if self._original is None or self.registry.source.loader is self._fake_loader:
            return
        self._install(self.registry.source)

    def flush(self) -> None:
        """Empty every fake server (FLUSHALL once per connection; aliases share theirs)."""
        self._require_active("flush()")
        for name in self.registry.names():
            if self.registry.spec(name).alias_of is None:
                self.registry.get(name).flushall()

    def get(self, name: str = "default") -> Client:
        """The fake client of ``name`` (the one ``redis_conn.get_redis(name)`` returns)."""
        self._require_active(f"get({name!r})")
        return self.registry.get(name)

    def names(self) -> list[str]:
        return self.registry.names()

    def _install(self, source: SettingsSource) -> None:
        def loader() -> dict[str, dict[str, Any]]:
            return fake_settings(source.read())

        self._fake_loader = loader
        self.registry.use_settings(loader)  # closes the current pools; fakes start empty

    def _require_active(self, used: str) -> None:
        if self._original is None:
            raise RuntimeError(
                f"FakeConnections.{used} was called while the swap is not active; "
                "call it inside the 'with fake_connections()' block (or after start())."
            )

    def __enter__(self) -> FakeConnections:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FakeConnections {'active' if self.active else 'inactive'} {self.registry!r}>"


def fake_connections(registry: ConnectionRegistry | None = None) -> FakeConnections:
    """Swap every connection of ``registry`` for a fake, for the duration of a ``with`` block.

    ``registry`` defaults to the current one: ``redis_conn.connections`` (Django, the core
    API), or the app's inside a Flask app context. Inside the block each connection is an
    empty in-process fakeredis server; aliases share their target's. On exit the original
    settings are restored.
    """
    return FakeConnections(registry)


def _nothing() -> None:
    return None


def _follow_framework(swap: FakeConnections) -> Callable[[], None]:
    """Keep the swap when the framework rebuilds the registry; returns how to stop following."""
    # Django's app re-reads REDIS_CONNECTIONS when the setting changes. Django is imported only
    # when its app already is, so the core stays framework-free.
    if swap.registry is connections and "redis_conn.django.apps" in sys.modules:
        from redis_conn.django.conf import follow_setting_changes

        return follow_setting_changes(swap)
    return _nothing
