"""What ``RedisConn.init_app`` keeps for one app, and the one way to find it.

The extension, its CLI, the health view and the Flask-Caching and Flask-Session adapters all
read an app's registry and settings here, so none of them imports another to find them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app, has_app_context

from redis_conn.registry import ConnectionRegistry
from redis_conn.request_scope import OnError

__all__ = ["EXTENSION_NAME", "AppState", "HealthDetails", "app_registry", "app_state"]

#: The key of ``app.extensions`` holding an app's state.
EXTENSION_NAME = "redis_conn"

HealthDetails = bool | Callable[[], bool]


@dataclass(frozen=True)
class AppState:
    """What ``init_app`` keeps for one app in ``app.extensions["redis_conn"]``."""

    extension: object  # the RedisConn that registered the app
    registry: ConnectionRegistry
    on_flush_error: OnError
    health_details: HealthDetails = False
    server_timing: bool = False


def app_state(app: Flask, *, used: str | None = None) -> AppState:
    """What ``init_app`` keeps for ``app``: its registry and its settings.

    ``used``: what the caller was asked for, named at the start of the error if the app
    was not registered.
    """
    state = registered_state(app)
    if state is None:
        subject = f"{used}: the" if used else "The"
        raise RuntimeError(
            f"{subject} Flask app {app.name!r} is not registered with redis_conn. Did you "
            "forget to call rc.init_app(app) in the app factory?"
        )
    return state


def registered_state(app: Flask) -> AppState | None:
    """``app``'s state, or ``None`` if ``app`` has not been given to ``init_app``."""
    state = app.extensions.get(EXTENSION_NAME)
    return state if isinstance(state, AppState) else None


def current_state() -> AppState | None:
    """The current app's state; ``None`` outside an app context or in an app without it."""
    return registered_state(current_app) if has_app_context() else None


def app_registry(app: Flask) -> ConnectionRegistry:
    """The :class:`~redis_conn.ConnectionRegistry` that ``init_app`` made for ``app``."""
    return app_state(app).registry
