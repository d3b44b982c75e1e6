"""The SLA monitor's store: ingest (the event history, clock rows, open-request aggregates and
the figures per handoff, rating and team) and rebuilding the clocks from that history."""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from datetime import datetime
from typing import Any, Final

from kcc_shared.clocks import (
    CLOCK_EVENT_TYPES,
    US,
    Clock,
    Derived,
    HistoryEvent,
    business_origin_us,
    business_us_since_epoch,
    derive,
    next_due,
)
from kcc_shared.db import is_postgres, write
from kcc_shared.events import OPEN_STATES, Event
from kcc_shared.migrations import require_current
from kcc_shared.organisation import Organisation
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from sla_monitor import metrics
from sla_monitor.metrics import Observation, OpenFigures, department_label, increment
from sla_monitor.migrations import HISTORY
from sla_monitor.notices import Flags, Notices
from sla_monitor.tables import (
    answer_reuses_table,
    chunks,
    clocks_table,
    events_table,
    handoffs_table,
    open_counts_table,
    ratings_table,
    requests_table,
    submissions_table,
    team_activity_table,
)

__all__ = ["SlaStore"]

log = logging.getLogger(__name__)

# Only these fields of an event are kept: enough to rebuild every clock, never any text.
# staff_id: who claimed or answered (an employee's id, no citizen's data), for the drill-down's
# "who has it".
_KEPT_FIELDS: Final = (
    "department", "priority", "reason", "from_department", "handoff_count", "staff_id",
)  # fmt: skip
# The clock rows' columns that are the derived clock's own attributes.
_CLOCK_COLUMNS: Final = (
    "request_id", "segment", "kind", "round", "department", "priority", "target_s", "warning_us",
    "started_at", "status", "elapsed_us", "running_since", "closed_at", "close_reason", "outcome",
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


class SlaStore:
    """Stores events and derives clocks from them; its notices announce what they passed."""

    def __init__(self, engine: Engine, org: Organisation) -> None:
        self.engine = engine
        self.org = org
        self.notices = Notices(engine, org)

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
            observations[event.id].append(increment(metrics.EVENTS_INGESTED, event.type))
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
            histories = self.histories(connection, list(last_event))
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

    def histories(
        self, connection: Connection, request_ids: list[str]
    ) -> dict[str, list[HistoryEvent]]:
        e = events_table
        histories: dict[str, list[HistoryEvent]] = defaultdict(list)
        for chunk in chunks(request_ids):
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
            labels = (department_label(self.org, source), department_label(self.org, target))
            observations[event.id].append(increment(metrics.HANDOFFS, *labels))
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
        for chunk in chunks(missing):
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
            label = department_label(self.org, department)
            observations[event.id].append(increment(metrics.RATINGS, label, str(score)))
            if thanks:
                observations[event.id].append(increment(metrics.THANKS, label))
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
            for chunk in chunks(list(submitted)):
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
        key = (c.c.request_id, c.c.segment, c.c.kind, c.c.round)
        flag_columns = [c.c[f.name] for f in fields(Flags)]
        existing: dict[tuple[str, str, str, int], Flags] = {}
        for chunk in chunks(list(derived)):
            query = select(*key, *flag_columns).where(c.c.request_id.in_(chunk))
            if is_postgres(self.engine):
                # Lock the rows first, so the scheduler cannot announce a threshold in between;
                # in key order, so two monitors locking overlapping requests cannot deadlock.
                query = query.order_by(*key).with_for_update()
            for r in connection.execute(query):
                existing[(r.request_id, r.segment, r.kind, r.round)] = Flags.of(r)
            connection.execute(delete(c).where(c.c.request_id.in_(chunk)))
        observations: dict[str, list[Observation]] = defaultdict(list)
        notices: list[Event] = []
        rows: list[dict[str, Any]] = []
        for request_id, result in derived.items():
            lineage: dict[tuple[str, str], Flags] = {}
            for clock in result.clocks:
                flags = existing.get(clock.key)
                if flags is None:
                    # A reopen round continues its predecessor: what it announced stays
                    # announced.
                    before = lineage.get((clock.segment, clock.kind), Flags())
                    flags = Flags(before.warned, before.breached, before.breached_at)
                if live:
                    flags, more, announced = self.notices.announce(clock, flags, now)
                    observations[request_id] += more
                    notices += announced
                elif clock.closed_at is not None:
                    flags = Flags(flags.warned, flags.breached, flags.breached_at, True)
                lineage[(clock.segment, clock.kind)] = flags
                rows.append(self._row(clock, flags))
        self.notices.emit(connection, notices)
        _insert(connection, c, rows)
        self._set_requests(connection, derived, bump=live)
        return observations

    def _row(self, clock: Clock, flags: Flags) -> dict[str, Any]:
        calendar = self.org.calendar_for(clock.department)
        return {
            **{name: getattr(clock, name) for name in _CLOCK_COLUMNS},
            "origin_us": business_origin_us(clock, calendar),
            "next_due": next_due(clock, calendar, warned=flags.warned, breached=flags.breached),
            **asdict(flags),
        }

    def _set_requests(
        self, connection: Connection, derived: Mapping[str, Derived], *, bump: bool
    ) -> None:
        r = requests_table
        before: dict[str, tuple[str | None, str | None, str]] = {}
        for chunk in chunks(list(derived)):
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
        for chunk in chunks(replaced):
            connection.execute(delete(r).where(r.c.request_id.in_(chunk)))
        _insert(connection, r, rows)
        if bump:
            _bump(connection, deltas)

    # -- recompute --------------------------------------------------------------------------

    def recompute(self, now: datetime, batch: int = 500) -> int:
        """Rebuild every clock row and the open aggregates from the stored history (after a
        calendar or target change). Emits nothing: flags are kept, so a threshold already
        announced is never announced again, and the scheduler announces what is newly due."""
        # A page of request ids at a time (keyset on the request index), never every id in
        # memory at once: years of history are millions of requests.
        done = 0
        after = ""
        ids = events_table.c.request_id
        while True:
            with self.engine.connect() as connection:
                page = select(ids).where(ids > after).distinct().order_by(ids).limit(batch)
                chunk = list(connection.execute(page).scalars())
            if not chunk:
                break
            after = chunk[-1]
            done += len(chunk)
            with write(self.engine) as connection:
                histories = self.histories(connection, chunk)
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
            _insert(
                connection,
                open_counts_table,
                [{"department": d, "state": s, "count": n} for d, s, n in counts],
            )
        return done

    # -- the scrape's reading -------------------------------------------------------------

    def open_figures(self, now: datetime) -> list[OpenFigures]:
        """Open counts (the aggregates ingest keeps) and oldest open per department: a fixed
        number of index look-ups."""
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


def _team(event: Event) -> str | None:
    team = event.data.get("team")
    return str(team)[:64] if team else None


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
