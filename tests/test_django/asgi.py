"""The test settings as an ASGI application (uvicorn), for the browser tests."""

from django.core.asgi import get_asgi_application

application = get_asgi_application()
