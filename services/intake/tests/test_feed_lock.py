"""The feed lock (PostgreSQL) is taken at the end of a consumer batch, not at its first event:
an agent filing a question never waits for the rest of a batch."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from intake.store import RequestStore, requests_table, updates_table
from intake.view import NewRequest
from kcc_shared.auth import Principal
from kcc_shared.db import write
from kcc_shared.events import SYSTEM, new_event
from sqlalchemy import select, text

ANNA = Principal("agent-anna", "agent", team="kcc-noord")
QUESTION = "Mevrouw vraagt of de ophaaldag van het grofvuil in haar straat is verschoven."


@pytest.fixture
def database_url(postgres_url: str) -> str:
    # SQLite serialises its writers whatever the code does: only PostgreSQL can tell.
    return postgres_url


def filed(store: RequestStore, question: str = QUESTION) -> str:
    new = NewRequest(question, None, "normal", "phone", None)
    return store.submit(ANNA, new).request.id


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never saw: {what}"
        time.sleep(0.01)


def test_a_filing_does_not_wait_for_a_consumer_batch_in_progress(
    app: Flask, routed_data: Callable[..., dict[str, Any]]
) -> None:
    store: RequestStore = app.extensions["kcc.intake"].store
    first, second = filed(store), filed(store)
    batch = [
        new_event("request.routed", request_id=r, actor=SYSTEM, data=routed_data("vergunningen"))
        for r in (first, second)
    ]
    outcomes: dict[str, str] = {}
    filing: list[str] = []

    def consume() -> None:
        with write(store.engine) as connection:
            outcomes.update(store.apply_events(connection, batch))

    def file_another() -> None:
        filing.append(filed(store, "Meneer vraagt hoe hij een parkeervergunning aanvraagt."))

    def waiting(locktype: str) -> bool:
        with store.engine.connect() as connection:
            query = text("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = :kind")
            return bool(connection.execute(query, {"kind": locktype}).scalar())

    consumer = threading.Thread(target=consume)
    agent = threading.Thread(target=file_another)
    with store.engine.connect() as holder:
        # Someone holds the second request's row: the batch stops there, its first event
        # applied, until the holder is done.
        t = requests_table
        holder.execute(select(t).where(t.c.id == second).with_for_update())
        consumer.start()
        wait_for(lambda: waiting("transactionid"), "the batch waiting for the second request")
        agent.start()
        wait_for(lambda: bool(filing) or waiting("advisory"), "the filing ending or waiting")
        assert filing, "the filing waits for the feed lock of a batch still in progress"
        holder.rollback()
    consumer.join()
    agent.join()

    assert outcomes == {event.id: "applied" for event in batch}
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(updates_table.c.request_id).order_by(updates_table.c.seq)
        ).scalars()
        # Each entry once, the batch's last: they became visible together, at its commit.
        assert list(rows) == [first, second, filing[0], first, second]
