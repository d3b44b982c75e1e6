"""`kcc intake ...`: serve the API, consume events into the agents' view, print the OpenAPI."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from kcc_shared.commands import consumer_checks, current_config, refuse, run_process
from kcc_shared.gunicorn import serve_command
from kcc_shared.migrations import migrate_command
from kcc_shared.retention import Target, outbox_target, processed_target, prune_command
from sqlalchemy.exc import SQLAlchemyError

from intake.migrations import HISTORY


@click.group("intake")
def intake_group() -> None:
    """The agents' front door (HTTP API and the consumer keeping their view current)."""


intake_group.add_command(
    serve_command("intake", 8001, "Run the API and the desk pages under gunicorn.")
)


@intake_group.command("consume")
def consume() -> None:
    """Consume intake.events into the agents' view until SIGTERM or Ctrl-C.

    Reads the KCC_* environment (see `kcc config env`); serves /metrics, /healthz and /readyz
    on KCC_METRICS_HOST:KCC_METRICS_PORT. On SIGTERM or SIGINT it finishes the batch in hand
    (commit, then ack), closes its connections and exits 0; when its consumer thread dies it
    exits 70, so the supervisor starts a fresh one.
    """

    from kcc_shared.db import make_engine

    from intake.store import RequestStore
    from intake.worker import ViewConsumer

    config = current_config("intake")
    store = RequestStore(make_engine(config.database_url))
    store.create_schema()
    view = ViewConsumer(config, store)
    readiness = consumer_checks(store.engine, config.broker_url, lambda: view.consuming)
    try:
        run_process("intake", config, [view.consumer.part()], readiness)
    finally:
        store.engine.dispose()


@intake_group.command("export-labelled")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Only requests answered on or after this date (YYYY-MM-DD, UTC).",
)
def export_labelled(since: datetime | None) -> None:
    """Print every answered request as a labelled question (JSON Lines) for
    `kcc router train --history`: the redacted question and the department that answered it.

    Reads the intake's database (KCC_DATABASE_URL); nothing else about the request leaves it.
    """
    from kcc_shared.db import make_engine

    from intake.history import labelled_history

    engine = make_engine(current_config("intake").database_url)
    try:
        moment = since.replace(tzinfo=UTC) if since is not None else None
        count = 0
        for row in labelled_history(engine, moment):
            click.echo(json.dumps(row, ensure_ascii=False))
            count += 1
    except SQLAlchemyError as exc:
        refuse("intake", f"cannot read the database: {type(exc).__name__}")
    finally:
        engine.dispose()
    click.echo(f"{count} answered requests exported", err=True)


@intake_group.command("openapi")
def openapi() -> None:
    """Print the OpenAPI description (what services/intake/openapi.json holds)."""
    click.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))


def openapi_document() -> dict[str, object]:
    from kcc_shared.config import Config

    from intake.app import create_app

    app = create_app(
        Config(database_url="sqlite:///:memory:", broker_url="memory://", outbox_relay=False)
    )
    with app.test_request_context():
        spec: dict[str, object] = app.extensions["flask-smorest"]["apis"][""][
            "ext_obj"
        ].spec.to_dict()
    return spec


# `kcc intake migrate`: the schema before a release takes traffic (kcc_shared.migrations).
intake_group.add_command(migrate_command(HISTORY))


def prune_targets() -> list[Target]:
    """The intake's tables that only grow: processed-event ids, sent outbox rows and the
    agents' update feed (its newest row stays, so a stream's numbering goes on from it; a
    stream resuming from a pruned number just continues after it)."""
    from intake.store import outbox, processed_events, updates_table

    return [
        processed_target(processed_events),
        outbox_target(outbox),
        Target(updates_table, stamp="created_at", key="seq", keep_newest=True),
    ]


# `kcc intake prune`: retention (kcc_shared.retention, docs/operations.md#retention).
intake_group.add_command(prune_command("intake", prune_targets))
