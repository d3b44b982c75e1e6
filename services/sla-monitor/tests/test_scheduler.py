"""Warnings and breaches fire once, at the moment a threshold passes, driven by a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable

from kcc_shared.events import derived_event_id, parse_event
from sla_monitor.store import SlaStore
from sla_monitor.tables import outbox
from sla_monitor.worker import DeadlineScheduler
from sqlalchemy import select

from .conftest import Events, FakeClock, Ingest, local


def notices(store: SlaStore) -> list[tuple[str, str, int]]:
    with store.engine.connect() as connection:
        bodies = connection.execute(select(outbox.c.body).order_by(outbox.c.seq)).scalars()
        events = [parse_event(b) for b in bodies]
    return [(e.type, e.data["clock"], e.data["elapsed_seconds"]) for e in events]


def test_warning_and_breach_fire_once_at_the_right_moment(
    store: SlaStore, clock: FakeClock, ingest: Ingest, events: Callable[[], Events]
) -> None:
    e = events()
    routed = e.routed(local("2026-04-20 09:00"))  # urgent: first response 1 h, warning 48 min
    clock.set(local("2026-04-20 09:00"))
    ingest(routed)
    scheduler = DeadlineScheduler(store, clock=clock)

    clock.set(local("2026-04-20 09:47:59"))
    assert scheduler.tick() == 0
    clock.set(local("2026-04-20 09:48"))
    assert scheduler.tick() == 1
    assert scheduler.tick() == 0
    clock.set(local("2026-04-20 10:00"))  # exactly on target: still met
    assert scheduler.tick() == 0
    clock.set(local("2026-04-20 10:00:01"))
    assert scheduler.tick() == 1
    clock.advance(hours=1)
    assert scheduler.tick() == 0

    assert notices(store) == [
        ("request.sla_warning", "first_response", 2880),
        ("request.sla_breached", "first_response", 3601),
    ]
    with store.engine.connect() as connection:
        ids = set(connection.execute(select(outbox.c.event_id)).scalars())
    assert derived_event_id(routed.id, "sla_breached:first_response") in ids


def test_breach_event_carries_the_contract_fields(
    store: SlaStore, clock: FakeClock, ingest: Ingest, events: Callable[[], Events]
) -> None:
    e = events()
    ingest(e.routed(local("2026-04-20 09:00"), "belastingen", "high"))
    clock.set(local("2026-04-21 09:00"))
    DeadlineScheduler(store, clock=clock).tick()
    with store.engine.connect() as connection:
        rows = connection.execute(select(outbox.c.routing_key, outbox.c.body)).all()
    breached = [json.loads(body) for key, body in rows if key == "request.sla_breached"]
    assert {b["data"]["clock"] for b in breached} == {"first_response"}
    assert breached[0]["data"] == {
        "department": "belastingen",
        "priority": "high",
        "clock": "first_response",
        "target_seconds": 14400,
        "elapsed_seconds": 8 * 3600 + 1800,
    }
    # 4 h after 09:00 CEST (07:00 UTC), plus the microsecond that makes it "past" the target.
    assert breached[0]["occurred_at"] == "2026-04-20T11:00:00.000001Z"


def test_paused_clock_does_not_fire_and_a_late_claim_announces_what_it_passed(
    store: SlaStore, clock: FakeClock, ingest: Ingest, events: Callable[[], Events]
) -> None:
    e = events()
    scheduler = DeadlineScheduler(store, clock=clock)
    ingest(e.routed(local("2026-04-20 09:00")))
    ingest(e.clarification(local("2026-04-20 09:30")))
    clock.set(local("2026-04-22 09:00"))
    assert scheduler.tick() == 0  # paused: no business time passes
    ingest(e.clarified(local("2026-04-22 09:00")))
    clock.set(local("2026-04-22 09:50"))
    ingest(e.claimed(local("2026-04-22 09:50")))  # 80 min: both passed, nobody ticked in between
    assert [n[:2] for n in notices(store)] == [
        ("request.sla_warning", "first_response"),
        ("request.sla_breached", "first_response"),
    ]
    assert scheduler.tick() == 0


def test_redelivery_and_recompute_never_announce_twice(
    store: SlaStore, clock: FakeClock, ingest: Ingest, events: Callable[[], Events]
) -> None:
    e = events()
    routed, claimed = e.routed(local("2026-04-20 09:00")), e.claimed(local("2026-04-20 11:00"))
    ingest(routed)
    scheduler = DeadlineScheduler(store, clock=clock)
    clock.set(local("2026-04-20 10:30"))
    assert scheduler.tick() == 2
    clock.set(local("2026-04-20 11:00"))
    assert ingest(claimed)
    assert not ingest(claimed)  # a redelivery is a duplicate
    before = notices(store)

    store.recompute(clock())
    clock.set(local("2026-04-25 12:00"))
    scheduler.tick()

    after = notices(store)
    # The resolution clock (4 h) has since warned and breached; nothing was announced twice.
    assert after[: len(before)] == before
    assert len(after) == len(set(after)) == 4


def test_reopened_round_that_already_breached_does_not_breach_again(
    store: SlaStore, clock: FakeClock, ingest: Ingest, events: Callable[[], Events]
) -> None:
    e = events()
    ingest(e.routed(local("2026-04-20 09:00")))
    clock.set(local("2026-04-21 12:00"))
    ingest(e.answered(local("2026-04-21 12:00")))  # long past both targets
    count = len(notices(store))
    clock.set(local("2026-04-22 09:00"))
    ingest(e.reopened(local("2026-04-22 09:00"), "burgerzaken"))
    clock.set(local("2026-04-23 09:00"))
    DeadlineScheduler(store, clock=clock).tick()
    assert len(notices(store)) == count == 4
