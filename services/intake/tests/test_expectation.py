"""When the citizen can expect an answer, read from the department's clock at a fixed moment:
after a forward, during and after a clarification, late, after a reopen, and when done."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from intake.expectation import expected_answer
from intake.view import Request
from kcc_shared.events import TimelineEntry
from kcc_shared.organisation import Organisation, load_organisation

NL = ZoneInfo("Europe/Amsterdam")
# Parkeren keeps office hours (08:30-17:00, Mon-Fri); urgent: resolution within 8 werkuur.
# Belastingen too; urgent: resolution within 8 werkuur.
_ids = itertools.count()


@pytest.fixture(scope="module")
def organisation() -> Organisation:
    return load_organisation(None)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in the week of Monday 2 March 2026 (no holidays), Dutch time."""
    return datetime(2026, 3, day, hour, minute, tzinfo=NL).astimezone(UTC)


def event(kind: str, when: datetime, **details: Any) -> TimelineEntry:
    return TimelineEntry(
        event_id=f"e{next(_ids):04d}",
        type=f"request.{kind}",
        occurred_at=when,
        actor={"kind": "system", "id": "test"},
        details=details,
    )


def routed(when: datetime, department: str = "parkeren", count: int = 0) -> TimelineEntry:
    return event("routed", when, department=department, handoff_count=count, priority="urgent")


def request(status: str, *timeline: TimelineEntry) -> Request:
    filed = at(2, 9, 55)
    return Request(
        id="r1",
        agent_id="agent-anna",
        team="kcc-noord",
        question="Mag ik met mijn bewonersvergunning in de wijk ernaast parkeren?",
        category=None,
        priority="urgent",
        channel="phone",
        citizen_ref=None,
        tags=[],
        status=status,
        department=None,
        answer=None,
        created_at=filed,
        updated_at=filed,
        reference="KV-2026-000001",
        timeline=[event("submitted", filed), *timeline],
    )


def test_before_routing_it_is_not_known_yet(organisation: Organisation) -> None:
    expectation = expected_answer(request("submitted"), organisation, at(2, 10))
    assert expectation.state == "pending"
    assert expectation.text.startswith("Nog niet bekend")
    assert expectation.due is None


def test_the_departments_clock_runs_in_its_business_hours(organisation: Organisation) -> None:
    # Routed Monday 10:00: 7 werkuur left on Monday, the 8th on Tuesday from 08:30.
    expectation = expected_answer(request("routed", routed(at(2, 10))), organisation, at(2, 11))
    assert expectation.state == "on_time"
    assert expectation.text == "Uiterlijk morgen vóór 09:30"
    assert expectation.due == at(3, 9, 30)
    assert expectation.business_seconds_left == 7 * 3600
    # Read out a day earlier, it names the day.
    earlier = expected_answer(request("routed", routed(at(2, 10))), organisation, at(1, 12))
    assert earlier.text == "Uiterlijk dinsdag 3 maart vóór 09:30"


def test_the_clock_stands_still_while_the_kcc_is_asked_and_runs_on_after(
    organisation: Organisation,
) -> None:
    history = [
        routed(at(2, 10)),
        event("clarification_requested", at(2, 12), department="parkeren"),
    ]
    waiting = expected_answer(request("awaiting_clarification", *history), organisation, at(4, 9))
    assert waiting.state == "paused"
    assert waiting.due is None
    assert waiting.text == (
        "De klok staat stil tot de KCC-medewerker de vraag van de afdeling beantwoordt; "
        "daarna heeft de afdeling nog 6 werkuur."
    )
    # Answered on Tuesday 09:00: 6 werkuur from then.
    history.append(event("clarified", at(3, 9)))
    running = expected_answer(request("routed", *history), organisation, at(3, 9, 30))
    assert running.state == "on_time"
    assert running.text == "Uiterlijk vandaag vóór 15:00"


def test_a_forward_starts_the_next_departments_clock(organisation: Organisation) -> None:
    history = [routed(at(2, 10)), routed(at(2, 12), department="belastingen", count=1)]
    expectation = expected_answer(request("routed", *history), organisation, at(2, 13))
    # Belastingen's own 8 werkuur from Monday 12:00: 5 on Monday, 3 on Tuesday.
    assert expectation.text == "Uiterlijk morgen vóór 11:30"


def test_past_the_norm_it_says_late_and_by_how_much(organisation: Organisation) -> None:
    expectation = expected_answer(
        request("claimed", routed(at(2, 10))), organisation, at(3, 10, 30)
    )
    assert expectation.state == "late"
    assert (
        expectation.text == "Te laat: beloofd was uiterlijk vandaag vóór 09:30 (1 werkuur te laat)"
    )
    assert expectation.business_seconds_left == -3600


def test_a_reopen_runs_the_answering_departments_clock_again(organisation: Organisation) -> None:
    history = [
        routed(at(2, 10)),
        event("answered", at(2, 14), department="parkeren"),
        event("reopened", at(3, 9), department="parkeren"),
    ]
    expectation = expected_answer(request("routed", *history), organisation, at(3, 9))
    # 4 werkuur were spent before the answer; the other 4 run from the reopen.
    assert expectation.state == "on_time"
    assert expectation.text == "Uiterlijk vandaag vóór 13:00"


def test_done_questions_say_when(organisation: Organisation) -> None:
    answered = [routed(at(2, 10)), event("answered", at(2, 14), department="parkeren")]
    assert (
        expected_answer(request("answered", *answered), organisation, at(2, 15)).text
        == "Beantwoord vandaag 14:00"
    )
    assert (
        expected_answer(request("closed", *answered), organisation, at(3, 15)).text
        == "Beantwoord gisteren 14:00"
    )
    cancelled = [routed(at(2, 10)), event("cancelled", at(2, 11))]
    expectation = expected_answer(request("cancelled", *cancelled), organisation, at(2, 12))
    assert expectation.state == "cancelled"
    assert expectation.text == "Ingetrokken vandaag 11:00"


def test_a_department_without_norms_says_so(organisation: Organisation) -> None:
    history = [routed(at(2, 10), department="niet-in-het-bestand")]
    expectation = expected_answer(request("routed", *history), organisation, at(2, 11))
    assert expectation.state == "no_norm"
    assert "geen termijn" in expectation.text
