"""redis_conn as a Django app: add ``"redis_conn.django"`` to INSTALLED_APPS.

The app reads ``settings.REDIS_CONNECTIONS`` (lazily, once per process, again when the setting
changes), registers the system checks and the ``redis_pools`` command. The request pipeline is
:class:`redis_conn.django.middleware.RequestPipelineMiddleware`; the health probe view is
:func:`redis_conn.django.views.health`.
"""
