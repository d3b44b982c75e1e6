"""The department inbox: item states, staff transitions, event application and SLA state."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from kcc_shared.calendar import BusinessCalendar
from kcc_shared.events import OPEN_STATES, Event

from backoffice.errors import InvalidTransition

# `pending`: known from an agent event (submitted, cancelled) but not routed to a department
# yet; nobody's inbox shows it. `forwarded`: handed to another department, waiting for the
# router; it leaves the old inbox at once and lands in the new one with the routed event.
STATES: Final = (
    "pending",
    "waiting",
    "claimed",
    "awaiting_clarification",
    "answered",
    "forwarded",
    "cancelled",
    "closed",
)
LISTABLE_STATES: Final = tuple(s for s in STATES if s != "pending")
HELD_STATES: Final = ("claimed", "awaiting_clarification")
ACTIONS: Final = ("claim", "release", "answer", "clarification_request", "forward")
SLA_STATES: Final = ("on_time", "warning", "overdue")

# The whole staff state machine: (state, action) -> next state. Anything else is a 409.
TRANSITIONS: Final[Mapping[tuple[str, str], str]] = {
    ("waiting", "claim"): "claimed",
    ("waiting", "forward"): "forwarded",
    ("claimed", "release"): "waiting",
    ("claimed", "answer"): "answered",
    ("claimed", "clarification_request"): "awaiting_clarification",
    ("claimed", "forward"): "forwarded",
    # The holder may still answer while the agent has not replied (found it elsewhere); asking
    # again, releasing or forwarding would leave the agent's reply with nobody to read it.
    ("awaiting_clarification", "answer"): "answered",
}

# Why an action is refused, in words a member of staff understands.
_REFUSALS: Final[Mapping[str, str]] = {
    "answered": "this request has already been answered",
    "forwarded": "this request has been forwarded to another department",
    "cancelled": "the agent cancelled this request",
    "closed": "this request is closed (answered and rated)",
    "pending": "this request has not been routed to a department yet",
}
_ACTION_WORDS: Final[Mapping[str, str]] = {
    "claim": "claim",
    "release": "release",
    "answer": "answer",
    "clarification_request": "ask for clarification on",
    "forward": "forward",
}


@dataclass(frozen=True)
class Item:
    """One request as its department's inbox holds it."""

    request_id: str
    state: str = "pending"
    department: str | None = None
    question: str | None = None
    category: str | None = None
    channel: str | None = None
    agent_id: str | None = None
    team: str | None = None
    priority: str = "normal"
    handoff_count: int = -1  # -1: never routed
    from_department: str | None = None
    routed_at: datetime | None = None
    first_response_due: datetime | None = None
    resolution_due: datetime | None = None
    claimed_by: str | None = None
    claimed_at: datetime | None = None
    paused_since: datetime | None = None
    paused_seconds: float = 0.0
    clarification_question: str | None = None
    answer: str | None = None
    answered_by: str | None = None
    answered_at: datetime | None = None
    rating: int | None = None
    updated_at: datetime | None = None
    # The answer is offered for reuse at the desk (general, never about one citizen).
    reusable: bool = False
    # Staff said "Niet samenvoegen": never suggested in a group of duplicates again.
    kept_apart: bool = False

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


def next_state(item: Item, action: str, staff_id: str) -> str | None:
    """The state after `action` by `staff_id`; None when it changes nothing (claiming an item
    you already hold: a double click). Raises InvalidTransition with a clear detail."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    word = _ACTION_WORDS[action]
    refusal = _REFUSALS.get(item.state)
    if refusal is not None:
        raise InvalidTransition(
            f"You cannot {word} it: {refusal}.", state=item.state, action=action
        )
    if item.state in HELD_STATES and item.claimed_by != staff_id:
        raise InvalidTransition(
            f"You cannot {word} it: {item.claimed_by} is working on this request.",
            state=item.state,
            action=action,
        )
    if action == "claim" and item.state == "claimed":
        return None
    target = TRANSITIONS.get((item.state, action))
    if target is not None:
        return target
    if item.state == "waiting":
        detail = f"You cannot {word} it: claim the request first."
    elif item.state == "awaiting_clarification":
        detail = (
            f"You cannot {word} it while the agent has not answered your clarification "
            "question; you can still answer the request."
        )
    else:  # claimed by this person, claim handled above
        detail = f"You cannot {word} it in state {item.state}."
    raise InvalidTransition(detail, state=item.state, action=action)


# -- events from the wire -----------------------------------------------------------------


CalendarFor = Callable[[str], BusinessCalendar | None]


def apply_event(item: Item | None, event: Event, calendar_for: CalendarFor) -> Item:
    """The item after an event from the wire; tolerant of duplicates and any order.

    Routed events apply only when their handoff count is higher than the one already seen,
    so an old routing arriving late never moves an item back. A cancel that arrives before
    the routing is remembered: the item appears in the inbox as cancelled, never as work.
    """
    current = item or Item(request_id=event.request_id)
    data: Mapping[str, Any] = event.data
    at = event.occurred_at
    if event.type == "request.submitted":
        return replace(
            current,
            question=data["question"],
            category=data.get("category"),
            channel=data["channel"],
            agent_id=data["agent_id"],
            team=data.get("team"),
            # The routed event's (effective) priority wins; the submitted one only fills in.
            priority=data["priority"] if current.handoff_count < 0 else current.priority,
        )
    if event.type == "request.routed":
        if data["handoff_count"] <= current.handoff_count:
            return current  # an older (or the same) routing: already superseded
        routed = replace(
            current,
            department=data["department"],
            from_department=data.get("from_department"),
            priority=data["priority"],
            handoff_count=data["handoff_count"],
            routed_at=at,
            first_response_due=data["first_response_due"],
            resolution_due=data["resolution_due"],
            claimed_by=None,
            claimed_at=None,
            paused_since=None,
            paused_seconds=0.0,
            updated_at=at,
        )
        if current.state in ("cancelled", "closed", "answered"):
            return routed  # where it is, for the record; not work any more
        return replace(routed, state="waiting")
    if event.type == "request.cancelled":
        if current.state in ("answered", "closed"):
            return current
        return replace(current, state="cancelled", updated_at=at)
    if event.type == "request.clarified":
        if current.state != "awaiting_clarification":
            return current
        return replace(
            current,
            state="claimed",
            paused_since=None,
            paused_seconds=current.paused_seconds + _paused(current, at, calendar_for),
            updated_at=at,
        )
    if event.type == "request.reopened":
        if current.state not in ("answered", "closed"):
            return current
        return replace(current, state="waiting", claimed_by=None, claimed_at=None, updated_at=at)
    if event.type == "request.rated":
        if current.state != "answered":
            return replace(current, rating=data["score"])
        return replace(current, state="closed", rating=data["score"], updated_at=at)
    return current


def _paused(item: Item, until: datetime, calendar_for: CalendarFor) -> float:
    if item.paused_since is None or item.department is None or until <= item.paused_since:
        return 0.0
    calendar = calendar_for(item.department)
    if calendar is None:
        return 0.0
    return calendar.business_seconds_between(item.paused_since, until)


# -- SLA state ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sla:
    """Where an open item stands against its department's norm."""

    state: str  # on_time / warning / overdue
    due: datetime  # the deadline that matters now (shifted by clarification pauses)
    clock: str  # first_response (not claimed yet) or resolution


def sla_of(
    item: Item,
    now: datetime,
    *,
    calendar: BusinessCalendar,
    warning_ratio: float,
    targets: tuple[int, int],
) -> Sla | None:
    """The SLA state of an open item, or None when it is not open or not routed.

    `targets` are the department's (first_response, resolution) norms in business seconds.
    Waiting for the agent's clarification pauses the clock: the time paused is added to the
    deadline, and while paused the state is frozen at the moment the pause began.
    """
    if not item.is_open or item.first_response_due is None or item.resolution_due is None:
        return None
    moment = item.paused_since or now
    clocks = [("resolution", item.resolution_due, targets[1])]
    if item.state == "waiting":
        clocks.insert(0, ("first_response", item.first_response_due, targets[0]))
    worst: Sla | None = None
    for clock, due, target in clocks:
        effective = (
            calendar.add_business_seconds(due, item.paused_seconds)
            if item.paused_seconds > 0
            else due
        )
        if moment >= effective:
            state = "overdue"
        else:
            remaining = calendar.business_seconds_between(moment, effective)
            state = "warning" if remaining <= (1 - warning_ratio) * target else "on_time"
        sla = Sla(state, effective, clock)
        if worst is None or SLA_STATES.index(state) > SLA_STATES.index(worst.state):
            worst = sla
    return worst


def deadline_of(item: Item) -> datetime | None:
    """The next deadline (earliest-deadline-first ordering), ignoring pauses."""
    if item.state == "waiting":
        return item.first_response_due
    return item.resolution_due
