"""``flask redis pools``: the health report of the current app's connections (CONTRACT 5).

The report, its text and JSON forms and the exit status are :mod:`redis_conn.health`'s, shared
with Django's ``manage.py redis_pools``.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from redis_conn.budget import WORKERS_SETTING, known_workers
from redis_conn.exceptions import ConnectionNotFound
from redis_conn.flask.state import app_registry
from redis_conn.health import build_report, exit_code
from redis_conn.health_text import render

redis_cli = AppGroup("redis", help="Inspect this app's Redis connections (redis_conn).")


@redis_cli.command("pools")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--connection",
    "names",
    multiple=True,
    metavar="NAME",
    help="Report only this connection; repeat for several. Default: every connection.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="How many worker processes run with this config: each connection's budget is "
    "MAX_CONNECTIONS x N against the server's maxclients, degraded above 80%. Default: "
    "app.config['REDIS_CONN_WORKERS'], else $WEB_CONCURRENCY, else no budget.",
)
@click.option(
    "--no-ping",
    is_flag=True,
    help="Do not contact the servers: show the configuration and pool usage only.",
)
def pools(as_json: bool, names: tuple[str, ...], workers: int | None, no_ping: bool) -> None:
    """Show each connection's target, status, PING time, pool usage and server, and with
    --workers the connection budget of all the workers against the server's maxclients.

    Exits with status 0 when every connection is reachable, 1 otherwise.
    """
    registry = app_registry(current_app)
    configured = registry.names()
    if not configured:
        # An empty report would read "overall: ok" about nothing.
        raise click.ClickException(
            "REDIS_CONNECTIONS is empty: there is no Redis connection to report."
        )
    unknown = [name for name in names if name not in configured]
    if unknown:
        # The core's wording, as get_redis() would say it.
        error = ConnectionNotFound(unknown[0], configured)
        raise click.BadParameter(error.message, param_hint="'--connection'") from None
    # Each name once, in the order given.
    wanted = list(dict.fromkeys(names)) or None
    if workers is None:
        workers = known_workers(current_app.config.get(WORKERS_SETTING))
    report = build_report(registry, ping=not no_ping, names=wanted, workers=workers)
    click.echo(render(report, as_json=as_json))
    click.get_current_context().exit(exit_code(report))
