"""The names of redis_conn's settings (Django) and config keys (Flask), and the setting that
was meant to be ``REDIS_CONNECTIONS`` but is spelled otherwise.

Both frameworks read the same names; this is their one definition (``redis_conn.django.conf``
and ``redis_conn.flask.extension`` take them from here).

Without ``REDIS_CONNECTIONS`` every app runs on the embedded in-process fake server, so a
``REDIS_CONNECTION`` typo would quietly send the data there. Django's system checks and the
Flask extension both ask :func:`misspelled_connections_setting` and refuse such settings.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: The setting (Django) or config key (Flask) holding the connections.
CONNECTIONS_SETTING = "REDIS_CONNECTIONS"
#: The prefix of every connection's name on the server (CLIENT SETNAME prefix:name).
CLIENT_NAME_PREFIX_SETTING = "REDIS_CONN_CLIENT_NAME_PREFIX"
#: What a failed flush of the request pipeline does: "raise" (the default) or "log".
ON_FLUSH_ERROR_SETTING = "REDIS_CONN_ON_FLUSH_ERROR"
#: True adds a Server-Timing header to responses that used the request pipeline.
SERVER_TIMING_SETTING = "REDIS_CONN_SERVER_TIMING"
#: redis_conn's own settings start with this; none of them is a typo of the connections.
_OWN_PREFIX = "REDIS_CONN_"


def misspelled_connections_setting(names: Iterable[object]) -> str | None:
    """The first of ``names`` that looks like a misspelling of ``REDIS_CONNECTIONS``, if any.

    Close in spelling (``REDIS_CONNECTION``, ``REDIS_CONECTIONS``) or in case
    (``redis_connections``); ``REDIS_CONNECTIONS`` itself and the ``REDIS_CONN_*`` settings
    are never one.
    """
    candidates = {
        name.upper(): name
        for name in names
        if isinstance(name, str)
        and name != CONNECTIONS_SETTING
        and name.upper().startswith("REDIS")
        and not name.upper().startswith(_OWN_PREFIX)
    }
    guess = difflib.get_close_matches(CONNECTIONS_SETTING, list(candidates), n=1, cutoff=0.85)
    return candidates[guess[0]] if guess else None
