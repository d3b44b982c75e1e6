"""The `kcc` command: one entry point that assembles every service's commands."""

from __future__ import annotations

import os
from pathlib import Path

# Note: prometheus-client opens files in PROMETHEUS_MULTIPROC_DIR as soon as a service module
# defines its metrics, i.e. on the imports below. Make sure the folder exists first (gunicorn's
# master wipes it again when `kcc intake serve` starts it).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

import click
from backoffice.commands import backoffice_group
from intake.commands import intake_group
from kcc_shared.commands import current_config
from kcc_shared.migrations import EXIT_ERROR, SchemaError
from router.commands import router_group, rules_group
from sla_monitor.commands import sla_group

from kcc_cli.config import config_group
from kcc_cli.deadletters import dead_letters_group
from kcc_cli.dev import dev
from kcc_cli.migrate import migrate_all
from kcc_cli.similar import similar_group
from kcc_cli.token import token_group


@click.group()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """KCC knowledge-request routing: intake, router, back office and SLA monitor."""
    # Read once for every command below (kcc_shared.commands.current_config); a wrong variable
    # stops here, named, with EXIT_CONFIG.
    ctx.obj = current_config("kcc")


for group in (
    token_group,
    intake_group,
    backoffice_group,
    router_group,
    config_group,
    rules_group,
    dead_letters_group,
    sla_group,
    similar_group,
    dev,
    migrate_all,
):
    cli.add_command(group)


def main() -> None:
    try:
        cli(prog_name="kcc")
    except SchemaError as exc:
        # A service refusing a database that is behind (or ahead): the message says what to run.
        click.echo(f"kcc: {exc}", err=True)
        raise SystemExit(EXIT_ERROR) from None
