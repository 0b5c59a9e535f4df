"""gunicorn hooks for the load tests and the web benchmark (``--config`` this file).

With ``WEB_MASTER_USES_REDIS=<file>`` the master, after ``--preload`` loaded the site and before
it forks the workers, sends a command on the ``default`` connection and writes that
connection's CLIENT ID to ``<file>``. The workers inherit the socket; the load test then checks
on the server that no worker ever used it (each worker must open its own connections).
"""

from __future__ import annotations

import os
from typing import Any


def when_ready(server: Any) -> None:
    target = os.environ.get("WEB_MASTER_USES_REDIS")
    if not target:
        return
    from redis_conn import get_redis

    client_id = get_redis("default").client_id()
    with open(target, "w") as out:
        out.write(f"{client_id}\n")
