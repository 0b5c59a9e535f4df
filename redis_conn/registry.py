"""Named connections: one client and pool per name per process, created lazily under a lock.

Aliases share their target's client. After ``os.fork()`` the child starts with no clients, so
it makes its own connections and never reads or writes the parent's sockets. The asyncio
clients belong to one event loop each and are closed when that loop shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from redis_conn import messages, metrics
from redis_conn.async_clients import AsyncClient, aclose_client, build_async_client
from redis_conn.client_cache import ClientCache
from redis_conn.clients import Client, build_client, close_client
from redis_conn.config import EMBEDDED_DEFAULT, ConnectionSpec, parse
from redis_conn.exceptions import ConnectionNotFound
from redis_conn.invalidations import InvalidationListener, plain_connection_factory

SettingsLoader = Callable[[], Mapping[str, Any] | None]
#: A client name prefix, or how to read it when the settings are read (Django: a setting).
PrefixSource = str | Callable[[], str | None] | None


@dataclass(frozen=True)
class SettingsSource:
    """Where a registry's settings come from: a fixed mapping, or a loader asked on first use."""

    settings: Mapping[str, Any] | None
    loader: SettingsLoader | None
    client_name_prefix: PrefixSource = None

    def read(self) -> Mapping[str, Any] | None:
        """The settings now (``None`` means the embedded default)."""
        return self.loader() if self.loader is not None else self.settings

    def apply_to(self, registry: ConnectionRegistry) -> None:
        """Make ``registry`` take its settings from here (its pools are closed)."""
        prefix = self.client_name_prefix
        if self.loader is not None:
            registry.use_settings(self.loader, client_name_prefix=prefix)
        else:
            registry.configure(self.settings, client_name_prefix=_read_prefix(prefix))


class ConnectionRegistry:
    """The connections of one configuration (the process's, or one Flask app's).

    ``client_name_prefix`` goes before each connection's name on the server (``CLIENT
    SETNAME prefix:name``); Django and Flask derive one from the project or app.
    """

    def __init__(
        self, settings: Mapping[str, Any] | None = None, *, client_name_prefix: str | None = None
    ) -> None:
        self._lock = threading.RLock()
        self._settings: Mapping[str, Any] | None = settings
        self._loader: SettingsLoader | None = None
        self._prefix: PrefixSource = client_name_prefix
        self._specs: dict[str, ConnectionSpec] | None = None
        self._clients: dict[str, Client] = {}
        self._async_clients: dict[int, _LoopClients] = {}
        self._fake_servers: dict[str, Any] = {}
        self._client_caches: dict[str, ClientCache] = {}
        self._inherited: list[object] = []
        _track_for_fork(self)

    # -- configuration -------------------------------------------------------------------

    def configure(
        self, settings: Mapping[str, Any] | None, *, client_name_prefix: str | None = None
    ) -> None:
        """Replace the whole set of connections; the old pools are closed.

        ``None`` means "nothing configured": the embedded default, one in-process fake server
        named ``default``. Invalid settings raise :class:`ConfigurationError` and leave the
        current connections untouched. ``client_name_prefix``: see the class.
        """
        specs = parse(
            EMBEDDED_DEFAULT if settings is None else settings,
            client_name_prefix=client_name_prefix,
        )
        with self._lock:
            self._close_clients()
            self._settings, self._loader, self._specs = settings, None, specs
            self._prefix = client_name_prefix
            self._fake_servers.clear()

    def use_settings(
        self, loader: SettingsLoader, *, client_name_prefix: PrefixSource = None
    ) -> None:
        """Read settings from ``loader`` on first use (and again after :meth:`reload`).

        ``client_name_prefix`` may be a callable, read at the same time as the settings.
        """
        with self._lock:
            self._close_clients()
            self._loader, self._specs = loader, None
            self._prefix = client_name_prefix
            self._fake_servers.clear()

    def reload(self) -> None:
        """Forget the parsed settings and every client; the loader is asked again on next use."""
        with self._lock:
            self._close_clients()
            self._specs = None
            self._fake_servers.clear()

    @property
    def source(self) -> SettingsSource:
        """Where the settings come from (test helpers swap and restore it)."""
        return SettingsSource(self._settings, self._loader, self._prefix)

    @property
    def client_name_prefix(self) -> str | None:
        """The prefix of the names on the server (read now, for a prefix read from settings)."""
        return _read_prefix(self._prefix)

    @property
    def specs(self) -> dict[str, ConnectionSpec]:
        specs = self._specs
        if specs is None:
            with self._lock:
                if self._specs is None:
                    settings = self._loader() if self._loader is not None else self._settings
                    self._specs = parse(
                        EMBEDDED_DEFAULT if settings is None else settings,
                        client_name_prefix=_read_prefix(self._prefix),
                    )
                specs = self._specs
        return specs

    def names(self) -> list[str]:
        """Every configured name, aliases included, in settings order."""
        return list(self.specs)

    def spec(self, name: str) -> ConnectionSpec:
        try:
            return self.specs[name]
        except KeyError:
            raise ConnectionNotFound(name, self.specs) from None

    def resolve(self, name: str) -> str:
        """The name of the connection that owns ``name``'s pool (itself unless an alias)."""
        return self.spec(name).root

    # -- clients -------------------------------------------------------------------------

    def get(self, name: str = "default") -> Client:
        """The shared client for ``name``: the same object on every call, aliases included."""
        spec = self.spec(name)
        client = self._clients.get(spec.root)
        if client is None:
            with self._lock:
                client = self._clients.get(spec.root)
                if client is None:
                    root = self.specs[spec.root]
                    client = build_client(
                        root,
                        fake_server=self._fake_server(root),
                        client_cache=self.client_cache(root.name),
                    )
                    metrics.instrument_client(root, client)
                    self._clients[spec.root] = client
        return client

    def get_async(self, name: str = "default") -> AsyncClient:
        """The asyncio client for ``name`` on the running event loop (one per loop)."""
        spec = self.spec(name)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"get_async_redis({name!r}) needs a running event loop; "
                f"use get_redis({name!r}) in synchronous code."
            ) from None
        entry = self._async_clients.get(id(loop))
        if entry is None or entry.loop is not loop:
            with self._lock:
                self._forget_closed_loops()
                entry = self._async_clients.get(id(loop))
                if entry is None or entry.loop is not loop:
                    entry = _LoopClients(loop, self)
                    self._async_clients[id(loop)] = entry
        client = entry.clients.get(spec.root)
        if client is None:
            with self._lock:
                client = entry.clients.get(spec.root)
                if client is None:
                    root = self.specs[spec.root]
                    client = build_async_client(
                        root,
                        fake_server=self._fake_server(root),
                        client_cache=self.client_cache(root.name),
                    )
                    metrics.instrument_client(root, client)
                    entry.clients[spec.root] = client
        return client

    def client_cache(self, name: str = "default") -> ClientCache | None:
        """The local copies of ``name``'s connection (CLIENT_CACHE, CONTRACT section 11), one
        per process, shared by its sync client and its asyncio clients; None when off."""
        spec = self.spec(name)
        root = self.specs[spec.root]
        if root.client_cache is None or root.kind in ("fake", "cluster"):
            return None
        cache = self._client_caches.get(root.name)
        if cache is None:
            with self._lock:
                cache = self._client_caches.get(root.name)
                if cache is None:
                    cache = self._client_caches[root.name] = self._new_client_cache(root)
        return cache

    def _new_client_cache(self, spec: ConnectionSpec) -> ClientCache:
        assert spec.client_cache is not None
        cache = ClientCache(
            spec.name, spec.client_cache, first_wait=spec.socket_connect_timeout or 2.0
        )

        def connection_factory() -> Callable[[], Any]:
            # In the listener's thread: the sync client's pool says how to connect.
            pool = self.get(spec.name).connection_pool  # type: ignore[union-attr]
            return plain_connection_factory(pool, spec.client_name)

        cache.listener = InvalidationListener(cache, connection_factory)
        cache.listener.start_once()  # listening before the second read, as a rule
        return cache

    def created_clients(self) -> dict[str, Client]:
        """The sync clients created so far, by owning connection name (for health reports)."""
        return dict(self._clients)

    def created_async_clients(self) -> list[tuple[str, AsyncClient]]:
        """The asyncio clients of every live event loop, by owning name (for health reports)."""
        return [
            (name, client)
            for entry in list(self._async_clients.values())
            if not entry.loop.is_closed()
            for name, client in list(entry.clients.items())
        ]

    def close_all(self) -> None:
        """Close every pool; clients are recreated lazily if used again."""
        with self._lock:
            self._close_clients()

    async def aclose_async(self) -> None:
        """Close the running loop's async clients now (they are closed anyway when the loop
        shuts down with ``asyncio.run()``; a loop closed without ``shutdown_asyncgens()``
        needs this call first)."""
        loop = asyncio.get_running_loop()
        entry = self._async_clients.get(id(loop))
        if entry is not None and entry.loop is loop:
            await entry.aclose()

    def health(
        self,
        *,
        ping: bool = True,
        names: Iterable[str] | None = None,
        workers: int | None = None,
        sockets: bool = True,
    ) -> dict[str, Any]:
        """The health report of CONTRACT section 5 (what ``--json`` prints).

        ``workers``: how many processes run with these settings; each connection then gets
        its budget (``MAX_CONNECTIONS`` x workers) against the server's ``maxclients``.
        ``sockets=False`` skips counting the named sockets on the servers (CLIENT LIST),
        for probes that run every few seconds.
        """
        from redis_conn.health import build_report

        return build_report(self, ping=ping, names=names, workers=workers, sockets=sockets)

    # -- internals -----------------------------------------------------------------------

    def _fake_server(self, spec: ConnectionSpec) -> Any:
        if spec.kind != "fake":
            return None
        server = self._fake_servers.get(spec.root)
        if server is None:
            import fakeredis

            server = self._fake_servers[spec.root] = fakeredis.FakeServer()
        return server

    def _close_clients(self) -> None:
        caches, self._client_caches = self._client_caches, {}
        for cache in caches.values():
            cache.close()
        clients, self._clients = self._clients, {}
        for client in clients.values():
            close_client(client)
        loops, self._async_clients = self._async_clients, {}
        for entry in loops.values():
            entry.close_from_anywhere()

    def _forget_loop(
        self, loop: asyncio.AbstractEventLoop, clients: dict[str, AsyncClient]
    ) -> None:
        """Called as a loop's clients are closed: a new client is made if it is used again."""
        with self._lock:
            entry = self._async_clients.get(id(loop))
            if entry is not None and entry.clients is clients:
                del self._async_clients[id(loop)]

    def _forget_closed_loops(self) -> None:
        for key, entry in list(self._async_clients.items()):
            if entry.loop.is_closed():
                del self._async_clients[key]
                entry.abandon()

    def _after_fork_in_child(self) -> None:
        # Keep the parent's clients referenced but unused: closing them here could shut down
        # sockets the parent still uses. Fake servers are plain memory, so they carry over.
        self._lock = threading.RLock()
        self._inherited.append((self._clients, self._async_clients))
        self._clients = {}
        self._async_clients = {}
        self._client_caches = {}  # the inherited ones were emptied (redis_conn.client_cache)

    def __repr__(self) -> str:
        names = ", ".join(self._specs) if self._specs is not None else "not loaded"
        return f"<ConnectionRegistry [{names}]>"


def _read_prefix(source: PrefixSource) -> str | None:
    return source() if callable(source) else source


class _LoopClients:
    """The asyncio clients of one event loop, closed when the loop shuts down.

    asyncio has no "loop is closing" callback, but every runner that ends a loop properly
    (``asyncio.run``, ``asyncio.Runner``, asgiref, uvicorn, pytest-asyncio) first calls
    ``loop.shutdown_asyncgens()``, which closes the asynchronous generators started on the loop
    (PEP 525 hooks). One such generator per loop closes its clients there, while the loop can
    still run their transports' shutdown; closed later, a socket can only be dropped, and
    redis-py and asyncio warn about it when it is garbage collected.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, registry: ConnectionRegistry) -> None:
        self.loop = loop
        self.clients: dict[str, AsyncClient] = {}
        # The generator holds neither this object nor the registry (only a weak reference):
        # no reference cycle, so nothing waits for the cyclic garbage collector.
        owner = weakref.ref(registry)
        clients = self.clients

        def forget() -> None:
            registry = owner()
            if registry is not None:
                registry._forget_loop(loop, clients)

        self._closer = _close_at_shutdown(loop, clients, forget)
        # Started here, on the running loop: its first step registers it with the loop.
        with contextlib.suppress(StopIteration):
            self._closer.asend(None).send(None)

    async def aclose(self) -> None:
        """Close every client now (a task on the running loop)."""
        # RuntimeError: the loop's shutdown is closing them at this very moment.
        with contextlib.suppress(RuntimeError):
            await self._closer.aclose()

    def close_from_anywhere(self) -> None:
        """close_all() or configure(): from this loop, another thread, or after it ended."""
        if self.loop.is_closed():
            self.abandon()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            task = self.loop.create_task(self.aclose())
            _background.add(task)
            task.add_done_callback(_background.discard)
        elif self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self.aclose(), self.loop)
        else:
            self.loop.run_until_complete(self.aclose())

    def abandon(self) -> None:
        """The loop was closed without shutting down its generators: its transports cannot
        be closed any more. Drop the clients (asyncio and redis-py will say they were not
        closed); the loop's finalizer hook ignores the generator of a closed loop."""
        self.clients.clear()


async def _close_at_shutdown(
    loop: asyncio.AbstractEventLoop, clients: dict[str, AsyncClient], forget: Callable[[], None]
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        # Closed by the loop's shutdown or by aclose() (never once the loop is closed).
        if not loop.is_closed():
            forget()
            closing = list(clients.values())
            clients.clear()
            for client in closing:
                await aclose_client(client)


_background: set[asyncio.Task[None]] = set()
_registries: weakref.WeakSet[ConnectionRegistry] = weakref.WeakSet()


def _track_for_fork(registry: ConnectionRegistry) -> None:
    _registries.add(registry)


def _reset_registries_in_child() -> None:
    for registry in list(_registries):
        registry._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_registries_in_child)

#: The process-wide registry: Django configures it from settings; anything else calls configure().
connections = ConnectionRegistry()

RegistryResolver = Callable[[], "ConnectionRegistry | None"]
_resolvers: list[RegistryResolver] = []


def add_registry_resolver(resolver: RegistryResolver) -> None:
    """Let a framework say which registry is active (Flask: the current app's)."""
    if resolver not in _resolvers:
        _resolvers.append(resolver)


def current_registry() -> ConnectionRegistry:
    """The active registry: a framework's (inside a Flask app context), else ``connections``."""
    for resolver in _resolvers:
        registry = resolver()
        if registry is not None:
            return registry
    return connections


def get_redis(name: str = "default") -> Client:
    """The shared client for ``name`` (``redis.Redis`` or ``RedisCluster``)."""
    return current_registry().get(name)


def get_async_redis(name: str = "default") -> AsyncClient:
    """The ``redis.asyncio`` client for ``name`` on the running event loop."""
    return current_registry().get_async(name)


# Typed getters: code that knows which kind of server it talks to says so, and gets the one
# client class instead of a union to narrow. A mismatch is a setup error, so it is raised at
# once, naming the connection, rather than surfacing later as a missing method.


def get_standalone_redis(name: str = "default") -> redis.Redis:
    """The shared ``redis.Redis`` of a connection that is not a cluster.

    Standalone, unix, TLS, Sentinel and FAKE connections; a cluster raises :class:`TypeError`.
    """
    return _expect(get_redis(name), redis.Redis, name, "get_standalone_redis")


def get_cluster_redis(name: str = "default") -> RedisCluster:
    """The shared ``RedisCluster`` of a ``CLUSTER`` connection; another kind raises TypeError."""
    return _expect(get_redis(name), RedisCluster, name, "get_cluster_redis")


def get_async_standalone_redis(name: str = "default") -> AsyncRedis:
    """:func:`get_standalone_redis` for asyncio: the running loop's ``redis.asyncio.Redis``."""
    return _expect(get_async_redis(name), AsyncRedis, name, "get_async_standalone_redis")


def get_async_cluster_redis(name: str = "default") -> AsyncRedisCluster:
    """:func:`get_cluster_redis` for asyncio: the running loop's asyncio ``RedisCluster``."""
    return _expect(get_async_redis(name), AsyncRedisCluster, name, "get_async_cluster_redis")


_ClientT = TypeVar("_ClientT")


def _expect(client: object, expected: type[_ClientT], name: str, getter: str) -> _ClientT:
    if isinstance(client, expected):
        return client
    cluster = isinstance(client, RedisCluster | AsyncRedisCluster)
    is_async = getter.startswith("get_async")
    prefix = "get_async_" if is_async else "get_"
    other = f"{prefix}{'cluster' if cluster else 'standalone'}_redis"
    either = "get_async_redis" if is_async else "get_redis"
    raise TypeError(
        f"{messages.subject(name)} is {'a cluster' if cluster else 'not a cluster'}, so "
        f"{getter}({name!r}) cannot return it: use {other}({name!r}), or {either}({name!r}) "
        "for either kind."
    )
