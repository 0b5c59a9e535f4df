"""Keep REDIS_CONNECTIONS passwords out of Django's error pages and error e-mails.

Django's error reports (the DEBUG page, the 500 e-mails of ``AdminEmailHandler``) list every
setting with its value. Its ``SafeExceptionReporterFilter`` hides settings whose *name* looks
secret (``PASSWORD``, ``SECRET_KEY``, ``OPTIONS['password']``), but not a password inside a
value, such as ``REDIS_CONNECTIONS['default']['URL'] = 'redis://:s3cret@host:6379/0'``.
This filter also masks those::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "redis_conn.django.reporting.SafeExceptionReporterFilter"

System check ``redis_conn.W004`` asks for it when a URL in REDIS_CONNECTIONS holds a password.
"""

from __future__ import annotations

from typing import Any

from django.views.debug import SafeExceptionReporterFilter as DjangoSafeExceptionReporterFilter

from redis_conn.masking import mask_text


class SafeExceptionReporterFilter(DjangoSafeExceptionReporterFilter):
    """Django's filter, plus passwords in URLs (and ``password=...``) inside setting values."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        # Django recurses into dicts, lists and tuples through this method, so every string
        # of every setting passes here.
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return mask_text(cleansed)
        return cleansed
