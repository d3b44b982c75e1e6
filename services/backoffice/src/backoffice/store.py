"""The inboxes: items with their timeline; every staff action and its event in one transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Final

from kcc_shared.auth import Principal
from kcc_shared.consumer import processed_events_table
from kcc_shared.db import UtcDateTime, create_schema, is_postgres, write
from kcc_shared.events import Actor, Event, new_event
from kcc_shared.organisation import Organisation
from kcc_shared.outbox import Clock, Outbox, outbox_table, utcnow
from kcc_shared.privacy import redact_bsn
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from backoffice.inbox import OPEN_STATES, InvalidTransition, Item, apply_event, next_state

metadata = MetaData()

items_table = Table(
    "items",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("state", String(32), nullable=False),
    Column("department", String(64), nullable=True),
    Column("question", Text, nullable=True),
    Column("category", String(64), nullable=True),
    Column("channel", String(16), nullable=True),
    Column("agent_id", String(64), nullable=True),
    Column("team", String(64), nullable=True),
    Column("priority", String(16), nullable=False),
    Column("handoff_count", Integer, nullable=False),
    Column("from_department", String(64), nullable=True),
    Column("routed_at", UtcDateTime, nullable=True),
    Column("first_response_due", UtcDateTime, nullable=True),
    Column("resolution_due", UtcDateTime, nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_at", UtcDateTime, nullable=True),
    Column("paused_since", UtcDateTime, nullable=True),
    Column("paused_seconds", Float, nullable=False),
    Column("clarification_question", Text, nullable=True),
    Column("answer", Text, nullable=True),
    Column("answered_by", String(64), nullable=True),
    Column("answered_at", UtcDateTime, nullable=True),
    Column("rating", Integer, nullable=True),
    Column("updated_at", UtcDateTime, nullable=True),
    Index("ix_items_department_state", "department", "state"),
)

timeline_table = Table(
    "timeline",
    metadata,
    # seq breaks ties between entries of the same instant: the order they were stored in.
    Column(
        "seq",
        Integer().with_variant(BigInteger(), "postgresql"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("request_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("details", Text, nullable=False),
    Index("ix_backoffice_timeline_request", "request_id", "occurred_at"),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)

_ITEM_FIELDS: Final = tuple(f.name for f in fields(Item))

# What of each event a member of staff sees in the timeline (all of it redacted already).
TIMELINE_DETAILS: Final[Mapping[str, tuple[str, ...]]] = {
    "request.submitted": ("priority", "channel", "category"),
    # `reason` is a code (never shown); people read `explanation` and `similar` (why it came
    # here, in Dutch, and similar earlier questions of the department).
    "request.routed": (
        "department",
        "from_department",
        "reason",
        "priority",
        "handoff_count",
        "explanation",
        "similar",
        "decider",
        "confidence",
    ),
    "request.claimed": ("department", "staff_id"),
    "request.released": ("department", "staff_id"),
    "request.answered": ("department", "staff_id", "answer"),
    "request.clarification_requested": ("department", "text"),
    "request.clarified": ("text",),
    "request.reroute_requested": ("from_department", "to_department", "reason"),
    "request.cancelled": ("reason",),
    "request.reopened": ("reason",),
    "request.rated": ("score", "thanks", "comment"),
}

# Free text written by people (the agent's, or staff of another department), or quoting them
# (the routing's explanation and similar questions).
FREE_TEXT: Final = frozenset({"text", "answer", "reason", "comment", "explanation", "similar"})

_ACTION_EVENTS: Final[Mapping[str, str]] = {
    "claim": "request.claimed",
    "release": "request.released",
    "answer": "request.answered",
    "clarification_request": "request.clarification_requested",
    "forward": "request.reroute_requested",
}


class ItemNotFound(LookupError):
    """No such item (or, for staff, not one of their departments: the two look the same)."""


class NotYourDepartment(PermissionError):
    """The item or inbox belongs to a department the person does not work for."""


class UnknownDepartment(ValueError):
    """A forward names a department the organisation does not have."""


@dataclass(frozen=True)
class TimelineEntry:
    event_id: str
    type: str
    occurred_at: datetime
    actor: Mapping[str, str]
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Action:
    """What a member of staff asks: the action and, for some, its text and target."""

    name: str
    text: str | None = None
    to_department: str | None = None


@dataclass(frozen=True)
class ActionResult:
    item: Item
    event: Event | None  # None: nothing changed (claiming what you already hold)


class InboxStore:
    """Reads and writes the inboxes; a staff action also queues its event in the outbox."""

    def __init__(self, engine: Engine, organisation: Organisation, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.organisation = organisation
        self._clock = clock
        self.outbox = Outbox(outbox, clock)

    def create_schema(self) -> None:
        create_schema(self.engine, metadata)

    # -- the consumer's handler ---------------------------------------------------------

    def apply(self, connection: Connection, event: Event) -> None:
        """Apply one event from the wire inside the consumer's transaction."""
        current = self._locked(connection, event.request_id)
        changed = apply_event(current, event, self._calendar_for)
        if changed.question is not None:
            # Redacted by the intake already; redacted again on the way in (a second line of
            # defence, as for every free text below).
            changed = replace(changed, question=redact_bsn(changed.question)[0])
        if current is None:
            connection.execute(insert(items_table).values(**_row(changed)))
        elif changed != current:
            connection.execute(
                update(items_table)
                .where(items_table.c.request_id == event.request_id)
                .values(**_row(changed))
            )
        self._timeline(connection, event)

    def _calendar_for(self, department: str) -> Any:
        if department not in self.organisation.departments:
            return None
        return self.organisation.calendar_for(department)

    # -- reads ----------------------------------------------------------------------------

    def get(self, request_id: str) -> Item:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(items_table).where(items_table.c.request_id == request_id)
            ).first()
        if row is None or row.state == "pending":
            raise ItemNotFound(request_id)
        return _item(row)

    def timeline(self, request_id: str) -> list[TimelineEntry]:
        t = timeline_table
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t).where(t.c.request_id == request_id).order_by(t.c.occurred_at, t.c.seq)
            ).all()
        return [
            TimelineEntry(
                event_id=r.event_id,
                type=r.type,
                occurred_at=r.occurred_at,
                actor={"kind": r.actor_kind, "id": r.actor_id},
                details=json.loads(r.details),
            )
            for r in rows
        ]

    def inbox(
        self,
        department: str,
        *,
        states: Sequence[str] = OPEN_STATES,
        priority: str | None = None,
        claimed_by: str | None = None,
    ) -> list[Item]:
        t = items_table
        query = select(t).where(t.c.department == department, t.c.state.in_(list(states)))
        if priority is not None:
            query = query.where(t.c.priority == priority)
        if claimed_by is not None:
            query = query.where(t.c.claimed_by == claimed_by)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [_item(r) for r in rows]

    def counts(self) -> dict[tuple[str, str], int]:
        """Items per (department, state): the metrics gauge."""
        t = items_table
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.department, t.c.state, func.count())
                .where(t.c.department.is_not(None))
                .group_by(t.c.department, t.c.state)
            ).all()
        return {(r[0], r[1]): int(r[2]) for r in rows}

    # -- staff actions --------------------------------------------------------------------

    def act(self, request_id: str, staff: Principal, action: Action) -> ActionResult:
        """Check the transition, change the item, add the timeline entry and the outbox row
        in one transaction. Raises ItemNotFound, NotYourDepartment, InvalidTransition,
        UnknownDepartment."""
        now = self._clock()
        with write(self.engine) as connection:
            item = self._locked(connection, request_id)
            if item is None or item.state == "pending":
                raise ItemNotFound(request_id)
            if item.department not in staff.departments:
                raise NotYourDepartment(request_id)
            target = next_state(item, action.name, staff.user_id)
            if target is None:
                return ActionResult(item, None)
            if action.name == "forward":
                self._check_forward(item, action)
            event = self._event(item, staff, action, now)
            changed = _after(item, target, staff.user_id, action, now)
            connection.execute(
                update(items_table)
                .where(items_table.c.request_id == request_id)
                .values(**_row(changed))
            )
            self._timeline(connection, event)
            self.outbox.add(connection, [event])
        return ActionResult(changed, event)

    def _check_forward(self, item: Item, action: Action) -> None:
        to = action.to_department
        if to is None:
            return
        if to not in self.organisation.departments:
            # The answer names no department: what was sent is not repeated back.
            raise UnknownDepartment("there is no department with this id")
        if to == item.department:
            raise UnknownDepartment("the request is already in this department")

    def _event(self, item: Item, staff: Principal, action: Action, now: datetime) -> Event:
        department = item.department
        assert department is not None
        data: dict[str, Any]
        if action.name in ("claim", "release"):
            data = {"department": department, "staff_id": staff.user_id}
        elif action.name == "answer":
            data = {"department": department, "staff_id": staff.user_id, "answer": action.text}
        elif action.name == "clarification_request":
            data = {"department": department, "text": action.text}
        else:
            # The router keeps no store: it gets what it needs to run the rules again.
            data = {
                "from_department": department,
                "to_department": action.to_department,
                "reason": action.text,
                "question": item.question,
                "category": item.category,
                "priority": item.priority,
                "handoff_count": max(item.handoff_count, 0),
            }
        return new_event(
            _ACTION_EVENTS[action.name],
            request_id=item.request_id,
            actor=Actor("staff", staff.user_id),
            occurred_at=now,
            data=data,
        )

    # -- helpers --------------------------------------------------------------------------

    def _locked(self, connection: Connection, request_id: str) -> Item | None:
        query = select(items_table).where(items_table.c.request_id == request_id)
        if is_postgres(self.engine):
            # The consumer and the API may change one item at once; SQLite's BEGIN IMMEDIATE
            # already serialises writers.
            query = query.with_for_update()
        row = connection.execute(query).first()
        return _item(row) if row is not None else None

    def _timeline(self, connection: Connection, event: Event) -> None:
        keep = TIMELINE_DETAILS.get(event.type, ())
        details = {
            k: _redacted(k, _plain(event.data[k])) for k in keep if event.data.get(k) is not None
        }
        connection.execute(
            insert(timeline_table).values(
                event_id=event.id,
                request_id=event.request_id,
                type=event.type,
                occurred_at=event.occurred_at,
                actor_kind=event.actor.kind,
                actor_id=event.actor.id,
                details=json.dumps(details, ensure_ascii=False),
            )
        )


def _after(item: Item, target: str, staff_id: str, action: Action, now: datetime) -> Item:
    changed = replace(item, state=target, updated_at=now)
    if action.name == "claim":
        return replace(changed, claimed_by=staff_id, claimed_at=now)
    if action.name == "release":
        return replace(changed, claimed_by=None, claimed_at=None)
    if action.name == "clarification_request":
        return replace(changed, paused_since=now, clarification_question=action.text)
    if action.name == "answer":
        return replace(
            changed, answer=action.text, answered_by=staff_id, answered_at=now, paused_since=None
        )
    return replace(changed, claimed_by=None, claimed_at=None, paused_since=None)  # forward


def _redacted(key: str, value: Any) -> Any:
    if key not in FREE_TEXT:
        return value
    if isinstance(value, list):
        return [redact_bsn(v)[0] if isinstance(v, str) else v for v in value]
    return redact_bsn(value)[0] if isinstance(value, str) else value


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _row(item: Item) -> dict[str, Any]:
    return {name: getattr(item, name) for name in _ITEM_FIELDS}


def _item(row: Any) -> Item:
    return Item(**{name: getattr(row, name) for name in _ITEM_FIELDS})


__all__ = [
    "Action",
    "ActionResult",
    "InboxStore",
    "InvalidTransition",
    "ItemNotFound",
    "NotYourDepartment",
    "TimelineEntry",
    "UnknownDepartment",
]
