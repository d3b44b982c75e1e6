"""`kcc <service> prune`: old rows go, young rows and unsent outbox rows stay, bad input
changes nothing (docs/operations.md#retention)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from backoffice import store as backoffice_store
from click.testing import CliRunner, Result
from intake import store as intake_store
from intake.store import RequestStore
from intake.stream import last_seq
from intake.view import NewRequest
from kcc_cli.main import cli
from kcc_shared.auth import Principal
from kcc_shared.config import EXIT_CONFIG
from kcc_shared.db import make_engine
from sla_monitor import tables as sla_store
from sqlalchemy import Engine, Table, func, insert, select, update

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
YOUNG = NOW - timedelta(days=2)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'kcc.db'}"
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


def run(url: str, *args: str, **env: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"KCC_DATABASE_URL": url, **env})


def keys(engine: Engine, table: Table, column: str) -> set[Any]:
    with engine.connect() as connection:
        return set(connection.execute(select(table.c[column])).scalars())


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def processed_rows(engine: Engine, table: Table) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(table),
            [
                {"event_id": "old", "queue": "q", "processed_at": OLD},
                {"event_id": "young", "queue": "q", "processed_at": YOUNG},
            ],
        )


def outbox_rows(engine: Engine, table: Table) -> None:
    rows = [("sent-old", OLD, OLD), ("sent-young", OLD, YOUNG), ("unsent-old", OLD, None)]
    with engine.begin() as connection:
        connection.execute(
            insert(table),
            [
                {
                    "event_id": event_id,
                    "routing_key": "request.cancelled",
                    "body": "{}",
                    "created_at": created,
                    "sent_at": sent,
                    "attempts": 0,
                }
                for event_id, created, sent in rows
            ],
        )


class Moment:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def file_requests(engine: Engine, moments: list[datetime]) -> list[str]:
    """File a request at each moment through the intake store (feed row and outbox row)."""
    moment = Moment(moments[0])
    store = RequestStore(engine, clock=moment)
    agent = Principal(user_id="agent-anna", role="agent", team="team-a")
    ids = []
    for at in moments:
        moment.now = at
        new = NewRequest(
            question="Wanneer wordt het grofvuil opgehaald?",
            category=None,
            priority="normal",
            channel="phone",
            citizen_ref=None,
        )
        ids.append(store.submit(agent, new).request.id)
    return ids


def test_intake_prune_deletes_old_rows_of_each_table_and_keeps_young_ones(
    db: tuple[str, Engine],
) -> None:
    url, engine = db
    intake_store.metadata.create_all(engine)
    processed_rows(engine, intake_store.processed_events)
    file_requests(engine, [OLD, OLD, YOUNG])
    with engine.begin() as connection:  # the relay sent the filings' events when they happened
        connection.execute(
            update(intake_store.outbox).values(sent_at=intake_store.outbox.c.created_at)
        )
    outbox_rows(engine, intake_store.outbox)
    feed = intake_store.updates_table
    newest = max(keys(engine, feed, "seq"))

    result = run(url, "intake", "prune")

    assert result.exit_code == 0, result.output
    assert "processed_events: deleted 1 rows older than 30 days" in result.output
    assert "outbox: deleted 3 rows older than 30 days" in result.output
    assert "agent_updates: deleted 2 rows older than 30 days" in result.output
    assert keys(engine, intake_store.processed_events, "event_id") == {"young"}
    assert {"sent-young", "unsent-old"} <= keys(engine, intake_store.outbox, "event_id")
    assert count(engine, intake_store.outbox) == 3  # the young filing's row, and these two
    assert keys(engine, feed, "seq") == {newest}
    # The requests themselves are never pruned.
    assert count(engine, intake_store.requests_table) == 3


def test_the_newest_feed_row_stays_so_the_stream_numbering_goes_on(
    db: tuple[str, Engine],
) -> None:
    url, engine = db
    intake_store.metadata.create_all(engine)
    file_requests(engine, [OLD, OLD])
    newest = max(keys(engine, intake_store.updates_table, "seq"))

    result = run(url, "intake", "prune", "--older-than", "7")

    assert result.exit_code == 0, result.output
    assert keys(engine, intake_store.updates_table, "seq") == {newest}
    assert last_seq(engine) == newest


@pytest.mark.parametrize(
    ("service", "module"),
    [("backoffice", backoffice_store), ("sla", sla_store)],
)
def test_each_service_prunes_its_processed_events_and_sent_outbox_rows(
    db: tuple[str, Engine], service: str, module: Any
) -> None:
    url, engine = db
    module.metadata.create_all(engine)
    processed = module.processed_events if service == "backoffice" else module.processed
    processed_rows(engine, processed)
    outbox_rows(engine, module.outbox)

    result = run(url, service, "prune")

    assert result.exit_code == 0, result.output
    assert "processed_events: deleted 1 rows older than 30 days" in result.output
    assert "outbox: deleted 1 rows older than 30 days" in result.output
    assert keys(engine, processed, "event_id") == {"young"}
    assert keys(engine, module.outbox, "event_id") == {"sent-young", "unsent-old"}


def test_a_dry_run_counts_and_deletes_nothing(db: tuple[str, Engine]) -> None:
    url, engine = db
    backoffice_store.metadata.create_all(engine)
    processed_rows(engine, backoffice_store.processed_events)

    result = run(url, "backoffice", "prune", "--dry-run", "--older-than", "10")

    assert result.exit_code == 0, result.output
    assert "processed_events: would delete 1 rows older than 10 days" in result.output
    assert count(engine, backoffice_store.processed_events) == 2


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "'abc' is not a whole number of days"),
        ("1.5", "'1.5' is not a whole number of days"),
        ("", "'' is not a whole number of days"),
        ("0", "--older-than 0: must be at least 7 days"),
        ("-30", "--older-than -30: must be at least 7 days"),
        ("6", "--older-than 6: must be at least 7 days"),
        ("99999", "--older-than 99999: must be at most 36500 days"),
    ],
)
def test_a_bad_older_than_is_refused_and_nothing_is_deleted(
    db: tuple[str, Engine], value: str, message: str
) -> None:
    url, engine = db
    sla_store.metadata.create_all(engine)
    processed_rows(engine, sla_store.processed)

    result = run(url, "sla", "prune", "--older-than", value)

    assert result.exit_code == 2
    assert message in result.output
    assert "Nothing was deleted." in result.output
    assert count(engine, sla_store.processed) == 2


def test_a_bad_retention_setting_is_refused_and_nothing_is_deleted(
    db: tuple[str, Engine],
) -> None:
    url, engine = db
    intake_store.metadata.create_all(engine)
    processed_rows(engine, intake_store.processed_events)

    result = run(url, "intake", "prune", KCC_RETENTION_DAYS="3")

    # `kcc` checks every setting before any command runs (EXIT_CONFIG, as for any bad setting).
    assert result.exit_code == EXIT_CONFIG
    assert "KCC_RETENTION_DAYS: must be between 7 and 36500 days" in result.output
    assert count(engine, intake_store.processed_events) == 2
