"""The pure domain: the staff state machine, event application in any order, SLA state."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from backoffice.errors import InvalidTransition
from backoffice.inbox import (
    ACTIONS,
    STATES,
    TRANSITIONS,
    Item,
    apply_event,
    next_state,
    sla_of,
)
from kcc_shared.events import Actor, new_event
from kcc_shared.organisation import load_organisation

ORG = load_organisation()
CAL = ORG.calendar_for("burgerzaken")
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # Tuesday 10:00 Amsterdam
RID = str(uuid.uuid4())

# Every (state, action) pair: the next state, "noop", or the 409 detail's telling words.
TABLE: list[tuple[str, str, str, str]] = [
    # state, holder, action, expected
    ("waiting", "", "claim", "claimed"),
    ("waiting", "", "release", "claim the request first"),
    ("waiting", "", "answer", "claim the request first"),
    ("waiting", "", "clarification_request", "claim the request first"),
    ("waiting", "", "forward", "forwarded"),
    ("claimed", "me", "claim", "noop"),
    ("claimed", "me", "release", "waiting"),
    ("claimed", "me", "answer", "answered"),
    ("claimed", "me", "clarification_request", "awaiting_clarification"),
    ("claimed", "me", "forward", "forwarded"),
    ("claimed", "other", "claim", "other is working on this request"),
    ("claimed", "other", "release", "other is working on this request"),
    ("claimed", "other", "answer", "other is working on this request"),
    ("claimed", "other", "clarification_request", "other is working on this request"),
    ("claimed", "other", "forward", "other is working on this request"),
    ("awaiting_clarification", "me", "claim", "has not answered your clarification"),
    ("awaiting_clarification", "me", "release", "has not answered your clarification"),
    ("awaiting_clarification", "me", "answer", "answered"),
    ("awaiting_clarification", "me", "clarification_request", "has not answered your"),
    ("awaiting_clarification", "me", "forward", "has not answered your clarification"),
    ("awaiting_clarification", "other", "answer", "other is working on this request"),
    *[("answered", "me", a, "already been answered") for a in ACTIONS],
    *[("forwarded", "", a, "forwarded to another department") for a in ACTIONS],
    *[("cancelled", "", a, "the agent cancelled this request") for a in ACTIONS],
    *[("closed", "", a, "is closed") for a in ACTIONS],
    *[("pending", "", a, "not been routed") for a in ACTIONS],
]


@pytest.mark.parametrize(("state", "holder", "action", "expected"), TABLE)
def test_state_machine(state: str, holder: str, action: str, expected: str) -> None:
    item = Item(request_id=RID, state=state, department="burgerzaken", claimed_by=holder or None)
    if expected in STATES:
        assert next_state(item, action, "me") == expected
    elif expected == "noop":
        assert next_state(item, action, "me") is None
    else:
        with pytest.raises(InvalidTransition) as caught:
            next_state(item, action, "me")
        assert expected in caught.value.detail


def test_the_table_covers_every_allowed_transition() -> None:
    allowed = {(s, a) for s, _, a, e in TABLE if e in STATES}
    assert allowed == set(TRANSITIONS)


def _event(type_: str, request_id: str, at: datetime = NOW, **data: Any) -> Any:
    if type_ == "request.routed":
        data = {
            "department": "burgerzaken",
            "from_department": None,
            "rule_id": None,
            "rules_version": "v",
            "reason": "category",
            "priority": "normal",
            "handoff_count": 0,
            "first_response_due": NOW + timedelta(hours=4),
            "resolution_due": NOW + timedelta(days=2),
        } | data
    return new_event(
        type_, request_id=request_id, actor=Actor("agent", "a"), occurred_at=at, data=data
    )


def _fold(events: list[Any]) -> Item:
    item = None
    for event in events:
        item = apply_event(item, event, lambda d: CAL)
    assert item is not None
    return item


def test_cancel_before_routed_is_remembered() -> None:
    rid = str(uuid.uuid4())
    item = _fold([_event("request.cancelled", rid, reason=None), _event("request.routed", rid)])
    assert item.state == "cancelled"
    assert item.department == "burgerzaken"  # it is shown where it would have been, as cancelled


def test_an_older_routing_arriving_late_does_not_move_the_item_back() -> None:
    rid = str(uuid.uuid4())
    first = _event("request.routed", rid)
    forward = _event(
        "request.routed",
        rid,
        department="belastingen",
        from_department="burgerzaken",
        reason="forward",
        handoff_count=1,
    )
    item = _fold([forward, first])
    assert (item.department, item.handoff_count, item.state) == ("belastingen", 1, "waiting")


def test_submitted_after_routed_fills_in_the_question_but_keeps_the_routed_priority() -> None:
    rid = str(uuid.uuid4())
    submitted = _event(
        "request.submitted",
        rid,
        question="Paspoort kwijt",
        category=None,
        priority="low",
        channel="phone",
        agent_id="a",
        team=None,
        citizen_ref=None,
        tags=[],
    )
    item = _fold([_event("request.routed", rid, priority="urgent"), submitted])
    assert (item.question, item.priority, item.state) == ("Paspoort kwijt", "urgent", "waiting")


def test_clarified_resumes_the_clock_and_counts_the_pause() -> None:
    item = Item(
        request_id=RID,
        state="awaiting_clarification",
        department="burgerzaken",
        claimed_by="me",
        paused_since=NOW,
    )
    resumed = apply_event(
        item,
        _event("request.clarified", RID, NOW + timedelta(hours=1), text="ja"),
        lambda d: CAL,
    )
    assert resumed.state == "claimed"
    assert resumed.paused_since is None
    assert resumed.paused_seconds == pytest.approx(3600)


def test_rated_closes_an_answered_item_but_not_a_reopened_one() -> None:
    answered = Item(request_id=RID, state="answered", department="burgerzaken")
    rated = _event("request.rated", RID, score=2, thanks=False, comment=None)
    assert apply_event(answered, rated, lambda d: CAL).state == "closed"
    reopened = apply_event(
        answered, _event("request.reopened", RID, reason="klopt niet"), lambda d: CAL
    )
    assert reopened.state == "waiting"
    assert apply_event(reopened, rated, lambda d: CAL).state == "waiting"


def _open(state: str = "waiting", **kw: Any) -> Item:
    return Item(
        request_id=RID,
        state=state,
        department="burgerzaken",
        first_response_due=NOW + timedelta(hours=4),
        resolution_due=NOW + timedelta(hours=24),
        **kw,
    )


@pytest.mark.parametrize(
    ("hours_later", "expected"),
    [(0, "on_time"), (3, "on_time"), (3.5, "warning"), (4, "overdue"), (30, "overdue")],
)
def test_sla_state_of_a_waiting_item(hours_later: float, expected: str) -> None:
    sla = sla_of(
        _open(),
        NOW + timedelta(hours=hours_later),
        calendar=CAL,
        warning_ratio=0.8,
        targets=(4 * 3600, 24 * 3600),
    )
    assert sla is not None
    assert sla.state == expected


def test_a_paused_item_keeps_its_state_and_its_deadline_moves() -> None:
    paused = _open("awaiting_clarification", paused_since=NOW + timedelta(hours=1))
    sla = sla_of(
        paused,
        NOW + timedelta(days=30),
        calendar=CAL,
        warning_ratio=0.8,
        targets=(4 * 3600, 24 * 3600),
    )
    assert sla is not None
    assert (sla.state, sla.clock) == ("on_time", "resolution")
    resumed = replace(_open("claimed"), paused_seconds=3600.0)
    sla = sla_of(resumed, NOW, calendar=CAL, warning_ratio=0.8, targets=(4 * 3600, 24 * 3600))
    assert sla is not None
    assert sla.due == CAL.add_business_seconds(NOW + timedelta(hours=24), 3600)


def test_no_sla_for_items_that_are_not_open() -> None:
    assert sla_of(_open("answered"), NOW, calendar=CAL, warning_ratio=0.8, targets=(1, 1)) is None
