"""A request as the agent files and sees it; its view is folded from its events, duplicate-
and order-tolerant."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, Protocol

from kcc_shared.events import TimelineEntry

OPEN: Final = ("submitted", "routed", "claimed", "awaiting_clarification")

# Tie-break for events with the same occurred_at: the order they happen in a request's life.
RANK: Final[Mapping[str, int]] = {
    "request.submitted": 0,
    "request.routed": 1,
    "request.claimed": 2,
    "request.reroute_requested": 3,
    "request.clarification_requested": 4,
    "request.clarified": 5,
    "request.released": 6,
    "request.answered": 7,
    "request.rated": 8,
    "request.reopened": 9,
    "request.cancelled": 10,
    "request.sla_warning": 11,
    "request.sla_breached": 12,
}


@dataclass(frozen=True)
class NewRequest:
    """A validated, redacted question as the agent filed it."""

    question: str
    category: str | None
    priority: str
    channel: str
    citizen_ref: str | None
    tags: Sequence[str] = ()

    def fingerprint(self) -> str:
        """What tells a retry (same body) from a reused Idempotency-Key (another body)."""
        canonical = json.dumps({**self.__dict__, "tags": list(self.tags)}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Rating:
    score: int
    thanks: bool
    comment: str | None
    reopen: bool


@dataclass(frozen=True)
class Request:
    id: str
    agent_id: str
    team: str | None
    question: str
    category: str | None
    priority: str
    channel: str
    citizen_ref: str | None
    tags: list[str]
    status: str
    department: str | None
    answer: str | None
    created_at: datetime
    updated_at: datetime
    # None only for a request whose filing is still being written (never shown).
    reference: str | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)


@dataclass(frozen=True)
class Submission:
    request: Request
    replayed: bool


@dataclass(frozen=True)
class Page:
    items: list[Request]
    total: int
    page: int
    page_size: int


class Change(Protocol):
    """What the fold reads of a timeline entry (TimelineEntry satisfies it)."""

    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class View:
    """What the agent sees: status, current department, the answer.

    `handoff_count` is that of the routing in force (-1: not routed yet); `held` says a staff
    member claimed it (so an answered clarification goes back to them, not to the queue).
    """

    status: str = "submitted"
    department: str | None = None
    handoff_count: int = -1
    answer: str | None = None
    held: bool = False


def order_key(change: Change) -> tuple[datetime, int, str]:
    """A total order on a request's events: when, then lifecycle rank, then id."""
    return (change.occurred_at, RANK.get(change.type, 99), change.event_id)


def fold(changes: Iterable[Change]) -> View:
    """The view from a set of events: any order and any duplicates give the same result."""
    view = View()
    seen: set[str] = set()
    for change in sorted(changes, key=order_key):
        if change.event_id in seen:
            continue
        seen.add(change.event_id)
        view = apply(view, change)
    return view


def apply(view: View, change: Change) -> View:
    """One event's effect on the view. The rules (docs/intake.md, "The agent's view"):

    - routed: only a higher handoff count than the routing in force counts (a late, older
      routing never wins); it moves an open request back to `routed` at the new department.
      On an answered, closed or cancelled request it changes nothing.
    - claimed / released / clarification_requested: only from the current department (a late
      event from a department the request was forwarded away from is history, not state) and
      only forward: a claim never undoes an answer or a pending clarification.
    - clarified: ends `awaiting_clarification` (back to `claimed`, or `routed` if unclaimed).
    - answered: an open request becomes `answered` (from any department: an answer is never
      thrown away); on a cancelled request the text is kept but the status stays.
    - rated: `answered` becomes `closed`. reopened: `answered`/`closed` goes back to `routed`
      at the department named in the event (the one that answered).
    - cancelled: an open request becomes `cancelled`, which is terminal; a cancel that lost
      the race with an answer (it happened after it) leaves the request answered.
    - submitted, reroute_requested (the following `routed` moves it), SLA events: history only.
    """
    d = change.details
    kind = change.type
    status = view.status
    if kind == "request.routed":
        count = int(d.get("handoff_count", 0))
        if count <= view.handoff_count:
            return view
        if status not in OPEN:
            return replace(view, handoff_count=count)
        return replace(
            view, status="routed", department=d.get("department"), handoff_count=count, held=False
        )
    if kind in ("request.claimed", "request.released", "request.clarification_requested"):
        department = d.get("department")
        if view.department is not None and department != view.department:
            return view
        if kind == "request.claimed" and status in ("submitted", "routed"):
            return replace(view, status="claimed", department=department, held=True)
        if kind == "request.released" and status == "claimed":
            return replace(view, status="routed", held=False)
        if kind == "request.clarification_requested" and status in (
            "submitted",
            "routed",
            "claimed",
        ):
            return replace(view, status="awaiting_clarification", department=department)
        return view
    if kind == "request.clarified":
        if status == "awaiting_clarification":
            return replace(view, status="claimed" if view.held else "routed")
        return view
    if kind == "request.answered":
        if status in OPEN:
            return replace(
                view,
                status="answered",
                department=d.get("department", view.department),
                answer=d.get("answer"),
                held=False,
            )
        if view.answer is None:
            return replace(view, answer=d.get("answer"))
        return view
    if kind == "request.rated":
        return replace(view, status="closed") if status == "answered" else view
    if kind == "request.reopened":
        if status in ("answered", "closed"):
            return replace(view, status="routed", department=d.get("department") or view.department)
        return view
    if kind == "request.cancelled":
        return replace(view, status="cancelled", held=False) if status in OPEN else view
    return view
