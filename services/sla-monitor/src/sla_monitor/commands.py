"""`kcc sla ...`: serve the overview and API, run the monitor, rebuild its clocks."""

from __future__ import annotations

import logging

import click
from kcc_shared.config import Config, ConfigError
from kcc_shared.gunicorn import serve_command
from kcc_shared.migrations import migrate_command
from kcc_shared.organisation import OrganisationError, load_organisation
from kcc_shared.retention import Target, outbox_target, processed_target, prune_command

from sla_monitor.migrations import HISTORY

__all__ = ["sla_group"]

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


def _config() -> Config:
    ctx = click.get_current_context()
    if isinstance(ctx.find_object(Config), Config):
        config: Config = ctx.find_object(Config)  # type: ignore[assignment]
        return config
    try:
        return Config.from_env()
    except ConfigError as exc:
        click.echo(f"sla: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_CONFIG) from None


def _check_organisation(config: Config) -> None:
    try:
        load_organisation(config.organisation_file)
    except OrganisationError as exc:
        click.echo("sla: the organisation file is invalid; not starting:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise click.exceptions.Exit(EXIT_CONFIG) from None


@click.group("sla")
def sla_group() -> None:
    """SLA clocks in business time, warnings, breaches and metrics."""


sla_group.add_command(
    serve_command(
        "sla_monitor",
        8003,
        "Run the summary API and the overview pages under gunicorn. Its /metrics holds only "
        "its HTTP latency; the SLA figures are `kcc sla run`'s.",
        # Said here once, in words, rather than as a traceback of every gunicorn worker.
        check=lambda: _check_organisation(_config()),
    )
)


@sla_group.command("run")
def run() -> None:
    """Consume sla-monitor.events, announce deadlines and relay the outbox until SIGTERM or
    Ctrl-C; serves /metrics (every SLA figure), /healthz and /readyz on
    KCC_METRICS_HOST:KCC_METRICS_PORT.

    On SIGTERM it stops consuming, lets the scheduler and the outbox relay finish, and exits 0;
    when one of its parts dies it exits 70, so the supervisor starts a fresh one. /healthz says
    whether every part runs and makes progress; /readyz whether the database and the broker
    answer and the consumer consumes.
    """
    from kcc_shared import runner
    from kcc_shared.db import make_engine
    from kcc_shared.health import HealthServer, broker_check, database_check
    from kcc_shared.publisher import connection_factory

    from sla_monitor.app import monitor_metrics
    from sla_monitor.store import SlaStore
    from sla_monitor.worker import SlaMonitor, utcnow

    config = _config()
    _check_organisation(config)
    organisation = load_organisation(config.organisation_file)
    store = SlaStore(make_engine(config.database_url), organisation)
    store.create_schema()
    monitor = SlaMonitor(config, store)
    parts = monitor.parts()

    def consuming() -> None:
        if not monitor.consumer.consuming:
            raise RuntimeError("not consuming")

    server = HealthServer(
        config.metrics_host,
        config.metrics_port,
        {
            "database": database_check(store.engine),
            "broker": broker_check(connection_factory(config.broker_url, timeout=2)),
            "consumer": consuming,
        },
        liveness=runner.liveness(parts),
        name="sla-monitor",
        metrics_token=config.metrics_token,
        before_scrape=[monitor_metrics(store, organisation, utcnow)],
    )
    try:
        status = runner.run("sla-monitor", [server.part(), *parts])
    finally:
        store.engine.dispose()
    if status:
        raise click.exceptions.Exit(status)


@sla_group.command("recompute")
def recompute() -> None:
    """Rebuild every clock from the stored event history (after a calendar or norm change).

    Announces nothing itself: warnings and breaches already sent keep their flags, and the
    running monitor's scheduler announces whatever the new calendar makes due.
    """
    from kcc_shared.db import make_engine

    from sla_monitor.store import SlaStore
    from sla_monitor.worker import utcnow

    config = _config()
    _check_organisation(config)
    store = SlaStore(make_engine(config.database_url), load_organisation(config.organisation_file))
    store.create_schema()
    count = store.recompute(utcnow())
    click.echo(f"recomputed the clocks of {count} requests")


# `kcc sla migrate`: the schema before a release takes traffic (kcc_shared.migrations).
sla_group.add_command(migrate_command(HISTORY))


def prune_targets() -> list[Target]:
    """The monitor's tables that only grow: processed-event ids and sent outbox rows. Its
    event history (sla_events) stays: a recompute rebuilds every clock from it, and a late
    event of a closed request is derived together with the rest of its history."""
    from sla_monitor.store import outbox, processed

    return [processed_target(processed), outbox_target(outbox)]


# `kcc sla prune`: retention (kcc_shared.retention, docs/operations.md#retention).
sla_group.add_command(prune_command("sla", prune_targets))
