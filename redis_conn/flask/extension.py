"""The Flask extension: each app's own connections, its request pipeline and the CLI.

Per-app state lives in ``app.extensions["redis_conn"]`` and per-request state on ``g``, never
on the extension object, so one :class:`RedisConn` serves any number of apps in a process.

The request pipeline is sent by an ``after_request`` hook, registered in ``init_app``: after the
view returned, before the response leaves. Flask runs ``after_request`` for error responses as
well (``abort(404)``, an error handler's response, the 500 page), so commands are dropped where
the exception is seen instead: by a thin wrapper around each view (installed the first time the
view is dispatched), by the ``got_request_exception`` signal for exceptions Flask does not
handle, and in ``teardown_request``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import warnings
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

import redis
from flask import Flask, current_app, g, has_app_context, has_request_context, request
from flask.signals import got_request_exception

from redis_conn.exceptions import ConfigurationError, ConnectionNotFound
from redis_conn.flask.cli import redis_cli
from redis_conn.flask.state import (
    EXTENSION_NAME,
    AppState,
    app_registry,
    app_state,
    current_state,
    registered_state,
)
from redis_conn.naming import prefix_from_module
from redis_conn.registry import ConnectionRegistry, add_registry_resolver
from redis_conn.request_scope import (
    ON_ERROR_CHOICES,
    OnError,
    RequestPipeline,
    add_scope_resolver,
    server_timing_header,
)

# Config keys shared with Django (one definition); CLIENT_NAME_PREFIX absent: the app's name.
from redis_conn.setting_names import (
    CLIENT_NAME_PREFIX_SETTING,
    CONNECTIONS_SETTING,
    ON_FLUSH_ERROR_SETTING,
    SERVER_TIMING_SETTING,
    misspelled_connections_setting,
)

if TYPE_CHECKING:
    from flask.wrappers import Response

    from redis_conn.clients import Client
    from redis_conn.pipeline import Pipeline

__all__ = [
    "EXTENSION_NAME",
    "HEALTH_DETAILS_SETTING",
    "ON_FLUSH_ERROR_SETTING",
    "SETTINGS_NAME",
    "URL_SETTING",
    "FakeDefaultWarning",
    "RedisConn",
    "app_connections",
    "app_registry",
    "app_state",
]

#: The config key of the connections (CONTRACT section 1); absent: one FAKE "default".
SETTINGS_NAME = CONNECTIONS_SETTING
#: flask-redis's config key: here, the URL of the "default" connection.
URL_SETTING = "REDIS_URL"
#: The config key saying who sees the whole report of the health view (redis_conn.flask.health):
#: False (the default: nobody, statuses only), True (everyone) or a callable asked per request.
HEALTH_DETAILS_SETTING = "REDIS_CONN_HEALTH_DETAILS"

_G_SCOPE = "_redis_conn_request_pipeline"
_GUARDED = "__redis_conn_guarded__"

logger = logging.getLogger("redis_conn.request")


class FakeDefaultWarning(UserWarning):
    """An app configured with neither REDIS_CONNECTIONS nor REDIS_URL, outside debug and
    testing mode: its "default" connection is the embedded in-process fake server."""


class RedisConn:
    """Named Redis connections for Flask apps (CONTRACT sections 1, 4 and 5).

    ``rc = RedisConn(app)``, or ``rc = RedisConn()`` and ``rc.init_app(app)`` in an app factory.
    ``rc.get(name)`` and ``rc[name]`` are the current app's clients; ``rc.request_pipeline`` is
    the current request's pipeline, sent once after the view returns.
    """

    def __init__(self, app: Flask | None = None) -> None:
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Validate ``app.config["REDIS_CONNECTIONS"]`` now and set up ``app``'s connections.

        Raises :class:`~redis_conn.ConfigurationError` naming each connection and key at fault.
        Pools are created lazily, on first use.
        """
        if EXTENSION_NAME in app.extensions:
            raise RuntimeError(
                "A 'RedisConn' instance has already been registered on this Flask app. Import "
                "and use that instance instead of calling init_app() again; to change "
                "REDIS_CONNECTIONS, create a new app."
            )
        on_flush_error = app.config.get(ON_FLUSH_ERROR_SETTING, "raise")
        if on_flush_error not in ON_ERROR_CHOICES:
            raise ConfigurationError(
                [
                    f"{ON_FLUSH_ERROR_SETTING} must be 'raise' or 'log', not {on_flush_error!r}.",
                ]
            )
        health_details = app.config.get(HEALTH_DETAILS_SETTING, False)
        if not isinstance(health_details, bool) and not callable(health_details):
            raise ConfigurationError(
                [
                    f"{HEALTH_DETAILS_SETTING} must be True, False or a function of no "
                    f"arguments that returns whether to show them, not {health_details!r}.",
                ]
            )
        server_timing = app.config.get(SERVER_TIMING_SETTING, False)
        if not isinstance(server_timing, bool):
            raise ConfigurationError(
                [f"{SERVER_TIMING_SETTING} must be True or False, not {server_timing!r}."]
            )
        settings = app_connections(app)
        if settings is None and not (app.debug or app.testing):
            # Django says it with check W001; Flask has no checks: a warning, on stderr.
            warnings.warn(
                f"The Flask app {app.name!r} has neither {SETTINGS_NAME} nor {URL_SETTING} "
                "in its config, so its 'default' Redis connection is an in-process fake "
                "server (fakeredis): its data lives in this process only, is lost on restart "
                f"and is not shared with other workers. Set app.config[{URL_SETTING!r}] "
                f"(e.g. 'redis://127.0.0.1:6379/0') or app.config[{SETTINGS_NAME!r}]; in "
                "debug or testing mode the fake server is used without this warning.",
                FakeDefaultWarning,
                stacklevel=2,
            )
        registry = ConnectionRegistry()
        registry.configure(  # None: the embedded FAKE default
            settings,
            client_name_prefix=app.config.get(
                CLIENT_NAME_PREFIX_SETTING, prefix_from_module(app.name)
            ),
        )
        app.extensions[EXTENSION_NAME] = AppState(
            self,
            registry,
            on_flush_error,
            health_details=health_details,
            server_timing=server_timing,
        )

        app.before_request(_guard_view)
        app.after_request(_flush_request_pipeline)
        app.teardown_request(_end_request_pipeline)
        app.cli.add_command(redis_cli)
        # Process-wide and idempotent: they answer only inside an app that has the extension.
        add_registry_resolver(_current_app_registry)
        add_scope_resolver(_current_request_scope)
        got_request_exception.connect(_drop_on_unhandled_exception)

    # -- the current app's connections ---------------------------------------------------

    @property
    def registry(self) -> ConnectionRegistry:
        """The current app's :class:`~redis_conn.ConnectionRegistry` (names, health, close_all)."""
        return self._state("RedisConn.registry").registry

    def get(self, name: str = "default") -> Client:
        """The current app's client for ``name``: the same object on every call."""
        registry = self._state(f"RedisConn.get({name!r})").registry
        try:
            return registry.get(name)
        except ConnectionNotFound as exc:
            raise _not_a_connection(exc, f"RedisConn.get({name!r})", "get()") from None

    def __getitem__(self, name: str) -> Client:
        registry = self._state(f"RedisConn[{name!r}]").registry
        try:
            return registry.get(name)
        except ConnectionNotFound as exc:
            raise _not_a_connection(exc, f"RedisConn[{name!r}]", "rc[name]") from None

    if not TYPE_CHECKING:  # for type checkers an unknown attribute stays an error

        def __getattr__(self, attribute: str) -> Any:
            # Only asked for what the extension lacks. flask-redis's FlaskRedis *is* a client
            # (rc.incr("hits")); a RedisConn holds several: say where the command goes.
            if not attribute.startswith("_") and callable(getattr(redis.Redis, attribute, None)):
                raise AttributeError(
                    f"'RedisConn' object has no attribute {attribute!r}: it is not a Redis "
                    "client, it holds the app's named connections. Use "
                    f"rc.get('default').{attribute}(...) on the client of the 'default' "
                    f"connection (rc.get(name) for another), or "
                    f"rc.request_pipeline.{attribute}(...) to queue it in the request's "
                    "pipeline.",
                    name=attribute,
                    obj=self,
                )
            raise AttributeError(
                f"'RedisConn' object has no attribute {attribute!r}", name=attribute, obj=self
            )

    @property
    def request_pipeline(self) -> Pipeline:
        """The current request's root pipeline on "default"; ``[name]`` for other connections.

        Created on first use; sent once after the view returns, dropped if the view raises.
        """
        state = self._state("RedisConn.request_pipeline")
        if not has_request_context():
            raise RuntimeError(
                "RedisConn.request_pipeline belongs to a request, and there is no request here. "
                "Outside a request use 'with redis_conn.pipeline(name=...) as p:' and call "
                "p.execute()."
            )
        return _request_scope(state).pipeline

    def _state(self, used: str) -> AppState:
        if not has_app_context():
            raise RuntimeError(
                f"{used} was used outside of an application context, so there is no "
                "app to take the connections from. Did you forget rc.init_app(app), or to push "
                "an app context ('with app.app_context():')? Views and 'flask' commands have one."
            )
        state = app_state(current_app, used=used)
        if state.extension is not self:
            raise RuntimeError(
                f"{used}: the Flask app {current_app.name!r} was registered with "
                "another RedisConn instance. Import and use that instance instead."
            )
        return state

    def __repr__(self) -> str:
        return "<RedisConn>"


def app_connections(app: Flask) -> Mapping[str, Any] | None:
    """The connections ``init_app`` configures for ``app``; ``None``: the embedded default.

    ``app.config["REDIS_CONNECTIONS"]``, with ``app.config["REDIS_URL"]`` (flask-redis's
    setting) as the URL of the "default" connection. A key that looks like a misspelling of
    REDIS_CONNECTIONS, when that is missing, is refused: the data would go to the fake server.
    """
    config = app.config
    connections = config.get(SETTINGS_NAME)
    if connections is None:
        typo = misspelled_connections_setting(config)
        if typo is not None:
            raise ConfigurationError(
                [
                    f"The Flask app {app.name!r} has {typo!r} in its config, which redis_conn "
                    f"does not read, and no {SETTINGS_NAME}. HINT: Did you mean "
                    f"{SETTINGS_NAME}?"
                ]
            )
    url = config.get(URL_SETTING)
    if url is None or url == "":  # flask-redis apps often pass os.environ.get("REDIS_URL")
        return cast("Mapping[str, Any] | None", connections)
    if not isinstance(url, str):
        raise ConfigurationError(
            [
                f"{URL_SETTING} must be a string, the URL of the 'default' Redis connection, "
                f"not {type(url).__name__}."
            ]
        )
    if connections is None:
        return {"default": {"URL": url}}
    if not isinstance(connections, Mapping):
        return cast("Mapping[str, Any]", connections)  # validate() says what is wrong with it
    if "default" not in connections:
        return {"default": {"URL": url}, **connections}
    default = connections["default"]
    if isinstance(default, Mapping) and default.get("URL") == url:
        return connections
    raise ConfigurationError(
        [
            f"{URL_SETTING} and {SETTINGS_NAME}['default'] both configure the 'default' Redis "
            f"connection, differently. HINT: Keep one of them: remove {URL_SETTING}, or the "
            f"'default' entry of {SETTINGS_NAME}."
        ]
    )


def _not_a_connection(error: ConnectionNotFound, used: str, takes: str) -> ConnectionNotFound:
    """``rc.get("hits")`` as flask-redis users write it: say that get() wants a connection."""
    configured = error.configured
    listed = ", ".join(repr(n) for n in configured) or "none"
    client = "default" if "default" in configured or not configured else configured[0]
    error.message = (
        f"{used}: {takes} takes a connection name, and {error.name!r} is not a configured "
        f"connection (configured: {listed}). To read the key {error.name!r}, ask a client: "
        f"rc.get({client!r}).get({error.name!r})."
    )
    error.args = (error.message,)
    return error


# -- resolvers: the core API inside an app context ---------------------------------------------


def _current_app_registry() -> ConnectionRegistry | None:
    state = current_state()
    return None if state is None else state.registry


def _current_request_scope() -> RequestPipeline | None:
    if not has_request_context():
        return None
    state = current_state()
    return None if state is None else _request_scope(state)


def _request_scope(state: AppState) -> RequestPipeline:
    scope: RequestPipeline | None = g.get(_G_SCOPE)
    if scope is None:
        scope = RequestPipeline(state.registry, description=f"{request.method} {request.path}")
        setattr(g, _G_SCOPE, scope)
    return scope


# -- request hooks ------------------------------------------------------------------------------


def _flush_request_pipeline(response: Response) -> Response:
    """after_request: send the batch, once, before the response leaves."""
    scope: RequestPipeline | None = g.get(_G_SCOPE)
    if scope is not None:
        state = current_state()
        on_error: OnError = "raise" if state is None else state.on_flush_error
        # "raise": the PipelineError propagates and Flask answers 500 (and logs it).
        scope.flush(on_error=on_error)
        if state is not None and state.server_timing and scope.stats.round_trips:
            existing = response.headers.get("Server-Timing")
            response.headers["Server-Timing"] = server_timing_header(existing, scope.stats)
    return response


def _end_request_pipeline(exc: BaseException | None) -> None:
    """teardown_request: forget the request's pipeline; drop what an exception left queued.

    After a normal request ``after_request`` has flushed it and this changes nothing. A request
    context pushed by hand (``app.test_request_context()``) is flushed here; a teardown hook
    must not raise, so a failure is logged.
    """
    scope: RequestPipeline | None = g.pop(_G_SCOPE, None)
    if scope is None:
        return
    if exc is None:
        scope.flush(on_error="log")
    else:
        scope.discard()


def _drop_queued(why: str) -> None:
    """Drop what the request queued so far; an error handler may still queue and be sent."""
    scope: RequestPipeline | None = g.get(_G_SCOPE)
    if scope is not None and scope.started and not scope.finished:
        root = scope.pipeline
        if len(root):
            logger.debug("Dropped %d queued Redis command(s) of %r: %s.", len(root), scope, why)
        root.discard()


def _drop_on_unhandled_exception(sender: Flask, exception: BaseException, **extra: Any) -> None:
    if has_request_context() and registered_state(sender) is not None:
        _drop_queued(f"unhandled {type(exception).__name__}")


def _guard_view() -> None:
    """before_request: make sure the view about to run drops the batch if it raises.

    Flask turns ``abort()`` and exceptions with an error handler into ordinary responses, and
    ``after_request`` cannot tell those from a view's own; only the view call itself can.
    """
    endpoint = request.endpoint
    if endpoint is None:
        return
    views = current_app.view_functions
    view = views.get(endpoint)
    if view is not None and not getattr(view, _GUARDED, False):
        views[endpoint] = cast(Any, _dropping_on_raise(view))


def _dropping_on_raise(view: Callable[..., Any]) -> Callable[..., Any]:
    guarded: Callable[..., Any]
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await view(*args, **kwargs)
            except BaseException as exc:
                _drop_queued(f"the view raised {type(exc).__name__}")
                raise
            finally:
                # Flask runs each async view on an event loop of its own, which ends with the
                # view: close the asyncio clients the view made on it, or their sockets leak.
                await app_registry(current_app).aclose_async()

        guarded = guarded_async
    else:

        @functools.wraps(view)
        def guarded_sync(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except BaseException as exc:
                _drop_queued(f"the view raised {type(exc).__name__}")
                raise

        guarded = guarded_sync
    setattr(guarded, _GUARDED, True)
    return guarded
