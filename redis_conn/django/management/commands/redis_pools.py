"""``manage.py redis_pools``: the health report of every Redis connection (CONTRACT section 5)."""

from __future__ import annotations

from argparse import ArgumentTypeError
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from redis_conn.budget import WORKERS_SETTING, known_workers
from redis_conn.django.cache import caches_by_connection
from redis_conn.django.conf import load_settings
from redis_conn.health import exit_code
from redis_conn.health_text import render
from redis_conn.registry import connections


def configured_names() -> list[str]:
    """The connection names in the settings, for ``--connection`` choices (no parsing needed)."""
    raw = load_settings()
    if raw is None:
        return ["default"]
    return [name for name in raw if isinstance(name, str)] if isinstance(raw, Mapping) else []


class Command(BaseCommand):
    help = (
        "Show every Redis connection of REDIS_CONNECTIONS: kind, target (passwords masked), "
        "status, PING time, pool use and server, and with --workers the connection budget "
        "of all the worker processes against the server's maxclients. Exits with status 0 when "
        "every connection is reachable, 1 otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--connection",
            action="append",
            choices=configured_names(),
            metavar="NAME",
            help="Report only this connection; repeat for several. Default: all of them.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the report as JSON (the dict of redis_conn.connections.health()).",
        )
        parser.add_argument(
            "--workers",
            type=_count,
            metavar="N",
            help="How many worker processes run with these settings: each connection's budget "
            "is MAX_CONNECTIONS x N against the server's maxclients, degraded above 80%%. "
            "Default: the REDIS_CONN_WORKERS setting, else $WEB_CONCURRENCY, else no budget.",
        )
        parser.add_argument(
            "--no-ping",
            action="store_true",
            help="Do not contact the servers: show the configuration and the pools only.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not connections.names():
            # An empty report would read "overall: ok" about nothing (check W005 warns too).
            raise CommandError(
                "REDIS_CONNECTIONS is empty: there is no Redis connection to report.",
                returncode=1,
            )
        names = options["connection"]
        if names is not None:
            names = list(dict.fromkeys(names))  # each once, in the order given
        workers = options["workers"] or known_workers(getattr(settings, WORKERS_SETTING, None))
        report = connections.health(ping=not options["no_ping"], names=names, workers=workers)
        on_connection = caches_by_connection()
        for entry in report["connections"]:  # which CACHES aliases sit on each connection
            entry["caches"] = on_connection.get(entry["name"], [])
        self.stdout.write(render(report, as_json=options["json"]))
        if exit_code(report) != 0:
            down = [repr(c["name"]) for c in report["connections"] if c["status"] == "down"]
            plural = "s" if len(down) > 1 else ""
            raise CommandError(
                f"Unreachable Redis connection{plural}: {', '.join(down)}.", returncode=1
            )


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)
