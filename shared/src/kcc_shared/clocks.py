"""The clock model: per-department SLA clocks derived from a request's event history.

Shared because the SLA monitor times every handoff with it and the desk tells the KCC-medewerker
when the citizen can expect an answer from the same clocks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from kcc_shared.calendar import BusinessCalendar
from kcc_shared.organisation import Organisation

__all__ = [
    "CLOCK_EVENT_TYPES",
    "Clock",
    "Derived",
    "Handoff",
    "HistoryEvent",
    "Notice",
    "business_origin_us",
    "derive",
    "due_notices",
    "next_due",
]

US: Final = 1_000_000
ClockKind = Literal["first_response", "resolution"]
State = Literal["waiting", "claimed", "awaiting_clarification", "closed", "unknown"]

# Events that change clocks; everything else (ratings, reroute requests, our own warnings) is not
# part of a clock's history.
CLOCK_EVENT_TYPES: Final = frozenset(
    {
        "request.routed",
        "request.claimed",
        "request.released",
        "request.clarification_requested",
        "request.clarified",
        "request.answered",
        "request.reopened",
        "request.cancelled",
    }
)
# Tie-break for events with the same occurred_at: the order in which they can happen.
_TYPE_ORDER: Final = {
    "request.routed": 0,
    "request.claimed": 1,
    "request.released": 2,
    "request.clarification_requested": 3,
    "request.clarified": 4,
    "request.answered": 5,
    "request.reopened": 6,
    "request.cancelled": 7,
}
# Business time is counted from here to give running clocks a comparable "origin" (see
# business_origin_us); anything before it counts as zero.
_BUSINESS_EPOCH: Final = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class HistoryEvent:
    """A stored event as the clock model needs it (no text, no personal data)."""

    id: str
    type: str
    occurred_at: datetime
    data: Mapping[str, Any]


@dataclass
class Clock:
    """One clock of one department for one request; ``round`` > 0 after a reopen."""

    request_id: str
    segment: str  # the id of the routed event that started this department's clocks
    kind: ClockKind
    round: int
    department: str
    priority: str
    target_s: int
    warning_us: int
    started_at: datetime
    elapsed_us: int = 0  # business time accumulated, excluding the current running interval
    running_since: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    # When the warning and breach thresholds were passed, if they were passed in an interval
    # that is already accounted (see pause): known exactly, whatever order or batches the
    # events came in, so an announcement made later still carries the true moment.
    warning_passed_at: datetime | None = None
    breach_passed_at: datetime | None = None
    # Set on a clock closed by a forward to another department: where the question went next
    # (the resolution clock's elapsed time is then how long it sat here: the handoff time).
    forwarded_to: str | None = None

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.request_id, self.segment, self.kind, self.round)

    @property
    def status(self) -> Literal["running", "paused", "closed"]:
        if self.closed_at is not None:
            return "closed"
        return "paused" if self.running_since is None else "running"

    @property
    def target_us(self) -> int:
        return self.target_s * US

    @property
    def outcome(self) -> Literal["met", "breached"] | None:
        """met/breached once closed; a cancelled clock within its target has no outcome."""
        if self.closed_at is None:
            return None
        if self.elapsed_us > self.target_us:
            return "breached"
        return None if self.close_reason == "cancelled" else "met"

    def elapsed_at(self, now: datetime, calendar: BusinessCalendar) -> int:
        """Business microseconds on this clock at ``now``."""
        if self.running_since is None:
            return self.elapsed_us
        return self.elapsed_us + _between_us(calendar, self.running_since, now)

    def pause(self, at: datetime, calendar: BusinessCalendar) -> None:
        start = self.running_since
        if start is None:
            return
        before = self.elapsed_us
        self.elapsed_us += _between_us(calendar, start, at)
        self.running_since = None
        # The same instants threshold_instant gives while the clock still runs.
        if self.warning_passed_at is None and before < self.warning_us <= self.elapsed_us:
            self.warning_passed_at = calendar.add_business_seconds(
                start, (self.warning_us - before) / US
            )
        breach_us = self.target_us + 1
        if self.breach_passed_at is None and before < breach_us <= self.elapsed_us:
            self.breach_passed_at = calendar.add_business_seconds(start, (breach_us - before) / US)

    def close(self, at: datetime, reason: str, calendar: BusinessCalendar) -> None:
        if self.closed_at is None:
            self.pause(at, calendar)
            self.closed_at = at
            self.close_reason = reason


@dataclass(frozen=True)
class Handoff:
    event_id: str
    from_department: str
    to_department: str
    occurred_at: datetime


@dataclass
class Derived:
    """Everything the history says about one request."""

    clocks: list[Clock] = field(default_factory=list)
    department: str | None = None
    priority: str | None = None
    state: State = "unknown"
    # Since when the question is at its current department, and who has it since when (the
    # staff member who claimed it, or who answered it before when it was reopened): the SLA
    # overview's drill-down says this beside each late question.
    arrived_at: datetime | None = None
    claimed_by: str | None = None
    claimed_at: datetime | None = None


@dataclass(frozen=True)
class Notice:
    """A threshold a clock has passed: emit a warning or a breach (once)."""

    kind: Literal["warning", "breach"]
    at: datetime  # the moment the threshold was passed
    elapsed_us: int


def _between_us(calendar: BusinessCalendar, start: datetime, end: datetime) -> int:
    return round(calendar.business_seconds_between(start, end) * US)


def _order(event: HistoryEvent) -> tuple[datetime, int, str]:
    return (event.occurred_at, _TYPE_ORDER.get(event.type, 99), event.id)


def derive(request_id: str, history: Iterable[HistoryEvent], org: Organisation) -> Derived:
    """Replay a request's events in occurred_at order into its clocks.

    Order-tolerant by construction: the result depends only on the set of events, so a late or
    redelivered event gives the same clocks as an in-order stream. Departments the organisation
    does not know have no targets and get no clocks (their state is still tracked).
    """
    result = Derived()
    current: dict[str, Clock] = {}  # kind -> the open clock of the current department
    last_resolution: dict[str, Clock] = {}  # department -> its latest resolution clock
    claimed = False
    answered_by: str | None = None
    unique = {event.id: event for event in history}  # a duplicate delivery is one event
    for event in sorted(unique.values(), key=_order):
        at, data = event.occurred_at, event.data
        if event.type == "request.routed":
            department = str(data["department"])
            for clock in current.values():
                clock.close(at, "forwarded", org.calendar_for(clock.department))
                if clock.department != department:
                    clock.forwarded_to = department
            current = {}
            priority = str(data["priority"])
            result.department, result.priority, result.state = department, priority, "waiting"
            result.arrived_at, result.claimed_by, result.claimed_at = at, None, None
            claimed = False
            if department in org.departments and priority in org.departments[department].sla:
                dept = org.departments[department]
                target = dept.sla[priority]  # type: ignore[index]
                for kind, seconds in (
                    ("first_response", target.first_response_s),
                    ("resolution", target.resolution_s),
                ):
                    clock = Clock(
                        request_id=request_id,
                        segment=event.id,
                        kind=kind,  # type: ignore[arg-type]
                        round=0,
                        department=department,
                        priority=priority,
                        target_s=seconds,
                        warning_us=round(seconds * dept.warning_ratio * US),
                        started_at=at,
                        running_since=at,
                    )
                    current[kind] = clock
                    result.clocks.append(clock)
                last_resolution[department] = current["resolution"]
        elif result.department is None:
            continue  # not routed yet (or the routed event is still on its way)
        elif event.type == "request.claimed":
            _close(current, "first_response", at, "claimed", org)
            claimed = True
            result.claimed_by, result.claimed_at = _staff(data), at
            if result.state == "waiting":
                result.state = "claimed"
        elif event.type == "request.released":
            claimed = False
            result.claimed_by, result.claimed_at = None, None
            if result.state == "claimed":
                result.state = "waiting"
        elif event.type == "request.clarification_requested":
            if result.state != "closed":
                for clock in current.values():
                    clock.pause(at, org.calendar_for(clock.department))
                result.state = "awaiting_clarification"
        elif event.type == "request.clarified":
            if result.state == "awaiting_clarification":
                for clock in current.values():
                    if clock.status == "paused":
                        clock.running_since = at
                result.state = "claimed" if claimed else "waiting"
        elif event.type == "request.answered":
            # An answer is also a response: a first-response clock still open closes with it.
            _close(current, "first_response", at, "answered", org)
            _close(current, "resolution", at, "answered", org)
            result.state = "closed"
            answered_by = _staff(data)
        elif event.type == "request.reopened":
            department = str(data.get("department") or result.department)
            previous = last_resolution.get(department)
            if department != result.department:
                result.arrived_at = at
            result.department, result.state = department, "claimed"
            claimed = True
            # A reopened question goes back to whoever answered it.
            result.claimed_by, result.claimed_at = answered_by, at
            if previous is not None and previous.closed_at is not None:
                # Reopen resumes the department's resolution clock: a new round that carries the
                # business time already spent, so the threshold flags carry over as well.
                clock = Clock(
                    request_id=request_id,
                    segment=previous.segment,
                    kind="resolution",
                    round=previous.round + 1,
                    department=department,
                    priority=previous.priority,
                    target_s=previous.target_s,
                    warning_us=previous.warning_us,
                    started_at=at,
                    elapsed_us=previous.elapsed_us,
                    running_since=at,
                    warning_passed_at=previous.warning_passed_at,
                    breach_passed_at=previous.breach_passed_at,
                )
                current = {"resolution": clock}
                last_resolution[department] = clock
                result.clocks.append(clock)
        elif event.type == "request.cancelled":
            for clock in current.values():
                clock.close(at, "cancelled", org.calendar_for(clock.department))
            current = {}
            result.state = "closed"
    return result


def _staff(data: Mapping[str, Any]) -> str | None:
    staff = data.get("staff_id")
    return str(staff) if staff else None


def _close(
    current: dict[str, Clock], kind: str, at: datetime, reason: str, org: Organisation
) -> None:
    clock = current.pop(kind, None)
    if clock is not None:
        clock.close(at, reason, org.calendar_for(clock.department))


def threshold_instant(clock: Clock, threshold_us: int, calendar: BusinessCalendar) -> datetime:
    """When a running clock reaches ``threshold_us`` business microseconds."""
    assert clock.running_since is not None
    remaining = max(threshold_us - clock.elapsed_us, 0)
    return calendar.add_business_seconds(clock.running_since, remaining / US)


def next_due(
    clock: Clock, calendar: BusinessCalendar, *, warned: bool, breached: bool
) -> datetime | None:
    """The next moment the scheduler must look at this clock (None: nothing left to fire).

    A breach is *passing* the target: the first microsecond of business time beyond it, so a
    budget that runs out at closing time breaches at the next opening, consistent with the
    histogram's ``le=target`` bucket counting elapsed == target as met.
    """
    if clock.running_since is None or clock.closed_at is not None:
        return None
    moments = []
    if not warned:
        moments.append(threshold_instant(clock, clock.warning_us, calendar))
    if not breached:
        moments.append(threshold_instant(clock, clock.target_us + 1, calendar))
    return min(moments) if moments else None


def due_notices(
    clock: Clock, calendar: BusinessCalendar, now: datetime, *, warned: bool, breached: bool
) -> list[Notice]:
    """The thresholds passed by ``now`` that were not announced yet, warning first."""
    notices: list[Notice] = []
    if warned and breached:
        return notices
    end = now if clock.closed_at is None else min(now, clock.closed_at)
    elapsed = clock.elapsed_at(end, calendar) if clock.closed_at is None else clock.elapsed_us
    if not warned and elapsed >= clock.warning_us:
        at = _passed_at(clock, clock.warning_us, clock.warning_passed_at, calendar)
        notices.append(Notice("warning", at, elapsed))
    if not breached and elapsed > clock.target_us:
        at = _passed_at(clock, clock.target_us + 1, clock.breach_passed_at, calendar)
        notices.append(Notice("breach", at, elapsed))
    return notices


def _passed_at(
    clock: Clock, threshold_us: int, recorded: datetime | None, calendar: BusinessCalendar
) -> datetime:
    if clock.running_since is not None and clock.elapsed_us < threshold_us:
        return threshold_instant(clock, threshold_us, calendar)
    if recorded is not None:
        return recorded
    # Passed in an accounted interval whose moment this clock does not carry (one read back
    # from its row, e.g. after a recompute): the best moment we know is the end of that interval.
    return clock.closed_at or clock.running_since or clock.started_at


def business_origin_us(clock: Clock, calendar: BusinessCalendar) -> int | None:
    """A running clock's elapsed time is B(now) - origin, with B the business time since a fixed
    epoch; so the oldest running clock of a department is the one with the smallest origin, and
    an index on it answers "oldest open" without looking at every open request."""
    if clock.running_since is None:
        return None
    return business_us_since_epoch(calendar, clock.running_since) - clock.elapsed_us


def business_us_since_epoch(calendar: BusinessCalendar, moment: datetime) -> int:
    return _between_us(calendar, _BUSINESS_EPOCH, moment)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..1) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(int(-(-q * len(ordered) // 1)), 1)  # ceil(q * n), at least 1
    return ordered[min(rank, len(ordered)) - 1]
