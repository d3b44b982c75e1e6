"""The SLA monitor's store: event history, clock rows, open-request aggregates and the summary."""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from kcc_shared.clocks import (
    CLOCK_EVENT_TYPES,
    US,
    Clock,
    Derived,
    HistoryEvent,
    business_origin_us,
    business_us_since_epoch,
    derive,
    due_notices,
    next_due,
    percentile,
)
from kcc_shared.consumer import processed_events_table
from kcc_shared.db import UtcDateTime, is_postgres, write
from kcc_shared.events import OPEN_STATES, SYSTEM, Event, derived_event_id, new_event
from kcc_shared.migrations import require_current
from kcc_shared.organisation import Organisation
from kcc_shared.outbox import Outbox, outbox_table
from prometheus_client import Counter as PromCounter
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from sla_monitor import metrics
from sla_monitor.metrics import OpenFigures
from sla_monitor.migrations import HISTORY

__all__ = ["WINDOWS", "OpenClock", "SlaStore", "metadata"]

log = logging.getLogger(__name__)

Observation = Callable[[], None]

WINDOWS: Final[Mapping[str, timedelta]] = {
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
# Only these fields of an event are kept: enough to rebuild every clock, never any text.
# staff_id: who claimed or answered (an employee's id, no citizen's data), for the drill-down's
# "who has it".
_KEPT_FIELDS: Final = (
    "department", "priority", "reason", "from_department", "handoff_count", "staff_id",
)  # fmt: skip
# What each KCC team did, counted per team (the submitted event names the team; the others are
# joined to it by request): filed, asked back for clarification, rated.
TEAM_ACTIVITY: Final[Mapping[str, str]] = {
    "request.submitted": "filed",
    "request.clarification_requested": "clarifications",
    "request.rated": "ratings",
}


def _kept(event: Event) -> dict[str, Any]:
    kept = {k: event.data[k] for k in _KEPT_FIELDS if event.data.get(k) is not None}
    # A routing's reason is the router's (rule, forward, default); a cancel's or a reopen's
    # is the agent's own words, which no clock needs: those are not stored.
    if event.type != "request.routed":
        kept.pop("reason", None)
    return kept


BigInt = Integer().with_variant(BigInteger(), "postgresql")
# Ids per IN (...) list: a recompute or a large batch is looked up in pieces of this size.
_IN_LIST_MAX: Final = 1000

metadata = MetaData()

events_table = Table(
    "sla_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_sla_events_request", "request_id"),
)

clocks_table = Table(
    "sla_clocks",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("segment", String(36), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("department", String(64), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("target_s", Integer, nullable=False),
    Column("warning_us", BigInt, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("status", String(8), nullable=False),
    Column("elapsed_us", BigInt, nullable=False),
    Column("running_since", UtcDateTime, nullable=True),
    # For running clocks: elapsed = B(now) - origin_us (see clocks.business_origin_us).
    Column("origin_us", BigInt, nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("close_reason", String(16), nullable=True),
    Column("outcome", String(8), nullable=True),
    Column("next_due", UtcDateTime, nullable=True),
    # Flags survive recomputes: a warning or breach is announced (and counted) once per clock.
    Column("warned", Boolean, nullable=False, default=False),
    Column("breached", Boolean, nullable=False, default=False),
    Column("breached_at", UtcDateTime, nullable=True),
    Column("observed", Boolean, nullable=False, default=False),
    Index("ix_sla_clocks_due", "status", "next_due"),
    Index("ix_sla_clocks_origin", "kind", "status", "department", "origin_us"),
    Index("ix_sla_clocks_paused", "kind", "status", "department", "elapsed_us"),
    Index("ix_sla_clocks_closed", "closed_at"),
    Index("ix_sla_clocks_breached", "breached_at"),
)

requests_table = Table(
    "sla_requests",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("department", String(64), nullable=True),
    Column("priority", String(16), nullable=True),
    Column("state", String(32), nullable=False),
)

# Open requests per (department, state), kept in step with sla_requests in the same
# transaction, so a scrape reads a few rows instead of counting every open request.
open_counts_table = Table(
    "sla_open_counts",
    metadata,
    Column("department", String(64), primary_key=True),
    Column("state", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
)

handoffs_table = Table(
    "sla_handoffs",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("from_department", String(64), nullable=False),
    Column("to_department", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_sla_handoffs_at", "occurred_at"),
)

ratings_table = Table(
    "sla_ratings",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("department", String(64), nullable=False),
    Column("score", Integer, nullable=False),
    Column("thanks", Boolean, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_sla_ratings_at", "occurred_at"),
)

# New tables (migration 0002 adds them to an existing store). Only the team, never the agent:
# the figures are per team.
submissions_table = Table(
    "sla_submissions",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("team", String(64), nullable=True),
)

team_activity_table = Table(
    "sla_team_activity",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_sla_team_activity_at", "occurred_at"),
)

# "Beantwoord zonder doorzetten": a KCC-medewerker answered a citizen with a department's
# reusable answer instead of filing a question (request.answer_reused). The SLA monitor keeps
# no category, so it counts per department only.
answer_reuses_table = Table(
    "sla_answer_reuses",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("department", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_sla_answer_reuses_at", "occurred_at"),
)

processed = processed_events_table(metadata)
outbox = outbox_table(metadata)


@dataclass(frozen=True)
class OpenClock:
    """An open clock past its warning threshold now: ``late`` past its target (it can no
    longer be met), else ``at_risk`` ("bijna te laat")."""

    request_id: str
    department: str
    priority: str
    kind: str
    level: Literal["late", "at_risk"]
    elapsed_s: float
    target_s: int


@dataclass(frozen=True)
class _Flags:
    warned: bool = False
    breached: bool = False
    breached_at: datetime | None = None
    observed: bool = False


class SlaStore:
    """Stores events, derives clocks from them and answers the summary and the scrape."""

    def __init__(self, engine: Engine, org: Organisation) -> None:
        self.engine = engine
        self.org = org
        self.outbox = Outbox(outbox)
        self.histograms = metrics.clock_histograms(org)

    def create_schema(self) -> None:
        # The tables are the migrations' (migrations/): refuse a database that is behind.
        require_current(self.engine, HISTORY)

    # -- ingest ---------------------------------------------------------------------------

    def apply_events(
        self, connection: Connection, events: Sequence[Event], now: datetime
    ) -> dict[str, list[Observation]]:
        """Apply a batch of new events (distinct ids) inside the consumer's transaction.

        A fixed number of statements per batch, whatever its size, and each request's clocks
        are derived once from its whole stored history, however many of its events the batch
        holds. Returns, per event id, the metric updates to make after the commit (so a
        rolled-back batch never counts); a request's clock observations go with its last event
        in the batch.
        """
        observations: dict[str, list[Observation]] = defaultdict(list)
        for event in events:
            observations[event.id].append(_inc(metrics.EVENTS_INGESTED, event.type))
        # Submitted, reroute requests, ratings and our own notices do not move a clock.
        clock_events = [e for e in events if e.type in CLOCK_EVENT_TYPES]
        if clock_events:
            _insert(
                connection,
                events_table,
                [
                    {
                        "event_id": e.id,
                        "request_id": e.request_id,
                        "type": e.type,
                        "occurred_at": e.occurred_at,
                        "data": json.dumps(_kept(e)),
                    }
                    for e in clock_events
                ],
            )
            self._handoffs(connection, clock_events, observations)
            last_event = {e.request_id: e.id for e in clock_events}
            histories = self._histories(connection, list(last_event))
            derived = {
                request_id: derive(request_id, histories.get(request_id, []), self.org)
                for request_id in last_event
            }
            for request_id, more in self._save(connection, derived, now, live=True).items():
                observations[last_event[request_id]] += more
        self._team_activity(connection, events)
        _insert(
            connection,
            answer_reuses_table,
            [
                {
                    "event_id": e.id,
                    "department": str(e.data["department"]),
                    "occurred_at": e.occurred_at,
                }
                for e in events
                if e.type == "request.answer_reused"
            ],
        )
        rated = [e for e in events if e.type == "request.rated"]
        if rated:
            # After the clocks: a rating without a department takes the request's current one,
            # which an event earlier in this batch may just have set.
            self._ratings(connection, rated, observations)
        return observations

    def _histories(
        self, connection: Connection, request_ids: list[str]
    ) -> dict[str, list[HistoryEvent]]:
        e = events_table
        histories: dict[str, list[HistoryEvent]] = defaultdict(list)
        for chunk in _chunks(request_ids):
            rows = connection.execute(
                select(e.c.request_id, e.c.event_id, e.c.type, e.c.occurred_at, e.c.data).where(
                    e.c.request_id.in_(chunk)
                )
            )
            for r in rows:
                histories[r.request_id].append(
                    HistoryEvent(r.event_id, r.type, r.occurred_at, json.loads(r.data))
                )
        return histories

    def _handoffs(
        self,
        connection: Connection,
        events: list[Event],
        observations: dict[str, list[Observation]],
    ) -> None:
        rows = []
        for event in events:
            if event.type != "request.routed":
                continue
            source = event.data.get("from_department")
            target = str(event.data["department"])
            if not source or source == target:
                continue
            rows.append(
                {
                    "event_id": event.id,
                    "from_department": source,
                    "to_department": target,
                    "occurred_at": event.occurred_at,
                }
            )
            observations[event.id].append(
                _inc(metrics.HANDOFFS, self._label(source), self._label(target))
            )
        _insert(connection, handoffs_table, rows)

    def _ratings(
        self,
        connection: Connection,
        events: list[Event],
        observations: dict[str, list[Observation]],
    ) -> None:
        r = requests_table
        missing = sorted({e.request_id for e in events if not e.data.get("department")})
        known: dict[str, str | None] = {}
        for chunk in _chunks(missing):
            for request_id, department in connection.execute(
                select(r.c.request_id, r.c.department).where(r.c.request_id.in_(chunk))
            ):
                known[request_id] = department
        rows = []
        for event in events:
            department = event.data.get("department") or known.get(event.request_id)
            if not department:
                log.warning("rating_without_department", extra={"event_id": event.id})
                continue
            score, thanks = int(event.data["score"]), bool(event.data["thanks"])
            rows.append(
                {
                    "event_id": event.id,
                    "department": department,
                    "score": score,
                    "thanks": thanks,
                    "occurred_at": event.occurred_at,
                }
            )
            label = self._label(department)
            observations[event.id].append(_inc(metrics.RATINGS, label, str(score)))
            if thanks:
                observations[event.id].append(_inc(metrics.THANKS, label))
        _insert(connection, ratings_table, rows)

    def _team_activity(self, connection: Connection, events: Sequence[Event]) -> None:
        activity = [e for e in events if e.type in TEAM_ACTIVITY]
        _insert(
            connection,
            team_activity_table,
            [
                {
                    "event_id": e.id,
                    "request_id": e.request_id,
                    "kind": TEAM_ACTIVITY[e.type],
                    "occurred_at": e.occurred_at,
                }
                for e in activity
            ],
        )
        submitted = {e.request_id: e for e in activity if e.type == "request.submitted"}
        if submitted:
            s = submissions_table
            # A request is submitted once; a second submitted event for it (a replay with a new
            # id) keeps the first team.
            known: set[str] = set()
            for chunk in _chunks(list(submitted)):
                known.update(
                    connection.execute(
                        select(s.c.request_id).where(s.c.request_id.in_(chunk))
                    ).scalars()
                )
            _insert(
                connection,
                s,
                [
                    {"request_id": request_id, "team": _team(event)}
                    for request_id, event in submitted.items()
                    if request_id not in known
                ],
            )

    def _label(self, department: str) -> str:
        # Label values come from configuration only.
        return department if department in self.org.departments else "unknown"

    # -- clocks -------------------------------------------------------------------------------

    def _save(
        self,
        connection: Connection,
        derived: Mapping[str, Derived],
        now: datetime,
        *,
        live: bool,
    ) -> dict[str, list[Observation]]:
        """Replace these requests' clock rows with the derived ones, keeping their flags;
        returns the metric updates per request.

        live: announce thresholds passed and observe closed clocks (the consumer); a recompute
        only rebuilds rows, so it never emits or counts anything twice.
        """
        c = clocks_table
        existing: dict[tuple[str, str, str, int], _Flags] = {}
        for chunk in _chunks(list(derived)):
            query = select(
                c.c.request_id,
                c.c.segment,
                c.c.kind,
                c.c.round,
                c.c.warned,
                c.c.breached,
                c.c.breached_at,
                c.c.observed,
            ).where(c.c.request_id.in_(chunk))
            if is_postgres(self.engine):
                # Lock the rows first, so the scheduler cannot announce a threshold in between;
                # in key order, so two monitors locking overlapping requests cannot deadlock.
                query = query.order_by(c.c.request_id, c.c.segment, c.c.kind, c.c.round)
                query = query.with_for_update()
            for r in connection.execute(query):
                existing[(r.request_id, r.segment, r.kind, r.round)] = _Flags(
                    r.warned, r.breached, r.breached_at, r.observed
                )
            connection.execute(delete(c).where(c.c.request_id.in_(chunk)))
        observations: dict[str, list[Observation]] = defaultdict(list)
        notices: list[Event] = []
        rows: list[dict[str, Any]] = []
        for request_id, result in derived.items():
            lineage: dict[tuple[str, str], _Flags] = {}
            for clock in result.clocks:
                flags = existing.get(clock.key)
                if flags is None:
                    # A reopen round continues its predecessor: what it announced stays
                    # announced.
                    before = lineage.get((clock.segment, clock.kind), _Flags())
                    flags = _Flags(before.warned, before.breached, before.breached_at)
                if live:
                    flags, more, announced = self._announce(clock, flags, now)
                    observations[request_id] += more
                    notices += announced
                elif clock.closed_at is not None:
                    flags = _Flags(flags.warned, flags.breached, flags.breached_at, True)
                lineage[(clock.segment, clock.kind)] = flags
                rows.append(self._row(clock, flags))
        self._emit(connection, notices)
        _insert(connection, c, rows)
        self._set_requests(connection, derived, bump=live)
        return observations

    def _row(self, clock: Clock, flags: _Flags) -> dict[str, Any]:
        calendar = self.org.calendar_for(clock.department)
        return {
            "request_id": clock.request_id,
            "segment": clock.segment,
            "kind": clock.kind,
            "round": clock.round,
            "department": clock.department,
            "priority": clock.priority,
            "target_s": clock.target_s,
            "warning_us": clock.warning_us,
            "started_at": clock.started_at,
            "status": clock.status,
            "elapsed_us": clock.elapsed_us,
            "running_since": clock.running_since,
            "origin_us": business_origin_us(clock, calendar),
            "closed_at": clock.closed_at,
            "close_reason": clock.close_reason,
            "outcome": clock.outcome,
            "next_due": next_due(clock, calendar, warned=flags.warned, breached=flags.breached),
            "warned": flags.warned,
            "breached": flags.breached,
            "breached_at": flags.breached_at,
            "observed": flags.observed,
        }

    def _announce(
        self, clock: Clock, flags: _Flags, now: datetime
    ) -> tuple[_Flags, list[Observation], list[Event]]:
        """The thresholds this clock has passed and not announced yet (as events for the
        outbox), the new flags, and the metric updates, including observing it once when it
        closed."""
        calendar = self.org.calendar_for(clock.department)
        observations: list[Observation] = []
        warned, breached, breached_at, observed = (
            flags.warned,
            flags.breached,
            flags.breached_at,
            flags.observed,
        )
        department, priority, kind = self._label(clock.department), clock.priority, clock.kind
        notices = due_notices(clock, calendar, now, warned=warned, breached=breached)
        events = []
        for notice in notices:
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
                    _inc(metrics.SLA_OUTCOMES, department, priority, kind, "breached")
                )
            observations.append(_inc(metrics.SLA_NOTICES, notice.kind))
        outcome = clock.outcome
        if clock.closed_at is not None and not observed:
            observed = True
            if outcome is not None and clock.close_reason != "cancelled":
                histogram = self.histograms.for_clock(kind)
                seconds = clock.elapsed_us / US
                observations.append(lambda: histogram.labels(department, priority).observe(seconds))
            if outcome == "met":
                observations.append(_inc(metrics.SLA_OUTCOMES, department, priority, kind, "met"))
            if kind == "resolution" and clock.forwarded_to is not None:
                handoffs, to = self.histograms.handoff, self._label(clock.forwarded_to)
                sat = clock.elapsed_us / US
                observations.append(lambda: handoffs.labels(department, to).observe(sat))
        return _Flags(warned, breached, breached_at, observed), observations, events

    def _emit(self, connection: Connection, events: list[Event]) -> None:
        if not events:
            return
        # The ids are deterministic; one already in the outbox was announced before.
        seen: set[str] = set()
        for chunk in _chunks([e.id for e in events]):
            seen.update(
                connection.execute(
                    select(outbox.c.event_id).where(outbox.c.event_id.in_(chunk))
                ).scalars()
            )
        self.outbox.add(connection, [e for e in events if e.id not in seen])

    def _set_requests(
        self, connection: Connection, derived: Mapping[str, Derived], *, bump: bool
    ) -> None:
        r = requests_table
        before: dict[str, tuple[str | None, str | None, str]] = {}
        for chunk in _chunks(list(derived)):
            for row in connection.execute(
                select(r.c.request_id, r.c.department, r.c.priority, r.c.state).where(
                    r.c.request_id.in_(chunk)
                )
            ):
                before[row.request_id] = (row.department, row.priority, row.state)
        rows: list[dict[str, Any]] = []
        replaced: list[str] = []
        deltas: Counter[tuple[str, str]] = Counter()
        for request_id, result in derived.items():
            old = before.get(request_id)
            if old != (result.department, result.priority, result.state):
                rows.append(
                    {
                        "request_id": request_id,
                        "department": result.department,
                        "priority": result.priority,
                        "state": result.state,
                    }
                )
                if old is not None:
                    replaced.append(request_id)
            old_place = (old[0], old[2]) if old is not None else (None, None)
            new_place = (result.department, result.state)
            if old_place != new_place:
                if old_place[0] is not None and old_place[1] in OPEN_STATES:
                    deltas[(old_place[0], str(old_place[1]))] -= 1
                if new_place[0] is not None and new_place[1] in OPEN_STATES:
                    deltas[(new_place[0], new_place[1])] += 1
        # Changed rows are replaced: two statements for the batch, where updating them would
        # take one per row.
        for chunk in _chunks(replaced):
            connection.execute(delete(r).where(r.c.request_id.in_(chunk)))
        _insert(connection, r, rows)
        if bump:
            _bump(connection, deltas)

    # -- the scheduler's work -------------------------------------------------------------

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
                flags = _Flags(row.warned, row.breached, row.breached_at, row.observed)
                new_flags, more, announced = self._announce(clock, flags, now)
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
                        warned=new_flags.warned,
                        breached=new_flags.breached,
                        breached_at=new_flags.breached_at,
                        next_due=next_due(
                            clock,
                            calendar,
                            warned=new_flags.warned,
                            breached=new_flags.breached,
                        ),
                    )
                )
            self._emit(connection, notices)
        return fired, observations

    def earliest_due(self) -> datetime | None:
        c = clocks_table
        with self.engine.connect() as connection:
            value: datetime | None = connection.execute(
                select(func.min(c.c.next_due)).where(c.c.status == "running")
            ).scalar_one_or_none()
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    # -- recompute --------------------------------------------------------------------------

    def recompute(self, now: datetime, batch: int = 500) -> int:
        """Rebuild every clock row and the open aggregates from the stored history (after a
        calendar or target change). Emits nothing: flags are kept, so a threshold already
        announced is never announced again, and the scheduler announces what is newly due."""
        # A page of request ids at a time (keyset on the request index), never every id in
        # memory at once: years of history are millions of requests.
        done = 0
        after = ""
        while True:
            with self.engine.connect() as connection:
                chunk = list(
                    connection.execute(
                        select(events_table.c.request_id)
                        .where(events_table.c.request_id > after)
                        .distinct()
                        .order_by(events_table.c.request_id)
                        .limit(batch)
                    ).scalars()
                )
            if not chunk:
                break
            after = chunk[-1]
            done += len(chunk)
            with write(self.engine) as connection:
                histories = self._histories(connection, chunk)
                derived = {
                    request_id: derive(request_id, histories.get(request_id, []), self.org)
                    for request_id in chunk
                }
                self._save(connection, derived, now, live=False)
        with write(self.engine) as connection:
            connection.execute(delete(open_counts_table))
            r = requests_table
            counts = connection.execute(
                select(r.c.department, r.c.state, func.count())
                .where(r.c.state.in_(OPEN_STATES), r.c.department.is_not(None))
                .group_by(r.c.department, r.c.state)
            ).all()
            if counts:
                connection.execute(
                    insert(open_counts_table),
                    [{"department": d, "state": s, "count": n} for d, s, n in counts],
                )
        return done

    # -- reading -----------------------------------------------------------------------------

    def open_figures(self, now: datetime) -> list[OpenFigures]:
        """Open counts and oldest open per department: a fixed number of index look-ups."""
        departments = sorted(self.org.departments)
        by_state: dict[str, dict[str, int]] = defaultdict(dict)
        c = clocks_table
        columns: list[Any] = []
        for index, department in enumerate(departments):
            columns.append(
                select(func.min(c.c.origin_us))
                .where(
                    c.c.kind == "resolution", c.c.status == "running", c.c.department == department
                )
                .scalar_subquery()
                .label(f"r{index}")
            )
            columns.append(
                select(func.max(c.c.elapsed_us))
                .where(
                    c.c.kind == "resolution", c.c.status == "paused", c.c.department == department
                )
                .scalar_subquery()
                .label(f"p{index}")
            )
        with self.engine.connect() as connection:
            for department, state, count in connection.execute(select(open_counts_table)):
                by_state[department][state] = int(count)
            extremes = connection.execute(select(literal(1), *columns)).one() if columns else ()
        figures = []
        for index, department in enumerate(departments):
            oldest_us = 0
            origin, paused = extremes[1 + 2 * index], extremes[2 + 2 * index]
            if origin is not None:
                calendar = self.org.calendar_for(department)
                oldest_us = business_us_since_epoch(calendar, now) - int(origin)
            if paused is not None:
                oldest_us = max(oldest_us, int(paused))
            figures.append(OpenFigures(department, by_state.get(department, {}), oldest_us / US))
        return figures

    def summary(self, window: str, now: datetime) -> list[dict[str, Any]]:
        """Per department: compliance, percentiles, open, oldest, breaches, handoffs, ratings."""
        return self.summary_and_totals(window, now)[0]

    def summary_and_totals(
        self, window: str, now: datetime
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The summary per department and its totals row (all departments together; the
        percentiles over every clock, not an average of the departments')."""
        since = now - WINDOWS[window]
        c, h, r = clocks_table, handoffs_table, ratings_table
        elapsed: dict[tuple[str, str], list[float]] = defaultdict(list)
        outcomes: dict[tuple[str, str, str], int] = defaultdict(int)
        with self.engine.connect() as connection:
            for row in connection.execute(
                select(
                    c.c.department, c.c.kind, c.c.outcome, c.c.elapsed_us, c.c.close_reason
                ).where(c.c.closed_at >= since, c.c.closed_at <= now, c.c.outcome.is_not(None))
            ):
                outcomes[(row.department, row.kind, row.outcome)] += 1
                if row.close_reason != "cancelled":
                    elapsed[(row.department, row.kind)].append(row.elapsed_us / US)
                    elapsed[("", row.kind)].append(row.elapsed_us / US)
            breaches: dict[str, int] = _pairs(
                connection.execute(
                    select(c.c.department, func.count())
                    .where(c.c.breached_at >= since, c.c.breached_at <= now)
                    .group_by(c.c.department)
                ).all()
            )
            window_handoffs = (h.c.occurred_at >= since) & (h.c.occurred_at <= now)
            out: dict[str, int] = _pairs(
                connection.execute(
                    select(h.c.from_department, func.count())
                    .where(window_handoffs)
                    .group_by(h.c.from_department)
                ).all()
            )
            in_: dict[str, int] = _pairs(
                connection.execute(
                    select(h.c.to_department, func.count())
                    .where(window_handoffs)
                    .group_by(h.c.to_department)
                ).all()
            )
            u = answer_reuses_table
            reuses: dict[str, int] = _pairs(
                connection.execute(
                    select(u.c.department, func.count())
                    .where(u.c.occurred_at >= since, u.c.occurred_at <= now)
                    .group_by(u.c.department)
                ).all()
            )
            ratings = {
                row.department: row
                for row in connection.execute(
                    select(
                        r.c.department,
                        func.count().label("n"),
                        func.avg(r.c.score).label("average"),
                        func.sum(func.cast(r.c.thanks, Integer)).label("thanks"),
                    )
                    .where(r.c.occurred_at >= since, r.c.occurred_at <= now)
                    .group_by(r.c.department)
                )
            }
        open_ = {f.department: f for f in self.open_figures(now)}
        alerts = self.open_clocks(now)
        open_late: Counter[tuple[str, str, str]] = Counter(
            (a.department, a.kind, a.level) for a in alerts
        )
        late_requests: dict[str, set[str]] = defaultdict(set)
        risky_requests: dict[str, set[str]] = defaultdict(set)
        for a in alerts:
            (late_requests if a.level == "late" else risky_requests)[a.department].add(a.request_id)
        result = []
        for department_id, department in sorted(self.org.departments.items()):
            clocks = {}
            for kind in ("first_response", "resolution"):
                met = outcomes[(department_id, kind, "met")]
                breached = outcomes[(department_id, kind, "breached")]
                # The truth about the norm: a clock still open past its target is breached
                # already (no answer can make it met), so it counts against compliance now.
                open_breached = open_late[(department_id, kind, "late")]
                judged = met + breached + open_breached
                values = elapsed[(department_id, kind)]
                clocks[kind] = {
                    "met": met,
                    "breached": breached,
                    "open_breached": open_breached,
                    "at_risk": open_late[(department_id, kind, "at_risk")],
                    "compliance": met / judged if judged else None,
                    "median_seconds": percentile(values, 0.5),
                    "p90_seconds": percentile(values, 0.9),
                }
            late = late_requests[department_id]
            figures = open_[department_id]
            rating = ratings.get(department_id)
            result.append(
                {
                    "department": department_id,
                    "name": department.name,
                    "clocks": clocks,
                    "open": {s: figures.by_state.get(s, 0) for s in OPEN_STATES},
                    "open_total": sum(figures.by_state.get(s, 0) for s in OPEN_STATES),
                    "oldest_open_seconds": figures.oldest_open_s,
                    "late": len(late),
                    "at_risk": len(risky_requests[department_id] - late),
                    "breaches": int(breaches.get(department_id, 0)),
                    "handoffs_in": int(in_.get(department_id, 0)),
                    "handoffs_out": int(out.get(department_id, 0)),
                    "ratings": int(rating.n) if rating is not None else 0,
                    "average_rating": float(rating.average) if rating is not None else None,
                    "thanks": int(rating.thanks or 0) if rating is not None else 0,
                    "answered_without_handoff": int(reuses.get(department_id, 0)),
                }
            )
        return result, _totals(result, elapsed)

    def open_clocks(self, now: datetime, department: str | None = None) -> list[OpenClock]:
        """Every open clock past its warning threshold at ``now`` (of one department or all).

        One statement that returns only those clocks (the others are most of the open ones):
        a running clock's elapsed time is B(now) - origin (see clocks.business_origin_us),
        with B(now) computed once per department and compared in SQL.
        """
        departments = [department] if department is not None else sorted(self.org.departments)
        departments = [d for d in departments if d in self.org.departments]
        if not departments:
            return []
        now_b = {d: business_us_since_epoch(self.org.calendar_for(d), now) for d in departments}
        c = clocks_table
        b_now = case(
            {
                d: bindparam(f"b_{n}", value, type_=BigInt)
                for n, (d, value) in enumerate(now_b.items())
            },
            value=c.c.department,
        )
        query = select(
            c.c.request_id,
            c.c.department,
            c.c.priority,
            c.c.kind,
            c.c.status,
            c.c.target_s,
            c.c.elapsed_us,
            c.c.origin_us,
        ).where(
            c.c.department.in_(departments),
            ((c.c.status == "running") & (c.c.origin_us + c.c.warning_us <= b_now))
            | ((c.c.status == "paused") & (c.c.elapsed_us >= c.c.warning_us)),
        )
        found = []
        with self.engine.connect() as connection:
            for row in connection.execute(query):
                elapsed_us = (
                    now_b[row.department] - int(row.origin_us)
                    if row.status == "running"
                    else int(row.elapsed_us)
                )
                found.append(
                    OpenClock(
                        request_id=row.request_id,
                        department=row.department,
                        priority=row.priority,
                        kind=row.kind,
                        level="late" if elapsed_us > row.target_s * US else "at_risk",
                        elapsed_s=elapsed_us / US,
                        target_s=int(row.target_s),
                    )
                )
        return found

    def late_questions(self, department: str, now: datetime) -> list[dict[str, Any]]:
        """The open questions of ``department`` that are late or at risk now, with who has them
        since when (derived from their stored history): the overview's drill-down. Late first,
        then the furthest past their norm."""
        by_request: dict[str, list[OpenClock]] = defaultdict(list)
        for found in self.open_clocks(now, department):
            by_request[found.request_id].append(found)
        with self.engine.connect() as connection:
            histories = self._histories(connection, sorted(by_request))
        questions: list[tuple[bool, float, str, dict[str, Any]]] = []
        for request_id, clocks in by_request.items():
            derived = derive(request_id, histories.get(request_id, []), self.org)
            if derived.department != department or derived.state == "closed":
                continue  # moved on since the clock rows were read
            late = any(c.level == "late" for c in clocks)
            overdue = max(c.elapsed_s / c.target_s for c in clocks)
            questions.append(
                (
                    not late,
                    -overdue,
                    request_id,
                    {
                        "request_id": request_id,
                        "level": "late" if late else "at_risk",
                        "priority": clocks[0].priority,
                        "state": derived.state,
                        "arrived_at": derived.arrived_at,
                        "claimed_by": derived.claimed_by,
                        "claimed_at": derived.claimed_at,
                        "clocks": [
                            {
                                "clock": c.kind,
                                "level": c.level,
                                "elapsed_seconds": c.elapsed_s,
                                "target_seconds": c.target_s,
                            }
                            for c in sorted(clocks, key=lambda c: c.kind)
                        ],
                    },
                )
            )
        return [question for *_, question in sorted(questions, key=lambda q: q[:3])]

    def handoff_times(self, window: str, now: datetime) -> list[dict[str, Any]]:
        """Per pair of departments: how many questions one forwarded to the other in the window
        and how long they sat there first (business seconds, pauses excluded: the resolution
        clock the forward closed). Slowest (p90) first."""
        since = now - WINDOWS[window]
        c, e = clocks_table, events_table
        with self.engine.connect() as connection:
            closed = connection.execute(
                select(c.c.request_id, c.c.department, c.c.elapsed_us, c.c.closed_at).where(
                    c.c.kind == "resolution",
                    c.c.close_reason == "forwarded",
                    c.c.closed_at >= since,
                    c.c.closed_at <= now,
                )
            ).all()
            # Where each went: the routed event at the moment the clock closed.
            went: dict[tuple[str, datetime], str] = {}
            for chunk in _chunks(sorted({row.request_id for row in closed})):
                for routed in connection.execute(
                    select(e.c.request_id, e.c.occurred_at, e.c.data).where(
                        e.c.request_id.in_(chunk), e.c.type == "request.routed"
                    )
                ):
                    went[(routed.request_id, _utc(routed.occurred_at))] = str(
                        json.loads(routed.data).get("department")
                    )
        sat: dict[tuple[str, str], list[float]] = defaultdict(list)
        for row in closed:
            target = went.get((row.request_id, _utc(row.closed_at)))
            if target is not None and target != row.department:
                sat[(row.department, target)].append(row.elapsed_us / US)
        pairs: list[dict[str, Any]] = [
            {
                "from_department": source,
                "from_name": self._name(source),
                "to_department": target,
                "to_name": self._name(target),
                "handoffs": len(values),
                "median_seconds": percentile(values, 0.5),
                "p90_seconds": percentile(values, 0.9),
            }
            for (source, target), values in sat.items()
        ]
        pairs.sort(key=lambda p: (-(p["p90_seconds"] or 0), p["from_name"], p["to_name"]))
        return pairs

    def team_figures(self, window: str, now: datetime) -> list[dict[str, Any]]:
        """Per KCC team, in the window: questions filed, clarifications asked back by the
        departments, ratings given. A question whose submitted event has not arrived (or names
        no team) counts under team null."""
        since = now - WINDOWS[window]
        t, s = team_activity_table, submissions_table
        counts: dict[str | None, Counter[str]] = defaultdict(Counter)
        with self.engine.connect() as connection:
            for team, kind, count in connection.execute(
                select(s.c.team, t.c.kind, func.count())
                .select_from(t.outerjoin(s, s.c.request_id == t.c.request_id))
                .where(t.c.occurred_at >= since, t.c.occurred_at <= now)
                .group_by(s.c.team, t.c.kind)
            ):
                counts[team][kind] += int(count)
        teams = sorted(counts, key=lambda team: (team is None, team or ""))
        return [
            {
                "team": team,
                "filed": counts[team]["filed"],
                "clarifications": counts[team]["clarifications"],
                "ratings": counts[team]["ratings"],
            }
            for team in teams
        ]

    def _name(self, department: str) -> str:
        known = self.org.departments.get(department)
        return known.name if known is not None else department

    def clocks_of(self, request_id: str) -> list[Row[Any]]:
        """The clock rows of one request (tests, support)."""
        c = clocks_table
        with self.engine.connect() as connection:
            return list(
                connection.execute(
                    select(c)
                    .where(c.c.request_id == request_id)
                    .order_by(c.c.started_at, c.c.kind, c.c.round)
                ).all()
            )


def _totals(
    departments: list[dict[str, Any]], elapsed: Mapping[tuple[str, str], list[float]]
) -> dict[str, Any]:
    """The totals row: sums, the overall compliance, the oldest of all, the weighted rating."""
    clocks = {}
    for kind in ("first_response", "resolution"):
        summed = {
            key: sum(d["clocks"][kind][key] for d in departments)
            for key in ("met", "breached", "open_breached", "at_risk")
        }
        judged = summed["met"] + summed["breached"] + summed["open_breached"]
        values = list(elapsed.get(("", kind), []))
        clocks[kind] = {
            **summed,
            "compliance": summed["met"] / judged if judged else None,
            "median_seconds": percentile(values, 0.5),
            "p90_seconds": percentile(values, 0.9),
        }
    ratings = sum(d["ratings"] for d in departments)
    scored = sum(d["average_rating"] * d["ratings"] for d in departments if d["ratings"])
    return {
        "clocks": clocks,
        "open": {s: sum(d["open"][s] for d in departments) for s in OPEN_STATES},
        "open_total": sum(d["open_total"] for d in departments),
        "oldest_open_seconds": max((d["oldest_open_seconds"] for d in departments), default=0.0),
        "late": sum(d["late"] for d in departments),
        "at_risk": sum(d["at_risk"] for d in departments),
        "breaches": sum(d["breaches"] for d in departments),
        "handoffs_in": sum(d["handoffs_in"] for d in departments),
        "handoffs_out": sum(d["handoffs_out"] for d in departments),
        "ratings": ratings,
        "average_rating": scored / ratings if ratings else None,
        "thanks": sum(d["thanks"] for d in departments),
        "answered_without_handoff": sum(d["answered_without_handoff"] for d in departments),
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _team(event: Event) -> str | None:
    team = event.data.get("team")
    return str(team)[:64] if team else None


def _pairs(rows: Any) -> dict[str, int]:
    return {str(key): int(value) for key, value in rows}


def _bump(connection: Connection, deltas: Mapping[tuple[str, str], int]) -> None:
    """Add these deltas to the open counts per (department, state)."""
    t = open_counts_table
    # A fixed order: two monitors updating the same rows lock them in the same order.
    changes = sorted((key, delta) for key, delta in deltas.items() if delta)
    if not changes:
        return
    departments = sorted({department for (department, _), _ in changes})
    present = {
        (department, state)
        for department, state in connection.execute(
            select(t.c.department, t.c.state).where(t.c.department.in_(departments))
        )
    }
    updates = [
        {"b_department": d, "b_state": s, "b_delta": n}
        for (d, s), n in changes
        if (d, s) in present
    ]
    inserts = [
        {"department": d, "state": s, "count": n} for (d, s), n in changes if (d, s) not in present
    ]
    if updates:
        connection.execute(
            update(t)
            .where(t.c.department == bindparam("b_department"), t.c.state == bindparam("b_state"))
            .values(count=t.c.count + bindparam("b_delta")),
            updates,
        )
    _insert(connection, t, inserts)


def _insert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    # executemany: psycopg pipelines the rows in one round trip; measured faster than one
    # multi-row VALUES statement, which SQLAlchemy compiles anew for every batch.
    if rows:
        connection.execute(insert(table), rows)


def _chunks(values: list[str], size: int = _IN_LIST_MAX) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _inc(counter: PromCounter, *labels: str) -> Observation:
    """An increment to make after the commit (the series appears only when it counts)."""
    return lambda: counter.labels(*labels).inc()


def _clock_from_row(row: Row[Any]) -> Clock:
    return Clock(
        request_id=row.request_id,
        segment=row.segment,
        kind=row.kind,
        round=row.round,
        department=row.department,
        priority=row.priority,
        target_s=row.target_s,
        warning_us=row.warning_us,
        started_at=row.started_at,
        elapsed_us=row.elapsed_us,
        running_since=row.running_since,
        closed_at=row.closed_at,
        close_reason=row.close_reason,
    )
