"""When the citizen can expect an answer: the first thing a citizen asks the KCC-medewerker.

Read from the same clocks the SLA monitor times (kcc_shared.clocks.derive over the request's
stored events), so it follows a forward (the next department's clock), a clarification (the
clock stands still until the KCC answers) and a reopen (the answering department's clock runs
again), and says it in the department's business time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from kcc_shared.clocks import CLOCK_EVENT_TYPES, US, Clock, HistoryEvent, derive, threshold_instant
from kcc_shared.dutch_time import LOCAL, business_left, deadline, moment
from kcc_shared.events import TimelineEntry
from kcc_shared.organisation import Organisation

from intake.view import Request

__all__ = ["Expectation", "expected_answer"]

State = Literal["pending", "on_time", "late", "paused", "no_norm", "answered", "cancelled"]


@dataclass(frozen=True)
class Expectation:
    """``due``: the moment the answer is due (only while the clock runs); ``text``: the
    sentence the KCC-medewerker can read out."""

    state: State
    text: str
    due: datetime | None = None
    business_seconds_left: int | None = None


def expected_answer(request: Request, organisation: Organisation, now: datetime) -> Expectation:
    """What to tell the citizen about ``request`` at ``now``."""
    timeline = request.timeline
    if request.status in ("answered", "closed"):
        at = _last(timeline, "request.answered") or request.updated_at
        return Expectation("answered", f"Beantwoord {moment(at, LOCAL, now)}")
    if request.status == "cancelled":
        at = _last(timeline, "request.cancelled") or request.updated_at
        return Expectation("cancelled", f"Ingetrokken {moment(at, LOCAL, now)}")
    derived = derive(request.id, _history(request), organisation)
    if derived.department is None:
        return Expectation(
            "pending",
            "Nog niet bekend: de vraag gaat eerst naar de juiste afdeling (dat duurt meestal "
            "enkele seconden).",
        )
    clock = _open_resolution(derived.clocks, derived.department)
    if clock is None:
        return Expectation("no_norm", "Voor deze afdeling is geen termijn afgesproken.")
    calendar = organisation.calendar_for(clock.department)
    left_us = clock.target_us - clock.elapsed_at(now, calendar)
    left_s = int(left_us // US)
    if clock.running_since is None:
        after = (
            f"daarna heeft de afdeling {business_left(left_s)}"
            if left_s > 0
            else f"de termijn is al verstreken ({business_left(left_s)})"
        )
        return Expectation(
            "paused",
            "De klok staat stil tot de KCC-medewerker de vraag van de afdeling beantwoordt; "
            f"{after}.",
            business_seconds_left=left_s,
        )
    due = threshold_instant(clock, clock.target_us, calendar)
    when = deadline(due, LOCAL, now)
    if left_us < 0:
        return Expectation(
            "late",
            f"Te laat: beloofd was {when} ({business_left(left_s)})",
            due,
            left_s,
        )
    return Expectation("on_time", when[0].upper() + when[1:], due, left_s)


def _history(request: Request) -> list[HistoryEvent]:
    """The stored events as the clock model reads them. A routed event stored before the
    timeline kept its priority runs on the priority the question was filed with."""
    events = []
    for entry in request.timeline:
        if entry.type not in CLOCK_EVENT_TYPES:
            continue
        data: dict[str, Any] = dict(entry.details)
        if entry.type == "request.routed":
            data.setdefault("priority", request.priority)
        events.append(HistoryEvent(entry.event_id, entry.type, entry.occurred_at, data))
    return events


def _open_resolution(clocks: Iterable[Clock], department: str) -> Clock | None:
    """The current department's resolution clock, if it is still open (running or paused)."""
    for clock in reversed(list(clocks)):
        if clock.kind == "resolution" and clock.department == department:
            return clock if clock.closed_at is None else None
    return None


def _last(timeline: Iterable[TimelineEntry], kind: str) -> datetime | None:
    moments = [e.occurred_at for e in timeline if e.type == kind]
    return max(moments) if moments else None


def as_json(expectation: Expectation) -> Mapping[str, Any]:
    return {
        "state": expectation.state,
        "text": expectation.text,
        "due": expectation.due,
        "business_seconds_left": expectation.business_seconds_left,
    }
