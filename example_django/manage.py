#!/usr/bin/env python
"""The example site's manage.py: ``python example_django/manage.py runserver``.

On in-process FAKE servers by default (nothing else to install); on real servers when
REDIS_URL, REDIS_ACTIVITY_URL and REDIS_CACHE_URL (+ REDIS_CACHE_CLUSTER=1) are set.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
