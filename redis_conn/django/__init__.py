"""redis_conn as a Django app: add ``"redis_conn.django"`` to INSTALLED_APPS.

The app reads ``settings.REDIS_CONNECTIONS`` (lazily, once per process, again when the setting
changes), registers the system checks and the ``redis_pools`` command. The request pipeline is
:class:`redis_conn.django.middleware.RequestPipelineMiddleware`; annotate views with
:class:`RedisHttpRequest` to type ``request.redis``. The health probe view is
:func:`redis_conn.django.views.health`; :class:`redis_conn.django.asgi.RedisLifespan` closes the
connections when an ASGI server shuts down.
"""

from __future__ import annotations

from redis_conn.django.request import RedisHttpRequest, RequestRedis

__all__ = ["RedisHttpRequest", "RequestRedis"]
