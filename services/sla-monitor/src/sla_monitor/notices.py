"""Announcing warnings and breaches: request.sla_warning / request.sla_breached into the outbox,
once per clock, at ingest or when the deadline scheduler finds a running clock due."""

from __future__ import annotations

from dataclasses import asdict, astuple, dataclass, fields
from datetime import datetime
from typing import Any

from kcc_shared.clocks import US, Clock, due_notices, next_due
from kcc_shared.db import is_postgres, write
from kcc_shared.events import SYSTEM, Event, derived_event_id, new_event
from kcc_shared.organisation import Organisation
from kcc_shared.outbox import Outbox
from sqlalchemy import Connection, Engine, Row, func, select, update

from sla_monitor import metrics
from sla_monitor.metrics import Observation, department_label, increment
from sla_monitor.tables import chunks, clocks_table, outbox


@dataclass(frozen=True)
class Flags:
    """What a clock row has announced and observed (kept across recomputes)."""

    warned: bool = False
    breached: bool = False
    breached_at: datetime | None = None
    observed: bool = False

    @classmethod
    def of(cls, row: Any) -> Flags:
        """The flags of a clock row (any select that has its flag columns)."""
        return cls(row.warned, row.breached, row.breached_at, row.observed)


class Notices:
    """Finds the thresholds a clock has passed and puts their announcements in the outbox."""

    def __init__(self, engine: Engine, org: Organisation) -> None:
        self.engine = engine
        self.org = org
        self.outbox = Outbox(outbox)
        self.histograms = metrics.clock_histograms(org)

    def announce(
        self, clock: Clock, flags: Flags, now: datetime
    ) -> tuple[Flags, list[Observation], list[Event]]:
        """The thresholds this clock has passed and not announced yet (as events for the
        outbox), the new flags, and the metric updates, including observing it once when it
        closed."""
        calendar = self.org.calendar_for(clock.department)
        observations: list[Observation] = []
        warned, breached, breached_at, observed = astuple(flags)
        department = department_label(self.org, clock.department)
        priority, kind = clock.priority, clock.kind
        events = []
        for notice in due_notices(clock, calendar, now, warned=warned, breached=breached):
            type_ = "request.sla_warning" if notice.kind == "warning" else "request.sla_breached"
            purpose = f"{type_.removeprefix('request.')}:{clock.kind}"
            if clock.round:
                purpose += f":round{clock.round}"
            events.append(
                new_event(
                    type_,
                    request_id=clock.request_id,
                    actor=SYSTEM,
                    event_id=derived_event_id(clock.segment, purpose),
                    occurred_at=notice.at,
                    data={
                        "department": clock.department,
                        "priority": priority,
                        "clock": kind,
                        "target_seconds": clock.target_s,
                        "elapsed_seconds": notice.elapsed_us // US,
                    },
                )
            )
            if notice.kind == "warning":
                warned = True
            else:
                breached, breached_at = True, notice.at
                observations.append(
                    increment(metrics.SLA_OUTCOMES, department, priority, kind, "breached")
                )
            observations.append(increment(metrics.SLA_NOTICES, notice.kind))
        outcome = clock.outcome
        if clock.closed_at is not None and not observed:
            observed = True
            if outcome is not None and clock.close_reason != "cancelled":
                histogram = self.histograms.for_clock(kind)
                seconds = clock.elapsed_us / US
                observations.append(lambda: histogram.labels(department, priority).observe(seconds))
            if outcome == "met":
                observations.append(
                    increment(metrics.SLA_OUTCOMES, department, priority, kind, "met")
                )
            if kind == "resolution" and clock.forwarded_to is not None:
                handoffs = self.histograms.handoff
                to = department_label(self.org, clock.forwarded_to)
                sat = clock.elapsed_us / US
                observations.append(lambda: handoffs.labels(department, to).observe(sat))
        return Flags(warned, breached, breached_at, observed), observations, events

    def emit(self, connection: Connection, events: list[Event]) -> None:
        if not events:
            return
        # The ids are deterministic; one already in the outbox was announced before.
        seen: set[str] = set()
        for chunk in chunks([e.id for e in events]):
            seen.update(
                connection.execute(
                    select(outbox.c.event_id).where(outbox.c.event_id.in_(chunk))
                ).scalars()
            )
        self.outbox.add(connection, [e for e in events if e.id not in seen])

    # -- the scheduler's queries ----------------------------------------------------------

    def fire_due(self, now: datetime, limit: int = 500) -> tuple[int, list[Observation]]:
        """Announce every threshold running clocks passed by ``now``; returns (notices, metric
        updates to make after commit)."""
        c = clocks_table
        observations: list[Observation] = []
        notices: list[Event] = []
        fired = 0
        with write(self.engine) as connection:
            query = (
                select(c)
                .where(c.c.status == "running", c.c.next_due <= now)
                .order_by(c.c.next_due)
                .limit(limit)
            )
            if is_postgres(self.engine):
                query = query.with_for_update(skip_locked=True)
            for row in connection.execute(query).all():
                clock = _clock_from_row(row)
                flags = Flags.of(row)
                new_flags, more, announced = self.announce(clock, flags, now)
                notices += announced
                fired += int(new_flags.warned != flags.warned)
                fired += int(new_flags.breached != flags.breached)
                observations += more
                calendar = self.org.calendar_for(clock.department)
                connection.execute(
                    update(c)
                    .where(
                        c.c.request_id == row.request_id,
                        c.c.segment == row.segment,
                        c.c.kind == row.kind,
                        c.c.round == row.round,
                    )
                    .values(
                        **asdict(new_flags),
                        next_due=next_due(
                            clock, calendar, warned=new_flags.warned, breached=new_flags.breached
                        ),
                    )
                )
            self.emit(connection, notices)
        return fired, observations

    def earliest_due(self) -> datetime | None:
        c = clocks_table
        with self.engine.connect() as connection:
            # min() keeps the column's type, so the value comes back aware (UtcDateTime).
            due: datetime | None = connection.execute(
                select(func.min(c.c.next_due)).where(c.c.status == "running")
            ).scalar_one_or_none()
        return due


def _clock_from_row(row: Row[Any]) -> Clock:
    # The row has a column per field of a stored clock; the others (when a threshold passed,
    # where a forward went) exist only on clocks derived from a history, and stay None here.
    columns = row._mapping
    return Clock(**{f.name: columns[f.name] for f in fields(Clock) if f.name in columns})
