"""Where the ``redis`` Server-Timing entry ends up with django-debug-toolbar (docs/observability.md
says it: last, after the toolbar's own timings, with the panel listed last)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

# The toolbar reads its settings at import: a process of its own with the toolbar's settings.
REQUEST = """
import django
django.setup()
from django.test import Client
print(Client(REMOTE_ADDR="127.0.0.1").get("/dashboard/").headers["Server-Timing"])
"""


def test_the_redis_entry_comes_last(redis_server: Any, redis_server_b: Any) -> None:
    connections = {"default": {"URL": redis_server.url}, "messages": {"URL": redis_server_b.url}}
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DJANGO_SETTINGS_MODULE": "tests.test_django.toolbar_settings",
        "REDIS_CONN_TEST_CONNECTIONS": json.dumps(connections),
    }
    done = subprocess.run(
        [sys.executable, "-c", REQUEST],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Entries are comma-separated; a quoted desc may hold commas of its own.
    entries = [e.strip() for e in re.findall(r'(?:[^,"]|"[^"]*")+', done.stdout.strip())]
    names = [entry.split(";", 1)[0] for entry in entries]
    assert len(names) > 1, names  # the toolbar's timings, then ours
    assert names[-1] == "redis" and names.count("redis") == 1, names
    assert entries[-1].endswith('desc="4 commands, 3 round trips"'), entries
