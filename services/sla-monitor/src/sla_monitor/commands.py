"""`kcc sla ...`: serve the overview and API, run the monitor, rebuild its clocks."""

from __future__ import annotations

import click
from kcc_shared.commands import consumer_checks, current_config, organisation_or_exit, run_process
from kcc_shared.gunicorn import serve_command
from kcc_shared.migrations import migrate_command
from kcc_shared.retention import Target, outbox_target, processed_target, prune_command

from sla_monitor.migrations import HISTORY

__all__ = ["sla_group"]


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
        check=lambda: organisation_or_exit("sla", current_config("sla")),
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
    from kcc_shared.db import make_engine

    from sla_monitor.app import monitor_metrics
    from sla_monitor.store import SlaStore
    from sla_monitor.worker import SlaMonitor, utcnow

    config = current_config("sla")
    organisation = organisation_or_exit("sla", config)
    store = SlaStore(make_engine(config.database_url), organisation)
    store.create_schema()
    monitor = SlaMonitor(config, store)
    readiness = consumer_checks(store.engine, config.broker_url, lambda: monitor.consumer.consuming)
    try:
        run_process(
            "sla-monitor",
            config,
            monitor.parts(),
            readiness,
            before_scrape=[monitor_metrics(store, organisation, utcnow)],
        )
    finally:
        store.engine.dispose()


@sla_group.command("recompute")
def recompute() -> None:
    """Rebuild every clock from the stored event history (after a calendar or norm change).

    Announces nothing itself: warnings and breaches already sent keep their flags, and the
    running monitor's scheduler announces whatever the new calendar makes due.
    """
    from kcc_shared.db import make_engine

    from sla_monitor.store import SlaStore
    from sla_monitor.worker import utcnow

    config = current_config("sla")
    store = SlaStore(make_engine(config.database_url), organisation_or_exit("sla", config))
    store.create_schema()
    count = store.recompute(utcnow())
    click.echo(f"recomputed the clocks of {count} requests")


# `kcc sla migrate`: the schema before a release takes traffic (kcc_shared.migrations).
sla_group.add_command(migrate_command(HISTORY))


def prune_targets() -> list[Target]:
    """The monitor's tables that only grow: processed-event ids and sent outbox rows. Its
    event history (sla_events) stays: a recompute rebuilds every clock from it, and a late
    event of a closed request is derived together with the rest of its history."""
    from sla_monitor.tables import outbox, processed

    return [processed_target(processed), outbox_target(outbox)]


# `kcc sla prune`: retention (kcc_shared.retention, docs/operations.md#retention).
sla_group.add_command(prune_command("sla", prune_targets))
