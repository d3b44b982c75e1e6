"""The clock model in business time: evenings, weekends, holidays, DST, pauses, forwards."""

from __future__ import annotations

import itertools
import random

import pytest
from kcc_shared.clocks import Clock, HistoryEvent, derive, due_notices, next_due, percentile
from kcc_shared.events import Event
from kcc_shared.organisation import Organisation

from .conftest import Events, local


def history(*events: Event) -> list[HistoryEvent]:
    return [HistoryEvent(e.id, e.type, e.occurred_at, dict(e.data)) for e in events]


def clock_of(clocks: list[Clock], department: str, kind: str, round_: int = 0) -> Clock:
    (found,) = [
        c for c in clocks if c.department == department and c.kind == kind and c.round == round_
    ]
    return found


@pytest.mark.parametrize(
    ("department", "routed", "claimed", "expected"),
    [
        # Monday evening: 16:00-17:00 and Tuesday 08:30-09:00.
        ("burgerzaken", "2026-04-20 16:00", "2026-04-21 09:00", 5400),
        # Burgerzaken is open until 20:00 on Thursdays: the evening counts there...
        ("burgerzaken", "2026-04-23 16:00", "2026-04-24 09:00", 4 * 3600 + 1800),
        # ... and not at Belastingen (kantoor calendar).
        ("belastingen", "2026-04-23 16:00", "2026-04-24 09:00", 3600 + 1800),
        # A weekend: Friday 16:30-17:00 and Monday 08:30-09:00.
        ("belastingen", "2026-04-17 16:30", "2026-04-20 09:00", 3600),
        # Koningsdag (Monday 27 April 2026) is closed: Friday 16:00-17:00, Tuesday 08:30-09:30.
        ("belastingen", "2026-04-24 16:00", "2026-04-28 09:30", 7200),
        # Christmas: 24 and 28-31 Dec are extra closing days, 25/26 Dec and 1 Jan holidays.
        ("belastingen", "2026-12-23 16:00", "2027-01-04 09:30", 7200),
        # The DST switch (29 March 2026): opening hours stay local, 08:30 CEST is 06:30 UTC.
        ("belastingen", "2026-03-27 16:00", "2026-03-30 09:00", 3600 + 1800),
        # Routed outside hours: the clock starts at the next opening.
        ("belastingen", "2026-04-18 11:00", "2026-04-20 08:45", 900),
    ],
)
def test_first_response_counts_only_business_time(
    org: Organisation, department: str, routed: str, claimed: str, expected: int
) -> None:
    e = Events()
    derived = derive(
        e.request_id,
        history(e.routed(local(routed), department), e.claimed(local(claimed), department)),
        org,
    )

    first = clock_of(derived.clocks, department, "first_response")
    assert first.elapsed_us == expected * 1_000_000
    assert first.close_reason == "claimed"
    assert clock_of(derived.clocks, department, "resolution").status == "running"
    assert derived.state == "claimed"


def test_clarification_pauses_both_clocks_and_clarified_resumes(org: Organisation) -> None:
    e = Events()
    derived = derive(
        e.request_id,
        history(
            e.routed(local("2026-04-20 09:00")),
            e.clarification(local("2026-04-20 10:00")),
            e.clarified(local("2026-04-21 14:00")),  # a day and a half waiting: not counted
            e.claimed(local("2026-04-21 14:30")),
            e.answered(local("2026-04-21 15:00")),
        ),
        org,
    )

    assert clock_of(derived.clocks, "burgerzaken", "first_response").elapsed_us == 5400 * 10**6
    resolution = clock_of(derived.clocks, "burgerzaken", "resolution")
    assert resolution.elapsed_us == 2 * 3600 * 10**6
    assert resolution.outcome == "met"
    assert derived.state == "closed"


def test_state_while_waiting_for_clarification(org: Organisation) -> None:
    e = Events()
    derived = derive(
        e.request_id,
        history(e.routed(local("2026-04-20 09:00")), e.clarification(local("2026-04-20 09:10"))),
        org,
    )
    assert derived.state == "awaiting_clarification"
    assert all(c.status == "paused" for c in derived.clocks)


def test_forward_closes_old_department_and_starts_new_one_in_its_own_calendar(
    org: Organisation,
) -> None:
    e = Events()
    derived = derive(
        e.request_id,
        history(
            e.routed(local("2026-04-23 16:00"), "burgerzaken", "normal"),  # Thursday, open to 20:00
            e.claimed(local("2026-04-23 16:30")),
            e.routed(local("2026-04-23 19:00"), "afval", "normal", from_department="burgerzaken"),
            e.claimed(local("2026-04-24 08:00"), "afval"),  # buitendienst opens 07:30
            e.answered(local("2026-04-24 09:30"), "afval"),
        ),
        org,
    )

    old = clock_of(derived.clocks, "burgerzaken", "resolution")
    assert old.close_reason == "forwarded"
    assert old.elapsed_us == 3 * 3600 * 10**6  # its time stays on its own account
    assert old.outcome == "met"
    new_first = clock_of(derived.clocks, "afval", "first_response")
    assert new_first.elapsed_us == 1800 * 10**6
    assert clock_of(derived.clocks, "afval", "resolution").elapsed_us == 2 * 3600 * 10**6
    assert derived.department == "afval"
    assert derived.state == "closed"


def test_reopen_resumes_resolution_as_a_new_round(org: Organisation) -> None:
    e = Events()
    derived = derive(
        e.request_id,
        history(
            e.routed(local("2026-04-20 09:00")),
            e.answered(local("2026-04-20 10:00")),
            e.reopened(local("2026-04-21 09:00"), "burgerzaken"),
            e.answered(local("2026-04-21 12:00")),
        ),
        org,
    )
    second = clock_of(derived.clocks, "burgerzaken", "resolution", 1)
    assert second.elapsed_us == 4 * 3600 * 10**6  # 1 h before the reopen + 3 h after
    assert second.outcome == "met"  # exactly the 4 h urgent target is still met
    assert derived.state == "closed"


def test_cancel_closes_without_outcome(org: Organisation) -> None:
    e = Events()
    derived = derive(
        e.request_id,
        history(e.routed(local("2026-04-20 09:00")), e.cancelled(local("2026-04-20 09:30"))),
        org,
    )
    assert [c.outcome for c in derived.clocks] == [None, None]
    assert {c.close_reason for c in derived.clocks} == {"cancelled"}


def test_out_of_order_and_duplicate_events_give_the_same_clocks(org: Organisation) -> None:
    e = Events()
    events = history(
        e.routed(local("2026-04-20 16:00")),
        e.clarification(local("2026-04-20 16:10")),
        e.clarified(local("2026-04-21 09:00")),
        e.claimed(local("2026-04-21 10:00")),
        e.routed(local("2026-04-21 11:00"), "belastingen", from_department="burgerzaken"),
        e.answered(local("2026-04-22 11:00"), "belastingen"),
    )
    expected = derive(e.request_id, events, org).clocks
    shuffler = random.Random(5)
    for _ in range(20):
        shuffled = [*events, *events[:2]]  # duplicates too
        shuffler.shuffle(shuffled)
        assert derive(e.request_id, shuffled, org).clocks == expected


def test_events_before_routing_are_ignored_until_the_routed_event_arrives(
    org: Organisation,
) -> None:
    e = Events()
    claimed = e.claimed(local("2026-04-20 10:00"))
    assert derive(e.request_id, history(claimed), org).clocks == []
    routed = e.routed(local("2026-04-20 09:00"))
    clocks = derive(e.request_id, history(claimed, routed), org).clocks
    assert clock_of(clocks, "burgerzaken", "first_response").elapsed_us == 3600 * 10**6


def test_thresholds_are_computed_in_business_time(org: Organisation) -> None:
    e = Events()
    (first, _) = derive(e.request_id, history(e.routed(local("2026-04-24 16:30"))), org).clocks
    calendar = org.calendar_for("burgerzaken")
    # 1 h urgent target, warning at 80 % = 48 min: 30 min on Friday, 18 min after Koningsdag.
    due = next_due(first, calendar, warned=False, breached=False)
    assert due == local("2026-04-28 08:48")
    assert (
        due_notices(first, calendar, local("2026-04-28 08:47:59"), warned=False, breached=False)
        == []
    )
    (warning,) = due_notices(first, calendar, due, warned=False, breached=False)
    assert warning.kind == "warning"
    assert warning.at == due
    # The breach is the first moment *past* the target.
    breach_due = next_due(first, calendar, warned=True, breached=False)
    assert breach_due is not None
    assert breach_due > local("2026-04-28 09:00")
    assert (breach_due - local("2026-04-28 09:00")).total_seconds() < 0.001


def test_budget_running_out_at_closing_time_breaches_at_next_opening(org: Organisation) -> None:
    e = Events()
    (first, _) = derive(e.request_id, history(e.routed(local("2026-04-20 16:00"))), org).clocks
    calendar = org.calendar_for("burgerzaken")
    assert not due_notices(first, calendar, local("2026-04-20 22:00"), warned=True, breached=False)
    (breach,) = due_notices(first, calendar, local("2026-04-21 08:31"), warned=True, breached=False)
    assert breach.kind == "breach"
    assert local("2026-04-21 08:30") < breach.at < local("2026-04-21 08:30:01")


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([3.0], 0.9, 3.0),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.0),
        (list(map(float, range(1, 11))), 0.9, 9.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == expected


def test_every_permutation_of_a_short_history_agrees(org: Organisation) -> None:
    e = Events()
    events = history(
        e.routed(local("2026-04-20 09:00")),
        e.claimed(local("2026-04-20 09:20")),
        e.answered(local("2026-04-20 11:00")),
    )
    results = {
        tuple((c.kind, c.elapsed_us, c.outcome) for c in derive(e.request_id, p, org).clocks)
        for p in itertools.permutations(events)
    }
    assert len(results) == 1
