"""Django settings of the web benchmark: the example site's, plus the benchmark's views.

``WEB_BENCH_MIDDLEWARE=0`` removes redis_conn's RequestPipelineMiddleware (the baseline).
"""

from __future__ import annotations

import os

from example_site.settings import *  # noqa: F403
from example_site.settings import MIDDLEWARE

ROOT_URLCONF = "web_urls"
DEBUG = False
if os.environ.get("WEB_BENCH_MIDDLEWARE", "1") == "0":
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("redis_conn.")]
