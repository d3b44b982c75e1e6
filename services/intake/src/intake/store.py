"""The agents' requests with their timeline, update feed and outbox rows, in one transaction."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from kcc_shared.auth import Principal
from kcc_shared.consumer import processed_events_table
from kcc_shared.db import UtcDateTime, is_postgres, write
from kcc_shared.dutch_time import LOCAL
from kcc_shared.events import Actor, Event, TimelineEntry, new_event
from kcc_shared.migrations import require_current
from kcc_shared.outbox import Clock, Outbox, outbox_table, utcnow
from kcc_shared.privacy import redact_bsn
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError

from intake import knowledge
from intake.errors import (
    IdempotencyKeyReused,
    NotAwaitingClarification,
    NotRateable,
    NotRequestOwner,
    RequestNotCancellable,
    RequestNotFound,
)
from intake.migrations import HISTORY
from intake.reference import Reference
from intake.view import (
    OPEN,
    NewRequest,
    Page,
    Rating,
    Request,
    Submission,
    fold,
    order_key,
)

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
    # from a mistake (same key, different body). The column holds the key's SHA-256 (hex),
    # never the key a client sent (see `key_digest`).
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

# The agents' update feed: one row per timeline entry, numbered in commit order. The live
# stream follows it by `seq` (the SSE event id), so a reconnect resumes exactly where it left.
updates_table = Table(
    "agent_updates",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("agent_id", String(64), nullable=False),
    Column("request_id", String(36), ForeignKey("requests.id"), nullable=False),
    Column("event_id", String(36), ForeignKey("timeline.event_id"), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_agent_updates_agent_seq", "agent_id", "seq"),
    # Note: without AUTOINCREMENT SQLite may reuse the highest seq after a delete.
    sqlite_autoincrement=True,
)

# The short reference read out on the phone (intake/reference.py): one per request, given at
# filing. Its own table: a database from before references gains it in migration 0002
# (intake/migrations), which gives its requests theirs, oldest first.
references_table = Table(
    "request_references",
    metadata,
    Column("request_id", String(36), ForeignKey("requests.id"), primary_key=True),
    Column("year", Integer, nullable=False),
    Column("number", Integer, nullable=False),
    Column("reference", String(24), nullable=False, unique=True),
    UniqueConstraint("year", "number", name="uq_request_references_year_number"),
)
# The last number handed out per year. Taking the next one updates this row, which locks it
# until commit (PostgreSQL; SQLite writers are serialised anyway): concurrent filings get
# distinct, gapless numbers, and a rolled-back filing gives its number back.
reference_counters = Table(
    "reference_counters",
    metadata,
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last", Integer, nullable=False),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)

# Held (transaction-scoped) from the insert of a transaction's feed rows until commit: on
# PostgreSQL a sequence hands out numbers at insert, not at commit, so without it seq 12 could
# become visible before seq 11 and a stream that already sent 12 would never send 11. Every
# writer inserts its feed rows last, so the lock is held only for that and the commit (SQLite
# writers are serialised anyway).
_FEED_LOCK_KEY = 0x4B4343_0001
_BACKFILL_LOCK_KEY = 0x4B4343_0002
# A filing retried after losing the race for a new year's counter row (see _assign_reference).
_FILING_ATTEMPTS = 3


# What of an event's data the agent's timeline shows: what the agent needs to follow the
# request (and what the view's rules read), never the question again nor the routing internals.
_TIMELINE_DETAILS: dict[str, tuple[str, ...]] = {
    "request.submitted": ("priority", "channel", "category"),
    "request.routed": (
        "department",
        # The priority the department's clocks run on (a rule may have raised it).
        "priority",
        "from_department",
        "handoff_count",
        "reason",
        "first_response_due",
        "resolution_due",
        # Why, for the agent: a Dutch sentence, similar earlier questions, who decided and
        # how sure (the desk shows the sentence, never `reason`, a code).
        "explanation",
        "similar",
        "decider",
        "confidence",
    ),
    "request.claimed": ("department", "staff_id"),
    "request.released": ("department", "staff_id"),
    "request.clarification_requested": ("department", "text"),
    "request.clarified": ("text",),
    "request.answered": ("department", "staff_id", "answer"),
    "request.reroute_requested": ("from_department", "to_department", "reason"),
    "request.reopened": ("department", "reason"),
    "request.cancelled": ("reason",),
    "request.rated": ("score", "thanks", "comment", "department"),
    "request.sla_warning": ("department", "clock"),
    "request.sla_breached": ("department", "clock"),
}
# Free text written by people (or quoting them: the routing's explanation and similar
# questions): redacted again on the way in (a second line of defence; the service that
# accepted the text redacted it first).
_FREE_TEXT = frozenset({"text", "answer", "reason", "comment", "explanation", "similar"})


class RequestStore:
    """Reads and writes requests; every write also queues its event in the outbox."""

    def __init__(self, engine: Engine, clock: Clock = utcnow) -> None:
        self.engine = engine
        self._clock = clock
        self.outbox = Outbox(outbox, clock)

    def create_schema(self) -> None:
        # The tables are the migrations' (migrations/): refuse a database that is behind.
        require_current(self.engine, HISTORY)
        self._backfill_references()

    def now(self) -> datetime:
        return self._clock()

    def _backfill_references(self) -> None:
        """Give requests filed before references existed theirs, oldest first (one pass)."""
        t, r = requests_table, references_table
        with write(self.engine) as connection:
            if is_postgres(self.engine):
                # Workers starting at once: one gives the numbers, the others then find none.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _BACKFILL_LOCK_KEY}
                )
            rows = connection.execute(
                select(t.c.id, t.c.created_at)
                .select_from(t.outerjoin(r, r.c.request_id == t.c.id))
                .where(r.c.request_id.is_(None))
                .order_by(t.c.created_at, t.c.id)
            ).all()
            for row in rows:
                self._assign_reference(connection, row.id, row.created_at)

    def _assign_reference(self, connection: Connection, request_id: str, filed: datetime) -> str:
        """The next number of the filing's year (Dutch time), stored for the request."""
        year = filed.astimezone(LOCAL).year
        c = reference_counters
        taken = connection.execute(
            update(c).where(c.c.year == year).values(last=c.c.last + 1)
        ).rowcount
        if taken == 0:
            # The year's first: a concurrent first filing makes one of the two inserts fail
            # (primary key) and that filing is retried by the caller as a whole.
            connection.execute(insert(c).values(year=year, last=1))
        number = connection.execute(select(c.c.last).where(c.c.year == year)).scalar_one()
        reference = str(Reference(year, int(number)))
        connection.execute(
            insert(references_table).values(
                request_id=request_id, year=year, number=number, reference=reference
            )
        )
        return reference

    def submit(
        self, agent: Principal, new: NewRequest, idempotency_key: str | None = None
    ) -> Submission:
        fingerprint = new.fingerprint()
        if idempotency_key is not None:
            existing = self._by_idempotency_key(agent.user_id, idempotency_key)
            if existing is not None:
                return self._replay(existing, fingerprint)
        digest = key_digest(idempotency_key) if idempotency_key is not None else None
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
        for attempt in range(_FILING_ATTEMPTS):
            try:
                reference = self._file(request_id, agent, new, now, digest, fingerprint, event)
                break
            except IntegrityError:
                # A concurrent retry with the same key won the race: answer with its request.
                existing = (
                    self._by_idempotency_key(agent.user_id, idempotency_key)
                    if idempotency_key is not None
                    else None
                )
                if existing is not None:
                    return self._replay(existing, fingerprint)
                # Else two first filings of a year raced for its counter row: file again.
                if attempt == _FILING_ATTEMPTS - 1:
                    raise
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
            reference=reference,
            timeline=[_timeline_entry(event)],
        )
        return Submission(request, replayed=False)

    def _file(
        self,
        request_id: str,
        agent: Principal,
        new: NewRequest,
        now: datetime,
        digest: str | None,
        fingerprint: str,
        event: Event,
    ) -> str:
        """One transaction: the request, its reference, its timeline entry and outbox row."""
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
                    idempotency_key=digest,
                    fingerprint=fingerprint,
                )
            )
            reference = self._assign_reference(connection, request_id, now)
            self._feed(connection, [self._record(connection, event, agent.user_id)])
        return reference

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
        # Rows stored before keys were hashed hold the key itself: a retry that spans the
        # upgrade still finds its request (no migration needed; the index serves both).
        stored = (key_digest(key), key)
        with self.engine.connect() as connection:
            row = connection.execute(
                select(t.c.id, t.c.fingerprint)
                .where(t.c.agent_id == agent_id, t.c.idempotency_key.in_(stored))
                .order_by(t.c.created_at)
            ).first()
        return (row.id, row.fingerprint) if row is not None else None

    def _record(
        self, connection: Connection, event: Event, agent_id: str, *, publish: bool = True
    ) -> dict[str, Any]:
        """Add the event to the timeline and the outbox (if ours); return its row of the agent's
        update feed, for `_feed` at the end of the transaction."""
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
        if publish:
            self.outbox.add(connection, [event])
        return {
            "agent_id": agent_id,
            "request_id": event.request_id,
            "event_id": event.id,
            "created_at": self._clock(),
        }

    def _feed(self, connection: Connection, rows: list[dict[str, Any]]) -> None:
        """The transaction's feed rows, last before its commit (the lock is held until then)."""
        if rows:
            self._lock_feed(connection)
            connection.execute(insert(updates_table), rows)

    def _refold(self, connection: Connection, request_id: str) -> None:
        """Recompute status, department and answer from the whole timeline (see view.py)."""
        view = fold(_load_timeline(connection, request_id))
        connection.execute(
            update(requests_table)
            .where(requests_table.c.id == request_id)
            .values(
                status=view.status,
                department=view.department,
                answer=view.answer,
                updated_at=self._clock(),
            )
        )

    def get(self, request_id: str, viewer: Principal | None = None) -> Request:
        """The request with its timeline; RequestNotFound if absent or not the viewer's."""
        t = requests_table
        with self.engine.connect() as connection:
            row = connection.execute(_with_reference().where(t.c.id == request_id)).first()
            if row is None or (viewer is not None and not _may_view(viewer, row)):
                raise RequestNotFound()
            timeline = _load_timeline(connection, request_id)
        request = _request(row)
        return Request(**{**request.__dict__, "timeline": timeline})

    def list(
        self,
        viewer: Principal,
        *,
        scope: str = "mine",
        statuses: Sequence[str] = (),
        excluded: Sequence[str] = (),
        priority: str | None = None,
        text: str | None = None,
        reference: Reference | None = None,
        citizen_ref: str | None = None,
        page: int = 1,
        page_size: int = 25,
    ) -> Page:
        """Newest first, each with its timeline (what the expected answer time is read from).

        ``text`` finds the words in the question or the citizen reference (any case),
        ``reference`` one request by its reference, ``citizen_ref`` by that reference exactly.
        """
        t, r = requests_table, references_table
        query = _with_reference()
        if scope == "all" and viewer.is_operator:
            pass
        elif scope == "team" and viewer.team is not None:
            query = query.where(t.c.team == viewer.team)
        else:
            query = query.where(t.c.agent_id == viewer.user_id)
        if statuses:
            query = query.where(t.c.status.in_(statuses))
        if excluded:
            query = query.where(t.c.status.not_in(excluded))
        if priority:
            query = query.where(t.c.priority == priority)
        if reference is not None:
            query = query.where(r.c.year == reference.year, r.c.number == reference.number)
        if citizen_ref:
            query = query.where(t.c.citizen_ref == citizen_ref)
        if text:
            words = text.lower()
            query = query.where(
                func.lower(t.c.question).contains(words, autoescape=True)
                | func.lower(t.c.citizen_ref).contains(words, autoescape=True)
            )
        with self.engine.connect() as connection:
            total = connection.execute(
                select(func.count()).select_from(query.subquery())
            ).scalar_one()
            rows = connection.execute(
                query.order_by(t.c.created_at.desc(), t.c.id)
                .limit(page_size)
                .offset((page - 1) * page_size)
            ).all()
            timelines = _load_timelines(connection, [row.id for row in rows])
        items = [
            Request(**{**_request(row).__dict__, "timeline": timelines.get(row.id, [])})
            for row in rows
        ]
        return Page(items, int(total), page, page_size)

    def count(self, viewer: Principal, status: str, *, scope: str = "mine") -> int:
        """How many of the viewer's (or the team's) requests are in ``status``."""
        t = requests_table
        query = select(func.count()).select_from(t).where(t.c.status == status)
        if scope == "team" and viewer.team is not None:
            query = query.where(t.c.team == viewer.team)
        else:
            query = query.where(t.c.agent_id == viewer.user_id)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def cancel(self, request_id: str, agent: Principal, reason: str | None) -> Request:
        return self._agent_action(
            request_id,
            agent,
            "cancel it",
            "request.cancelled",
            {"reason": reason},
            allowed=lambda status: status in OPEN,
            refused=RequestNotCancellable,
        )

    def clarify(self, request_id: str, agent: Principal, answer: str) -> Request:
        """The department's clarification question answered (text already redacted).

        By the KCC-medewerker who filed it or a teammate (whose shift did not end): the
        event's actor says who answered.
        """
        return self._agent_action(
            request_id,
            agent,
            "answer its clarification question",
            "request.clarified",
            {"text": answer},
            allowed=lambda status: status == "awaiting_clarification",
            refused=NotAwaitingClarification,
            team=True,
        )

    def _agent_action(
        self,
        request_id: str,
        agent: Principal,
        action: str,
        event_type: str,
        data: dict[str, Any],
        *,
        allowed: Callable[[str], bool],
        refused: Callable[[str], Exception],
        team: bool = False,
    ) -> Request:
        """One event by the request's own agent (or, with ``team``, a teammate), if its status
        allows it, in one transaction."""
        with write(self.engine) as connection:
            row = self._owned(connection, request_id, agent, action, team=team)
            if not allowed(row.status):
                raise refused(row.status)
            event = new_event(
                event_type,
                request_id=request_id,
                actor=Actor("agent", agent.user_id),
                occurred_at=self._after_history(connection, request_id),
                data=data,
            )
            fed = self._record(connection, event, row.agent_id)
            self._refold(connection, request_id)
            self._feed(connection, [fed])
        return self.get(request_id)

    def rate(self, request_id: str, agent: Principal, rating: Rating) -> Request:
        """Rate the answer once; a low score with `reopen` sends it back to its department."""
        with write(self.engine) as connection:
            row = self._owned(connection, request_id, agent, "rate it")
            if row.status != "answered":
                raise NotRateable(row.status)
            now = self._after_history(connection, request_id)
            actor = Actor("agent", agent.user_id)
            events = [
                new_event(
                    "request.rated",
                    request_id=request_id,
                    actor=actor,
                    occurred_at=now,
                    data={
                        "score": rating.score,
                        "thanks": rating.thanks,
                        "comment": rating.comment,
                        "department": row.department,
                    },
                )
            ]
            if rating.reopen:
                events.append(
                    new_event(
                        "request.reopened",
                        request_id=request_id,
                        actor=actor,
                        occurred_at=now,
                        data={"reason": rating.comment, "department": row.department},
                    )
                )
            fed = [self._record(connection, event, row.agent_id) for event in events]
            self._refold(connection, request_id)
            self._feed(connection, fed)
        return self.get(request_id)

    def _after_history(self, connection: Connection, request_id: str) -> datetime:
        """Now, but never before the latest event the agent is responding to.

        The view orders events by occurred_at; another service's clock running a little ahead
        must not put the agent's answer before the question it answers.
        """
        latest = connection.execute(
            select(func.max(timeline_table.c.occurred_at)).where(
                timeline_table.c.request_id == request_id
            )
        ).scalar()
        now = self._clock()
        if latest is None:
            return now
        latest = _utc(latest)
        return max(now, latest + timedelta(milliseconds=1))

    def _owned(
        self,
        connection: Connection,
        request_id: str,
        agent: Principal,
        action: str,
        *,
        team: bool = False,
    ) -> Any:
        t = requests_table
        # FOR UPDATE: the event consumer may change the status concurrently (PostgreSQL).
        row = connection.execute(select(t).where(t.c.id == request_id).with_for_update()).first()
        if row is None or not _may_view(agent, row):
            raise RequestNotFound()
        if row.agent_id == agent.user_id or (team and agent.role == "agent"):
            # _may_view let an agent through: it is theirs or their team's.
            return row
        who = (
            "the agent who filed the request or a teammate"
            if team
            else "the agent who filed the request"
        )
        raise NotRequestOwner(f"only {who} can {action}")

    # -- the consumer's side ----------------------------------------------------------------

    def apply_events(self, connection: Connection, events: Sequence[Event]) -> dict[str, str]:
        """Apply a batch of consumed events to the agents' view in the consumer's transaction.

        Returns what happened to each event id: `applied`, `recorded` (our own event coming
        back: already in the timeline) or `unknown_request` (filed elsewhere; nothing to show
        to anyone here). The knowledge base's changes and the feed rows come last: the feed
        lock they take is then held for those and the commit, not through the whole batch.
        """
        outcomes: dict[str, str] = {}
        fed: list[dict[str, Any]] = []
        knowledge_changes: list[tuple[Event, Any]] = []
        t = requests_table
        for event in events:
            row = connection.execute(
                select(t.c.id, t.c.agent_id, t.c.question, t.c.category, t.c.answer, t.c.department)
                .where(t.c.id == event.request_id)
                .with_for_update()
            ).first()
            if row is None:
                outcomes[event.id] = "unknown_request"
            elif event.type == "request.answer_reused":
                # The desk's own use of an answer coming back: counted when it was recorded.
                outcomes[event.id] = "recorded"
            elif event.type in knowledge.KNOWLEDGE_EVENTS:
                # A department's reuse decision: the knowledge base's, not the timeline's.
                knowledge_changes.append((event, row))
                outcomes[event.id] = "applied"
            elif connection.execute(
                select(timeline_table.c.event_id).where(timeline_table.c.event_id == event.id)
            ).first():
                outcomes[event.id] = "recorded"
            else:
                if event.type == "request.answered":
                    knowledge_changes.append((event, row))
                fed.append(self._record(connection, event, row.agent_id, publish=False))
                self._refold(connection, event.request_id)
                outcomes[event.id] = "applied"
        for event, row in knowledge_changes:
            knowledge.apply(connection, event, row, self._lock_feed)
        self._feed(connection, fed)
        return outcomes

    def _lock_feed(self, connection: Connection) -> None:
        """Hold the feed lock until commit (PostgreSQL; SQLite writers are serialised).

        The knowledge base's change sequence shares it: one lock, so no two transactions can
        ever wait for each other's second lock."""
        if is_postgres(self.engine):
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FEED_LOCK_KEY})


def key_digest(idempotency_key: str) -> str:
    """What is stored for an Idempotency-Key: its SHA-256 in hex. A key is the client's text
    and may hold anything; a retry only needs to be recognised, not read back."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


def _timeline_entry(event: Event) -> TimelineEntry:
    details: dict[str, Any] = {}
    for key in _TIMELINE_DETAILS.get(event.type, ()):
        value = event.data.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        elif key in _FREE_TEXT and isinstance(value, str):
            value = redact_bsn(value)[0]
        elif key in _FREE_TEXT and isinstance(value, list):
            value = [redact_bsn(v)[0] if isinstance(v, str) else v for v in value]
        details[key] = value
    return TimelineEntry(
        event_id=event.id,
        type=event.type,
        occurred_at=event.occurred_at,
        actor={"kind": event.actor.kind, "id": event.actor.id},
        details=details,
    )


def _load_timeline(connection: Connection, request_id: str) -> list[TimelineEntry]:
    tl = timeline_table
    rows = connection.execute(
        select(tl).where(tl.c.request_id == request_id).order_by(tl.c.occurred_at, tl.c.event_id)
    ).all()
    # The view's order: same moment → lifecycle order (rated before reopened), then id.
    return sorted((_entry(r) for r in rows), key=order_key)


def _load_timelines(
    connection: Connection, request_ids: Sequence[str]
) -> dict[str, list[TimelineEntry]]:
    """The timelines of several requests in one query."""
    if not request_ids:
        return {}
    tl = timeline_table
    rows = connection.execute(select(tl).where(tl.c.request_id.in_(request_ids))).all()
    grouped: dict[str, list[TimelineEntry]] = {}
    for row in rows:
        grouped.setdefault(row.request_id, []).append(_entry(row))
    return {key: sorted(entries, key=order_key) for key, entries in grouped.items()}


def _with_reference() -> Any:
    """Requests with their reference (outer join: one whose filing is being written has none)."""
    t, r = requests_table, references_table
    return select(t, r.c.reference).select_from(t.outerjoin(r, r.c.request_id == t.c.id))


def _entry(row: Any) -> TimelineEntry:
    return TimelineEntry(
        event_id=row.event_id,
        type=row.type,
        occurred_at=row.occurred_at,
        actor={"kind": row.actor_kind, "id": row.actor_id},
        details=json.loads(row.details),
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
        reference=getattr(row, "reference", None),
    )


def _utc(moment: Any) -> datetime:
    # func.max() bypasses the column type: SQLite hands back text, PostgreSQL an aware datetime.
    value: datetime = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
