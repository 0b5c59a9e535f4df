"""ASGI entry point: ``uvicorn --app-dir example_django example_site.asgi:application``.

RedisLifespan closes the Redis connections when the server shuts down.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from redis_conn.django.asgi import RedisLifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")

application = RedisLifespan(get_asgi_application())
