"""`kcc sla recompute` pages through the requests: the same clocks whatever the page size."""

from __future__ import annotations

from typing import Any

from kcc_shared.db import write
from sla_monitor.store import SlaStore
from sla_monitor.tables import clocks_table, open_counts_table
from sqlalchemy import delete, select

from .conftest import Events, FakeClock, Ingest, local


def clocks(store: SlaStore) -> list[tuple[Any, ...]]:
    with store.engine.connect() as connection:
        rows = connection.execute(select(clocks_table)).all()
    return sorted(tuple(r) for r in rows)


def open_counts(store: SlaStore) -> list[tuple[Any, ...]]:
    with store.engine.connect() as connection:
        return sorted(tuple(r) for r in connection.execute(select(open_counts_table)).all())


def test_a_recompute_in_small_pages_rebuilds_every_request_once(
    store: SlaStore, clock: FakeClock, ingest: Ingest
) -> None:
    # Seven requests: open, claimed and answered ones, so pages end in every kind of history.
    for n in range(7):
        e = Events()
        ingest(e.routed(local(f"2026-04-20 09:0{n}")))
        if n % 3 >= 1:
            ingest(e.claimed(local("2026-04-20 09:30")))
        if n % 3 == 2:
            ingest(e.answered(local("2026-04-20 10:00")))
    clock.now = local("2026-04-20 11:00")
    before, counts_before = clocks(store), open_counts(store)
    assert len({row[0] for row in before}) == 7
    assert counts_before
    with write(store.engine) as connection:  # what a calendar change would make stale
        connection.execute(delete(clocks_table))
        connection.execute(delete(open_counts_table))

    # Pages of 2: three full pages and one of one.
    assert store.recompute(clock(), batch=2) == 7

    assert clocks(store) == before
    assert open_counts(store) == counts_before
    assert store.recompute(clock(), batch=500) == 7
    assert clocks(store) == before
