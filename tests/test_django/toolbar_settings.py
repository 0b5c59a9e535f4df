"""The test settings plus django-debug-toolbar with the Redis panel, and Server-Timing on.

For the browser tests, which run a real server (runserver, uvicorn) in a subprocess.
"""

from debug_toolbar.settings import PANELS_DEFAULTS

from .settings import *  # noqa: F403
from .settings import INSTALLED_APPS, MIDDLEWARE

DEBUG = True
INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.staticfiles", "debug_toolbar"]
MIDDLEWARE = ["debug_toolbar.middleware.DebugToolbarMiddleware", *MIDDLEWARE]
ROOT_URLCONF = "tests.test_django.toolbar_urls"
STATIC_URL = "/static/"
INTERNAL_IPS = ["127.0.0.1"]
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DEBUG_TOOLBAR_PANELS = [*PANELS_DEFAULTS, "redis_conn.django.panels.RedisPanel"]
DEBUG_TOOLBAR_CONFIG = {"IS_RUNNING_TESTS": False}
REDIS_CONN_SERVER_TIMING = True
