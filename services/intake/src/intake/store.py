"""The agents' requests: stored with their timeline and outbox row in one transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kcc_shared.auth import Principal
from kcc_shared.db import UtcDateTime, write
from kcc_shared.events import Actor, Event, new_event
from kcc_shared.outbox import Clock, Outbox, outbox_table, utcnow
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

metadata = MetaData()

requests_table = Table(
    "requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("agent_id", String(64), nullable=False),
    Column("team", String(64), nullable=True),
    Column("question", Text, nullable=False),
    Column("category", String(64), nullable=True),
    Column("priority", String(16), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("citizen_ref", String(64), nullable=True),
    Column("tags", Text, nullable=False, default="[]"),
    Column("status", String(32), nullable=False),
    Column("department", String(64), nullable=True),
    Column("answer", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Idempotency: one request per (agent, key); the fingerprint tells a retry (same body)
    # from a mistake (same key, different body).
    Column("idempotency_key", String(200), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    UniqueConstraint("agent_id", "idempotency_key", name="uq_requests_idempotency"),
    Index("ix_requests_agent_created", "agent_id", "created_at"),
    Index("ix_requests_team_created", "team", "created_at"),
)

timeline_table = Table(
    "timeline",
    metadata,
    # The event id is the key: a redelivered event cannot appear twice in a timeline.
    Column("event_id", String(36), primary_key=True),
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
    Column("type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("details", Text, nullable=False, default="{}"),
    Index("ix_timeline_request", "request_id", "occurred_at"),
)

outbox = outbox_table(metadata)

OPEN_STATUSES = ("submitted", "routed", "claimed", "awaiting_clarification")


class RequestNotFound(LookupError):
    """No such request, or not one the caller may see (the two are not told apart)."""


class IdempotencyKeyReused(ValueError):
    """The Idempotency-Key was used before for a request with different content."""


class RequestNotCancellable(ValueError):
    """The request is already answered, closed or cancelled."""

    def __init__(self, status: str) -> None:
        super().__init__(f"the request is {status} and can no longer be cancelled")
        self.status = status


class NotRequestOwner(PermissionError):
    """Only the agent who filed a request may act on it."""


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
        canonical = json.dumps(
            {
                "question": self.question,
                "category": self.category,
                "priority": self.priority,
                "channel": self.channel,
                "citizen_ref": self.citizen_ref,
                "tags": list(self.tags),
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class TimelineEntry:
    event_id: str
    type: str
    occurred_at: datetime
    actor: Mapping[str, str]
    details: Mapping[str, Any]


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


# What of an event's data the agent's timeline shows (never the full question again).
_TIMELINE_DETAILS = {
    "request.submitted": ("priority", "channel", "category"),
    "request.cancelled": ("reason",),
}


class RequestStore:
    """Reads and writes requests; every write also queues its event in the outbox."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self._clock = clock
        self.outbox = Outbox(outbox, clock)

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    def submit(
        self, agent: Principal, new: NewRequest, idempotency_key: str | None = None
    ) -> Submission:
        fingerprint = new.fingerprint()
        if idempotency_key is not None:
            existing = self._by_idempotency_key(agent.user_id, idempotency_key)
            if existing is not None:
                return self._replay(existing, fingerprint)
        request_id = str(uuid.uuid4())
        now = self._clock()
        event = new_event(
            "request.submitted",
            request_id=request_id,
            actor=Actor("agent", agent.user_id),
            occurred_at=now,
            data={
                "question": new.question,
                "category": new.category,
                "priority": new.priority,
                "channel": new.channel,
                "agent_id": agent.user_id,
                "team": agent.team,
                "citizen_ref": new.citizen_ref,
                "tags": list(new.tags),
            },
        )
        try:
            with write(self.engine) as connection:
                connection.execute(
                    insert(requests_table).values(
                        id=request_id,
                        agent_id=agent.user_id,
                        team=agent.team,
                        question=new.question,
                        category=new.category,
                        priority=new.priority,
                        channel=new.channel,
                        citizen_ref=new.citizen_ref,
                        tags=json.dumps(list(new.tags)),
                        status="submitted",
                        created_at=now,
                        updated_at=now,
                        idempotency_key=idempotency_key,
                        fingerprint=fingerprint,
                    )
                )
                self._record(connection, event)
        except IntegrityError:
            # A concurrent retry with the same key won the race: answer with its request.
            if idempotency_key is None:
                raise
            existing = self._by_idempotency_key(agent.user_id, idempotency_key)
            if existing is None:
                raise
            return self._replay(existing, fingerprint)
        # Built from what was just written: re-reading would cost two more queries per POST.
        request = Request(
            id=request_id,
            agent_id=agent.user_id,
            team=agent.team,
            question=new.question,
            category=new.category,
            priority=new.priority,
            channel=new.channel,
            citizen_ref=new.citizen_ref,
            tags=list(new.tags),
            status="submitted",
            department=None,
            answer=None,
            created_at=now,
            updated_at=now,
            timeline=[_timeline_entry(event)],
        )
        return Submission(request, replayed=False)

    def _replay(self, existing: tuple[str, str], fingerprint: str) -> Submission:
        request_id, stored_fingerprint = existing
        if stored_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used for a different request; "
                "use a new key for a new question"
            )
        return Submission(self.get(request_id), replayed=True)

    def _by_idempotency_key(self, agent_id: str, key: str) -> tuple[str, str] | None:
        t = requests_table
        with self.engine.connect() as connection:
            row = connection.execute(
                select(t.c.id, t.c.fingerprint).where(
                    t.c.agent_id == agent_id, t.c.idempotency_key == key
                )
            ).first()
        return (row.id, row.fingerprint) if row is not None else None

    def _record(self, connection: Connection, event: Event) -> None:
        """Add the event to the request's timeline and to the outbox, in the caller's tx."""
        entry = _timeline_entry(event)
        connection.execute(
            insert(timeline_table).values(
                event_id=entry.event_id,
                request_id=event.request_id,
                type=entry.type,
                occurred_at=entry.occurred_at,
                actor_kind=event.actor.kind,
                actor_id=event.actor.id,
                details=json.dumps(entry.details),
            )
        )
        self.outbox.add(connection, [event])

    def get(self, request_id: str, viewer: Principal | None = None) -> Request:
        """The request with its timeline; RequestNotFound if absent or not the viewer's."""
        t = requests_table
        with self.engine.connect() as connection:
            row = connection.execute(select(t).where(t.c.id == request_id)).first()
            if row is None or (viewer is not None and not _may_view(viewer, row)):
                raise RequestNotFound(request_id)
            tl = timeline_table
            entries = connection.execute(
                select(tl)
                .where(tl.c.request_id == request_id)
                .order_by(tl.c.occurred_at, tl.c.event_id)
            ).all()
        request = _request(row)
        timeline = [
            TimelineEntry(
                event_id=e.event_id,
                type=e.type,
                occurred_at=e.occurred_at,
                actor={"kind": e.actor_kind, "id": e.actor_id},
                details=json.loads(e.details),
            )
            for e in entries
        ]
        return Request(**{**request.__dict__, "timeline": timeline})

    def list(
        self,
        viewer: Principal,
        *,
        scope: str = "mine",
        statuses: Sequence[str] = (),
        priority: str | None = None,
        page: int = 1,
        page_size: int = 25,
    ) -> Page:
        t = requests_table
        query = select(t)
        if scope == "all" and viewer.is_operator:
            pass
        elif scope == "team" and viewer.team is not None:
            query = query.where(t.c.team == viewer.team)
        else:
            query = query.where(t.c.agent_id == viewer.user_id)
        if statuses:
            query = query.where(t.c.status.in_(statuses))
        if priority:
            query = query.where(t.c.priority == priority)
        with self.engine.connect() as connection:
            total = connection.execute(
                select(func.count()).select_from(query.subquery())
            ).scalar_one()
            rows = connection.execute(
                query.order_by(t.c.created_at.desc(), t.c.id)
                .limit(page_size)
                .offset((page - 1) * page_size)
            ).all()
        return Page([_request(r) for r in rows], int(total), page, page_size)

    def cancel(self, request_id: str, agent: Principal, reason: str | None) -> Request:
        t = requests_table
        now = self._clock()
        with write(self.engine) as connection:
            # FOR UPDATE: the event consumer may change the status concurrently (PostgreSQL).
            row = connection.execute(
                select(t).where(t.c.id == request_id).with_for_update()
            ).first()
            if row is None or not _may_view(agent, row):
                raise RequestNotFound(request_id)
            if row.agent_id != agent.user_id:
                raise NotRequestOwner("only the agent who filed the request can cancel it")
            if row.status not in OPEN_STATUSES:
                raise RequestNotCancellable(row.status)
            event = new_event(
                "request.cancelled",
                request_id=request_id,
                actor=Actor("agent", agent.user_id),
                occurred_at=now,
                data={"reason": reason},
            )
            connection.execute(
                update(t).where(t.c.id == request_id).values(status="cancelled", updated_at=now)
            )
            self._record(connection, event)
        return self.get(request_id)


def _timeline_entry(event: Event) -> TimelineEntry:
    keep = _TIMELINE_DETAILS.get(event.type, ())
    return TimelineEntry(
        event_id=event.id,
        type=event.type,
        occurred_at=event.occurred_at,
        actor={"kind": event.actor.kind, "id": event.actor.id},
        details={k: event.data[k] for k in keep if event.data.get(k) is not None},
    )


def _may_view(viewer: Principal, row: Any) -> bool:
    if viewer.is_operator:
        return True
    if viewer.role != "agent":
        return False
    return bool(row.agent_id == viewer.user_id or (viewer.team and row.team == viewer.team))


def _request(row: Any) -> Request:
    return Request(
        id=row.id,
        agent_id=row.agent_id,
        team=row.team,
        question=row.question,
        category=row.category,
        priority=row.priority,
        channel=row.channel,
        citizen_ref=row.citizen_ref,
        tags=json.loads(row.tags),
        status=row.status,
        department=row.department,
        answer=row.answer,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
