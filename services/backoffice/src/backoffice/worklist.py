"""A member of staff's work as the inbox page shows it: every department they work for in one
list, counts per department, deadlines in words, and the markers that say what is new."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from kcc_shared.auth import Principal
from kcc_shared.dutch_time import LOCAL, business_left, deadline
from kcc_shared.events import OPEN_STATES

from backoffice.errors import BadFilter, UnknownInbox
from backoffice.inbox import Item, Sla, deadline_of
from backoffice.service import BackofficeContext, check_department

# The quick filters on SLA state, as they appear in the address bar (Dutch, readable).
SLA_FILTERS: Final = {"te-laat": "overdue", "bijna-te-laat": "warning"}
SLA_WORDS: Final = {"on_time": "Op tijd", "warning": "Bijna te laat", "overdue": "Te laat"}
# What the newest work event says to the person opening the inbox.
MARKERS: Final = {
    ("request.routed", "waiting"): "nieuw",
    ("request.clarified", "claimed"): "nieuwe informatie",
    ("request.reopened", "waiting"): "heropend",
}


@dataclass(frozen=True)
class Deadline:
    """The deadline that matters now, said as what it is and how much business time is left."""

    state: str  # on_time / warning / overdue
    label: str  # Op tijd / Bijna te laat / Te laat (text, not only colour)
    text: str  # "Eerste reactie uiterlijk vandaag vóór 12:00"
    left: str  # "nog 2 werkuur", "35 werkminuten te laat", or that the clock is paused
    due: datetime


@dataclass(frozen=True)
class Row:
    item: Item
    department_name: str
    deadline: Deadline | None
    marker: str | None  # nieuw / nieuwe informatie / heropend
    answered_before: bool  # reopened after the viewer's own answer: theirs to pick up first
    # The suggested group of similar questions it is in (request ids, in order of arrival;
    # empty when in none): shown together, answered once.
    group: tuple[str, ...] = ()

    @property
    def group_first(self) -> bool:
        return bool(self.group) and self.group[0] == self.item.request_id


@dataclass(frozen=True)
class DepartmentCount:
    id: str
    name: str
    open: int
    overdue: int
    warning: int


@dataclass(frozen=True)
class Worklist:
    department: str | None  # None: all the viewer's departments
    mine: list[Row]  # held by the viewer, and reopened after their answer (those first)
    queue: list[Row]  # everything else that matches the filters, earliest deadline first
    counts: list[DepartmentCount]  # per department of the viewer, unfiltered
    scope: DepartmentCount  # the department shown (or all of them), unfiltered


def departments_of(viewer: Principal, ctx: BackofficeContext) -> list[str]:
    """The departments a person sees, in the order of their names (operators: all)."""
    org = ctx.organisation
    ids = org.departments if viewer.is_operator else viewer.departments
    return sorted((d for d in ids if d in org.departments), key=lambda d: org.departments[d].name)


def deadline_in_words(sla: Sla, item: Item, ctx: BackofficeContext, now: datetime) -> Deadline:
    """'Eerste reactie uiterlijk vandaag vóór 12:00, nog 2 werkuur' in the department's
    business time (a clarification pause moves the deadline and stops the clock)."""
    what = "Eerste reactie" if sla.clock == "first_response" else "Afhandelen"
    when = deadline(sla.due, LOCAL, now)
    if item.state == "awaiting_clarification":
        left = "klok staat stil tot het KCC antwoordt"
    else:
        calendar = ctx.organisation.calendar_for(item.department or "")
        if now < sla.due:
            left = business_left(calendar.business_seconds_between(now, sla.due))
        else:
            left = business_left(-calendar.business_seconds_between(sla.due, now))
    return Deadline(sla.state, SLA_WORDS[sla.state], f"{what} {when}", left, sla.due)


def build(
    ctx: BackofficeContext,
    viewer: Principal,
    *,
    department: str | None = None,
    sla_filter: str | None = None,
    priority: str | None = None,
    states: Sequence[str] = (),
) -> Worklist:
    """The page's work list. Raises NotYourDepartment/UnknownInbox for a department the viewer
    may not see, BadFilter for an unknown quick filter."""
    if sla_filter is not None and sla_filter not in SLA_FILTERS:
        raise BadFilter(f"Het filter '{sla_filter}' bestaat niet; kies Te laat of Bijna te laat.")
    if department is not None:
        if department not in ctx.organisation.departments:
            raise UnknownInbox(department)  # said as such: department ids are no secret
        check_department(viewer, department, ctx.organisation)
    mine_ids = departments_of(viewer, ctx)
    now = ctx.clock()
    org = ctx.organisation
    wanted = list(states) or list(OPEN_STATES)
    # Open items of every department of the viewer (for the counts), plus any other state
    # asked for in the department(s) shown.
    items = ctx.store.items_in(mine_ids, sorted(set(wanted) | set(OPEN_STATES)))
    latest = ctx.store.latest_work_events([i.request_id for i in items])
    grouped = ctx.groups(mine_ids)
    rows: list[Row] = []
    for item in items:
        sla = ctx.sla(item, now)
        rows.append(
            Row(
                item=item,
                department_name=org.departments[item.department or ""].name,
                deadline=deadline_in_words(sla, item, ctx, now) if sla else None,
                marker=MARKERS.get((latest.get(item.request_id, ""), item.state)),
                answered_before=(
                    item.state == "waiting"
                    and item.answered_by == viewer.user_id
                    and latest.get(item.request_id) == "request.reopened"
                ),
                group=tuple(grouped.get(item.request_id, ())),
            )
        )

    def count(department_id: str | None) -> DepartmentCount:
        open_rows = [
            r
            for r in rows
            if r.item.is_open and (department_id is None or r.item.department == department_id)
        ]
        states_ = [r.deadline.state for r in open_rows if r.deadline]
        name = org.departments[department_id].name if department_id else "Alle afdelingen"
        return DepartmentCount(
            department_id or "",
            name,
            len(open_rows),
            states_.count("overdue"),
            states_.count("warning"),
        )

    shown = [
        r
        for r in rows
        if (department is None or r.item.department == department)
        and r.item.state in wanted
        and (priority is None or r.item.priority == priority)
        and (
            sla_filter is None
            or (r.deadline is not None and r.deadline.state == SLA_FILTERS[sla_filter])
        )
    ]
    shown.sort(key=_order(now))
    mine = [r for r in shown if r.answered_before] + [
        r for r in shown if r.item.claimed_by == viewer.user_id and r.item.is_open
    ]
    taken = {r.item.request_id for r in mine}
    return Worklist(
        department=department,
        mine=together(mine),
        queue=together([r for r in shown if r.item.request_id not in taken]),
        counts=[count(d) for d in mine_ids],
        scope=count(department),
    )


def together(rows: list[Row]) -> list[Row]:
    """The rows in their order, except that the members of a group follow the first of them
    that is listed (grouped questions are seen, and answered, together)."""
    placed: set[str] = set()
    ordered: list[Row] = []
    by_id = {r.item.request_id: r for r in rows}
    for row in rows:
        if row.item.request_id in placed:
            continue
        members = [by_id[m] for m in row.group if m in by_id] if row.group else [row]
        if row not in members:
            members.insert(0, row)
        for member in members:
            if member.item.request_id not in placed:
                placed.add(member.item.request_id)
                ordered.append(member)
    return ordered


def _order(now: datetime) -> Callable[[Row], tuple[int, datetime, str]]:

    latest = datetime.max.replace(tzinfo=now.tzinfo)

    def key(row: Row) -> tuple[int, datetime, str]:
        due = row.deadline.due if row.deadline else deadline_of(row.item)
        # Open work first by deadline; closed items (no SLA) after, by their deadline.
        return (0 if row.deadline else 1, due or latest, row.item.request_id)

    return key
