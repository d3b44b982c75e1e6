"""`kcc backoffice ...`: serve the staff API and pages, run the consumer, print the OpenAPI."""

from __future__ import annotations

import json

import click
from kcc_shared.commands import consumer_checks, current_config, organisation_or_exit, run_process
from kcc_shared.config import Config
from kcc_shared.gunicorn import serve_command
from kcc_shared.migrations import migrate_command
from kcc_shared.retention import Target, outbox_target, processed_target, prune_command

from backoffice.migrations import HISTORY

__all__ = ["backoffice_group"]


@click.group("backoffice")
def backoffice_group() -> None:
    """Department staff work their queue (HTTP API, inbox pages, event consumer)."""


backoffice_group.add_command(
    serve_command("backoffice", 8002, "Run the API and the inbox pages under gunicorn.")
)


@backoffice_group.command("consume")
def consume() -> None:
    """Consume the department queues and backoffice.events until SIGTERM or Ctrl-C.

    Serves /healthz, /readyz and /metrics on KCC_METRICS_HOST:KCC_METRICS_PORT. On SIGTERM it
    finishes the batch in hand (commit, ack), closes its connections and exits 0; when its
    consumer thread dies it exits 70, so the supervisor starts a fresh one.
    """
    from kcc_shared.db import make_engine

    from backoffice.store import InboxStore
    from backoffice.worker import InboxWorker

    config = current_config("backoffice")
    store = InboxStore(make_engine(config.database_url), organisation_or_exit("backoffice", config))
    store.create_schema()
    worker = InboxWorker(config, store)
    readiness = consumer_checks(store.engine, config.broker_url, lambda: worker.consumer.consuming)
    try:
        run_process("backoffice", config, [worker.consumer.part()], readiness)
    finally:
        store.engine.dispose()


@backoffice_group.command("openapi")
def openapi() -> None:
    """Print the OpenAPI description (what services/backoffice/openapi.json holds)."""
    click.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))


def openapi_document() -> dict[str, object]:
    import secrets

    from backoffice.app import create_app

    app = create_app(
        Config(
            database_url="sqlite:///:memory:",
            broker_url="memory://",
            outbox_relay=False,
            secret_key=secrets.token_urlsafe(24),
        )
    )
    with app.test_request_context():
        spec: dict[str, object] = app.extensions["flask-smorest"]["apis"][""][
            "ext_obj"
        ].spec.to_dict()
    return spec


# `kcc backoffice migrate`: the schema before a release takes traffic (kcc_shared.migrations).
backoffice_group.add_command(migrate_command(HISTORY))


def prune_targets() -> list[Target]:
    """The back office's tables that only grow: processed-event ids and sent outbox rows."""
    from backoffice.store import outbox, processed_events

    return [processed_target(processed_events), outbox_target(outbox)]


# `kcc backoffice prune`: retention (kcc_shared.retention, docs/operations.md#retention).
backoffice_group.add_command(prune_command("backoffice", prune_targets))
