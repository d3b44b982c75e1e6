"""The SLA figures the pages, the API and the scrape read: the summary per department with its
totals, the time before each handoff, the KCC teams' activity and the drill-down of late and
at-risk questions."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from flask import current_app
from kcc_shared.clocks import US, business_us_since_epoch, derive, percentile
from kcc_shared.events import CLOCKS, OPEN_STATES
from kcc_shared.organisation import Organisation
from sqlalchemy import Column, Connection, Integer, bindparam, case, func, select

from sla_monitor.errors import UnknownDepartment
from sla_monitor.store import TEAM_ACTIVITY, SlaStore
from sla_monitor.tables import (
    BigInt,
    answer_reuses_table,
    chunks,
    clocks_table,
    events_table,
    handoffs_table,
    ratings_table,
    submissions_table,
    team_activity_table,
)

CONTEXT_EXTENSION: Final = "kcc.sla_monitor"
# Where the drill-down links a question to: the back office's item page, `<base>/items/<id>`.
# `kcc dev` (and a reverse proxy that serves the pages under one host) mounts the back office at
# /backoffice; create_app takes another base.
DEFAULT_BACKOFFICE_URL: Final = "/backoffice"
WINDOWS: Final[Mapping[str, timedelta]] = {
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def current() -> SlaContext:
    """The running app's context (sla_monitor.app puts it in the app's extensions)."""
    context: SlaContext = current_app.extensions[CONTEXT_EXTENSION]
    return context


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
class SlaContext:
    """What the HTTP side reads, at ``clock()``: the store, the organisation and where the
    back office is."""

    store: SlaStore
    organisation: Organisation
    clock: Callable[[], datetime]
    backoffice_url: str = DEFAULT_BACKOFFICE_URL

    def summary(self, window: str) -> dict[str, Any]:
        """The figures per department and their totals row (all departments together; the
        percentiles over every clock, not an average of the departments'), the time before each
        handoff and the KCC teams' activity, over ``window``."""
        now = self.clock()
        since = now - WINDOWS[window]
        c, h, r = clocks_table, handoffs_table, ratings_table
        elapsed: dict[tuple[str, str], list[float]] = defaultdict(list)
        outcomes: dict[tuple[str, str, str], int] = defaultdict(int)
        with self.store.engine.connect() as connection:
            for row in connection.execute(
                select(
                    c.c.department, c.c.kind, c.c.outcome, c.c.elapsed_us, c.c.close_reason
                ).where(c.c.closed_at >= since, c.c.closed_at <= now, c.c.outcome.is_not(None))
            ):
                outcomes[(row.department, row.kind, row.outcome)] += 1
                if row.close_reason != "cancelled":
                    elapsed[(row.department, row.kind)].append(row.elapsed_us / US)
                    elapsed[("", row.kind)].append(row.elapsed_us / US)
            breaches = _count(connection, c.c.department, c.c.breached_at, since, now)
            out = _count(connection, h.c.from_department, h.c.occurred_at, since, now)
            in_ = _count(connection, h.c.to_department, h.c.occurred_at, since, now)
            u = answer_reuses_table
            reuses = _count(connection, u.c.department, u.c.occurred_at, since, now)
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
        open_ = {f.department: f for f in self.store.open_figures(now)}
        alerts = self.open_clocks(now)
        open_late: Counter[tuple[str, str, str]] = Counter(
            (a.department, a.kind, a.level) for a in alerts
        )
        late_requests: dict[str, set[str]] = defaultdict(set)
        risky_requests: dict[str, set[str]] = defaultdict(set)
        for a in alerts:
            (late_requests if a.level == "late" else risky_requests)[a.department].add(a.request_id)
        result = []
        for department_id, department in sorted(self.organisation.departments.items()):
            clocks = {
                kind: _clock_figures(
                    outcomes[(department_id, kind, "met")],
                    outcomes[(department_id, kind, "breached")],
                    open_late[(department_id, kind, "late")],
                    open_late[(department_id, kind, "at_risk")],
                    elapsed[(department_id, kind)],
                )
                for kind in CLOCKS
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
                    "breaches": breaches[department_id],
                    "handoffs_in": in_[department_id],
                    "handoffs_out": out[department_id],
                    "ratings": int(rating.n) if rating is not None else 0,
                    "average_rating": float(rating.average) if rating is not None else None,
                    "thanks": int(rating.thanks or 0) if rating is not None else 0,
                    "answered_without_handoff": reuses[department_id],
                }
            )
        return {
            "window": window,
            "generated_at": now,
            "departments": result,
            "totals": _totals(result, elapsed),
            "handoff_times": self.handoff_times(window, now),
            "teams": self.team_figures(window, now),
        }

    def open_clocks(self, now: datetime, department: str | None = None) -> list[OpenClock]:
        """Every open clock past its warning threshold at ``now`` (of one department or all).

        One statement that returns only those clocks (the others are most of the open ones):
        a running clock's elapsed time is B(now) - origin (see clocks.business_origin_us),
        with B(now) computed once per department and compared in SQL.
        """
        departments = [department] if department else sorted(self.organisation.departments)
        if not departments:
            return []
        now_b = {
            d: business_us_since_epoch(self.organisation.calendar_for(d), now) for d in departments
        }
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
        with self.store.engine.connect() as connection:
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

    def late_questions(self, department: str) -> dict[str, Any]:
        """The drill-down of one department: its open questions that are late or at risk now,
        with who has them since when (derived from their stored history) and their back-office
        link. Late first, then the furthest past their norm."""
        known = self.organisation.departments.get(department)
        if known is None:
            raise UnknownDepartment(department)
        now = self.clock()
        by_request: dict[str, list[OpenClock]] = defaultdict(list)
        for found in self.open_clocks(now, department):
            by_request[found.request_id].append(found)
        with self.store.engine.connect() as connection:
            histories = self.store.histories(connection, sorted(by_request))
        questions: list[tuple[bool, float, str, dict[str, Any]]] = []
        for request_id, clocks in by_request.items():
            derived = derive(request_id, histories.get(request_id, []), self.organisation)
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
                        "item_url": f"{self.backoffice_url}/items/{request_id}",
                    },
                )
            )
        return {
            "department": department,
            "name": known.name,
            "generated_at": now,
            "questions": [question for *_, question in sorted(questions, key=lambda q: q[:3])],
        }

    def handoff_times(self, window: str, now: datetime) -> list[dict[str, Any]]:
        """Per pair of departments: how many questions one forwarded to the other in the window
        and how long they sat there first (business seconds, pauses excluded: the resolution
        clock the forward closed). Slowest (p90) first."""
        since = now - WINDOWS[window]
        c, e = clocks_table, events_table
        with self.store.engine.connect() as connection:
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
            for chunk in chunks(sorted({row.request_id for row in closed})):
                for routed in connection.execute(
                    select(e.c.request_id, e.c.occurred_at, e.c.data).where(
                        e.c.request_id.in_(chunk), e.c.type == "request.routed"
                    )
                ):
                    went[(routed.request_id, routed.occurred_at)] = str(
                        json.loads(routed.data).get("department")
                    )
        sat: dict[tuple[str, str], list[float]] = defaultdict(list)
        for row in closed:
            target = went.get((row.request_id, row.closed_at))
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
        with self.store.engine.connect() as connection:
            for team, kind, count in connection.execute(
                select(s.c.team, t.c.kind, func.count())
                .select_from(t.outerjoin(s, s.c.request_id == t.c.request_id))
                .where(t.c.occurred_at >= since, t.c.occurred_at <= now)
                .group_by(s.c.team, t.c.kind)
            ):
                counts[team][kind] += int(count)
        return [
            {"team": team, **{kind: counts[team][kind] for kind in TEAM_ACTIVITY.values()}}
            for team in sorted(counts, key=lambda team: (team is None, team or ""))
        ]

    def _name(self, department: str) -> str:
        known = self.organisation.departments.get(department)
        return known.name if known is not None else department


def _totals(
    departments: list[dict[str, Any]], elapsed: Mapping[tuple[str, str], list[float]]
) -> dict[str, Any]:
    """The totals row: sums, the overall compliance, the oldest of all, the weighted rating."""
    clocks = {}
    for kind in CLOCKS:
        met, breached, open_breached, at_risk = (
            sum(d["clocks"][kind][key] for d in departments)
            for key in ("met", "breached", "open_breached", "at_risk")
        )
        values = elapsed.get(("", kind), [])
        clocks[kind] = _clock_figures(met, breached, open_breached, at_risk, values)
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


def _clock_figures(
    met: int, breached: int, open_breached: int, at_risk: int, values: list[float]
) -> dict[str, Any]:
    """One clock's figures. The truth about the norm: a clock still open past its target is
    breached already (no answer can make it met), so it counts against compliance now."""
    judged = met + breached + open_breached
    return {
        "met": met,
        "breached": breached,
        "open_breached": open_breached,
        "at_risk": at_risk,
        "compliance": met / judged if judged else None,
        "median_seconds": percentile(values, 0.5),
        "p90_seconds": percentile(values, 0.9),
    }


def _count(
    connection: Connection, key: Column[Any], at: Column[Any], since: datetime, now: datetime
) -> Counter[str]:
    """Rows per ``key`` whose ``at`` falls in the window."""
    query = select(key, func.count()).where(at >= since, at <= now).group_by(key)
    return Counter({str(value): int(count) for value, count in connection.execute(query)})
