"""Keep REDIS_CONNECTIONS passwords out of Django's error pages and error e-mails.

Django's error reports (the DEBUG page, the 500 e-mails of ``AdminEmailHandler``) list every
setting with its value, and the local variables of every frame of the traceback. Its
``SafeExceptionReporterFilter`` hides settings whose *name* looks secret (``PASSWORD``,
``SECRET_KEY``, ``OPTIONS['password']``) and the variables of functions decorated with
``@sensitive_variables``, but not a password inside a value, such as
``REDIS_CONNECTIONS['default']['URL'] = 'redis://:s3cret@host:6379/0'``, nor redis-py's own
frame variables (``auth_args`` while a server hangs during the handshake). This filter masks
every configured password wherever it shows, in any variable, whatever characters it has::

    DEFAULT_EXCEPTION_REPORTER_FILTER = "redis_conn.django.reporting.SafeExceptionReporterFilter"

System check ``redis_conn.W004`` asks for it when a connection has a password.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.views.debug import SafeExceptionReporterFilter as DjangoSafeExceptionReporterFilter

from redis_conn.masking import mask_literals, mask_text, secret_forms, settings_secrets

# Containers rebuilt item by item (so the rest of them stays readable) up to this depth;
# anything else that shows a password is shown as its masked repr.
_MAX_DEPTH = 6


class SafeExceptionReporterFilter(DjangoSafeExceptionReporterFilter):
    """Django's filter, plus every configured Redis password in settings and frame variables."""

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        # Django recurses into dicts, lists and tuples through this method, so every string
        # of every setting (and of request.META and the cookies) passes here.
        cleansed = super().cleanse_setting(key, value)
        if isinstance(cleansed, str):
            return mask_text(cleansed, configured_secrets())
        return cleansed

    def get_traceback_frame_variables(self, request: Any, tb_frame: Any) -> Any:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        secrets = configured_secrets()
        if not secrets:
            return variables
        scrubber = _Scrubber(secrets)
        return [(name, scrubber.scrub(value)) for name, value in variables]


def configured_secrets() -> tuple[str, ...]:
    """Every password of REDIS_CONNECTIONS and of the connections configured in this process
    (``connections.configure(...)``, or a Flask app's in an app context)."""
    from redis_conn.registry import connections, current_registry

    found = list(settings_secrets(getattr(settings, "REDIS_CONNECTIONS", None)))
    for registry in {id(r): r for r in (connections, current_registry())}.values():
        try:
            found += settings_secrets(registry.source.read())
        except Exception:  # a broken loader must not break the error page
            continue
    return tuple(dict.fromkeys(found))


class _Masked:
    """A value whose repr held a password, shown as that repr with the password masked."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class _Scrubber:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = tuple(secrets)
        self.forms = {form for secret in self.secrets for form in secret_forms(secret)}

    def shows_a_secret(self, text: str) -> bool:
        return any(form in text for form in self.forms)

    def scrub(self, value: Any, depth: int = 0) -> Any:
        # Django renders a variable with pprint, that is with the reprs of its parts: if the
        # repr shows no password, neither does the page.
        try:
            text = repr(value)
        except Exception:  # Django shows its own "Error in formatting" for it
            return value
        if not self.shows_a_secret(text):
            return value
        if isinstance(value, str):
            return mask_literals(value, self.secrets)
        if depth < _MAX_DEPTH and type(value) in (list, tuple, set, frozenset):
            return type(value)(self.scrub(item, depth + 1) for item in value)
        if depth < _MAX_DEPTH and type(value) is dict:
            return {self.scrub(k, depth + 1): self.scrub(v, depth + 1) for k, v in value.items()}
        return _Masked(mask_literals(text, self.secrets))
