"""Ingest in batches: the same clocks, counts, notices and metrics as one event at a time, and a
threshold found late still carries the moment it was passed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kcc_shared.db import make_engine, write
from kcc_shared.events import Event, derived_event_id, parse_event
from kcc_shared.organisation import Organisation
from prometheus_client import REGISTRY
from sla_monitor.store import SlaStore
from sla_monitor.tables import (
    clocks_table,
    handoffs_table,
    open_counts_table,
    outbox,
    processed,
    ratings_table,
    requests_table,
)
from sla_monitor.worker import DeadlineScheduler, SlaIngest
from sqlalchemy import Table, insert, select

from .conftest import Events, FakeClock, local

END = local("2026-04-20 15:00")


def scenario() -> list[Event]:
    """One Monday at Burgerzaken (urgent: first response 1 h, resolution 4 h, warnings at 80 %):
    on time, late with a clarification pause, forwarded, reopened, cancelled, still open."""
    on_time, late, forwarded, reopened, cancelled, open_ = (Events() for _ in range(6))
    return [
        on_time.routed(local("2026-04-20 09:00")),
        on_time.claimed(local("2026-04-20 09:20")),
        on_time.answered(local("2026-04-20 10:00")),
        on_time.rated(local("2026-04-20 10:05"), 5, True),  # no department: the request's
        late.routed(local("2026-04-20 09:00")),
        late.claimed(local("2026-04-20 10:30")),  # first response breached at 10:00
        late.clarification(local("2026-04-20 10:40")),
        late.clarified(local("2026-04-20 11:00")),
        late.answered(local("2026-04-20 14:00")),  # resolution breached too, after the pause
        forwarded.routed(local("2026-04-20 09:00")),
        forwarded.routed(local("2026-04-20 09:30"), "belastingen", from_department="burgerzaken"),
        forwarded.claimed(local("2026-04-20 10:00"), "belastingen"),
        forwarded.answered(local("2026-04-20 11:00"), "belastingen"),
        forwarded.rated(local("2026-04-20 11:10"), 2, False),
        reopened.routed(local("2026-04-20 09:00")),
        reopened.answered(local("2026-04-20 09:30")),
        reopened.reopened(local("2026-04-20 10:00")),
        reopened.answered(local("2026-04-20 10:30")),
        cancelled.routed(local("2026-04-20 09:00")),
        cancelled.cancelled(local("2026-04-20 09:10")),
        open_.routed(local("2026-04-20 11:00")),  # breached at 12:00, found by the scheduler
    ]


def consume(store: SlaStore, clock: FakeClock, batch: list[Event]) -> None:
    """What EventConsumer does with one batch: record the ids and apply, then after-commit."""
    handler = SlaIngest(store, clock=clock)
    with write(store.engine) as connection:
        connection.execute(
            insert(processed),
            [
                {"event_id": e.id, "queue": "sla-monitor.events", "processed_at": clock()}
                for e in batch
            ],
        )
        handler(connection, batch)
    for event in batch:
        handler.after_commit(event)


def rows(store: SlaStore, table: Table) -> list[tuple[Any, ...]]:
    with store.engine.connect() as connection:
        found = [tuple(r) for r in connection.execute(select(table))]
    if table is open_counts_table:
        found = [r for r in found if r[-1] != 0]  # a count back at zero is no count
    return sorted(found, key=repr)


def announced(store: SlaStore) -> list[tuple[str, str, datetime, dict[str, Any]]]:
    with store.engine.connect() as connection:
        events = [parse_event(b) for b in connection.execute(select(outbox.c.body)).scalars()]
    return sorted((e.id, e.type, e.occurred_at, dict(e.data)) for e in events)


def state(store: SlaStore) -> dict[str, Any]:
    tables = (clocks_table, requests_table, open_counts_table, handoffs_table, ratings_table)
    return {
        "tables": {t.name: rows(store, t) for t in tables},
        # elapsed_seconds is what a clock showed when its notice was made, so it depends on
        # when a still running clock was looked at; everything else must match.
        "announced": [
            (id_, type_, at, {k: v for k, v in data.items() if k != "elapsed_seconds"})
            for id_, type_, at, data in announced(store)
        ],
    }


def sla_samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in REGISTRY.collect()
        if family.name.startswith(("kcc_sla_", "kcc_request_"))
        for s in family.samples
        if not s.name.endswith("_created") and "timestamp" not in s.name
    }


def metric_changes(before: dict[Any, float]) -> dict[Any, float]:
    after = sla_samples()
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


@pytest.fixture
def stores(tmp_path: Path, org: Organisation) -> Iterator[list[SlaStore]]:
    made = []
    for name in ("one-at-a-time", "one-batch", "small-batches"):
        store = SlaStore(make_engine(f"sqlite:///{tmp_path / name}.db"), org)
        store.create_schema()
        made.append(store)
    yield made
    for store in made:
        store.engine.dispose()


def test_batches_end_in_the_same_state_notices_and_metrics_as_one_event_at_a_time(
    stores: list[SlaStore],
) -> None:
    single, one_batch, small_batches = stores
    events = sorted(scenario(), key=lambda e: e.occurred_at)
    results = []

    # As it happens: every event on its own, the moment it occurs.
    before = sla_samples()
    clock = FakeClock(events[0].occurred_at)
    for event in events:
        clock.set(event.occurred_at)
        consume(single, clock, [event])
    clock.set(END)
    DeadlineScheduler(single, clock=clock).tick()
    results.append((state(single), metric_changes(before)))

    # A backlog: everything in one batch, in no particular order, long after the fact.
    before = sla_samples()
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    clock = FakeClock(END)
    consume(one_batch, clock, shuffled)
    DeadlineScheduler(one_batch, clock=clock).tick()
    results.append((state(one_batch), metric_changes(before)))

    # Small batches as they arrive, each applied when its last event occurs.
    before = sla_samples()
    for start in range(0, len(events), 3):
        batch = events[start : start + 3]
        clock = FakeClock(batch[-1].occurred_at)
        consume(small_batches, clock, batch)
    clock = FakeClock(END)
    DeadlineScheduler(small_batches, clock=clock).tick()
    results.append((state(small_batches), metric_changes(before)))

    expected_state, expected_metrics = results[0]
    # Late: both clocks warned and breached; open: first response too, resolution warned.
    assert len(expected_state["announced"]) == 7
    assert expected_state["tables"]["sla_handoffs"]
    assert len(expected_state["tables"]["sla_ratings"]) == 2
    for got_state, got_metrics in results[1:]:
        assert got_state == expected_state
        assert got_metrics == expected_metrics


def test_a_breach_found_late_carries_the_moment_it_was_passed(
    store: SlaStore, events: type[Events]
) -> None:
    e = events()
    routed = e.routed(local("2026-04-20 09:00"))
    claimed = e.claimed(local("2026-04-20 10:30"))
    # The claim comes first and both are applied together, long after the fact: the clock is
    # closed when the monitor first sees it, yet the notices say when the thresholds passed.
    consume(store, FakeClock(local("2026-04-20 12:00")), [claimed, routed])

    warning_at, breach_at = (
        local("2026-04-20 09:48"),
        local("2026-04-20 10:00").replace(microsecond=1),
    )
    assert announced(store) == [
        (derived_event_id(routed.id, purpose), type_, at, data)
        for purpose, type_, at, data in sorted(
            [
                ("sla_warning:first_response", "request.sla_warning", warning_at, notice(5400)),
                ("sla_breached:first_response", "request.sla_breached", breach_at, notice(5400)),
            ],
            key=lambda n: derived_event_id(routed.id, n[0]),
        )
    ]
    first_response = next(c for c in store.clocks_of(e.request_id) if c.kind == "first_response")
    assert (first_response.warned, first_response.breached) == (True, True)
    assert first_response.breached_at == breach_at


def notice(elapsed_seconds: int) -> dict[str, Any]:
    # elapsed_seconds: what the clock showed when the notice was made (here: when it closed).
    return {
        "department": "burgerzaken",
        "priority": "urgent",
        "clock": "first_response",
        "target_seconds": 3600,
        "elapsed_seconds": elapsed_seconds,
    }


def test_a_threshold_is_announced_once_whatever_arrives_after_it(
    store: SlaStore, events: type[Events]
) -> None:
    e = events()
    clock = FakeClock(local("2026-04-20 11:00"))
    routed = e.routed(local("2026-04-20 09:00"))
    consume(store, clock, [routed, e.claimed(local("2026-04-20 10:30"))])
    first = announced(store)

    consume(store, clock, [e.clarification(local("2026-04-20 10:40"))])
    consume(
        store,
        clock,
        [e.clarified(local("2026-04-20 10:50")), e.answered(local("2026-04-20 10:55"))],
    )
    store.recompute(clock())
    DeadlineScheduler(store, clock=clock).tick()

    assert {(i, type_) for i, type_, _, _ in first} == {
        (derived_event_id(routed.id, "sla_warning:first_response"), "request.sla_warning"),
        (derived_event_id(routed.id, "sla_breached:first_response"), "request.sla_breached"),
    }
    assert announced(store) == first
