"""The inboxes: items with their timeline; every staff action and its event in one transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, Final

from kcc_shared.auth import Principal
from kcc_shared.consumer import processed_events_table
from kcc_shared.db import UtcDateTime, is_postgres, write
from kcc_shared.events import OPEN_STATES, Actor, Event, TimelineEntry, new_event
from kcc_shared.migrations import require_current
from kcc_shared.organisation import Organisation
from kcc_shared.outbox import Clock, Outbox, outbox_table, utcnow
from kcc_shared.privacy import redact_bsn
from kcc_shared.similarity import answered_text, meaning
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
    func,
    insert,
    select,
    text,
    update,
)

from backoffice.errors import InvalidTransition, ItemNotFound, NotYourDepartment, UnknownDepartment
from backoffice.inbox import Item, apply_event, next_state
from backoffice.migrations import HISTORY

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
    # The newest answer is offered for reuse at the desk (request.answered / reuse_changed).
    Column("reusable", Boolean, nullable=False, server_default=false()),
    # Staff said "Niet samenvoegen": the item is never suggested in a group of duplicates.
    Column("kept_apart", Boolean, nullable=False, server_default=false()),
    # float32 meaning vectors (kcc_shared.similarity.meaning), each computed once: of the
    # redacted question when it arrives (duplicates), of question + answer when answered
    # (similar earlier questions).
    Column("question_vector", LargeBinary, nullable=True),
    Column("answer_vector", LargeBinary, nullable=True),
    # The change sequence each web process follows to keep its index of answered questions
    # current (backoffice.similar): the next number on every answer, in commit order.
    Column("answer_seq", Integer, nullable=True),
    Index("ix_items_department_state", "department", "state"),
    Index("ix_items_answer_seq", "answer_seq", unique=True),
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
# The advisory lock that orders answers' change numbers on PostgreSQL (a fixed number no
# other lock of this database uses).
_ANSWER_SEQ_LOCK_KEY: Final = 0x6B6363A5E0

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
    "request.answered": ("department", "staff_id", "answer", "reusable"),
    "request.reuse_changed": ("department", "staff_id", "reusable"),
    # A KCC-medewerker answered a citizen with this (earlier) answer, without a new question.
    "request.answer_reused": ("department", "team"),
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


# Events that change what someone must do with an item: the newest one gives its marker.
WORK_EVENTS: Final = frozenset(
    {
        "request.routed",
        "request.claimed",
        "request.released",
        "request.answered",
        "request.clarification_requested",
        "request.clarified",
        "request.reopened",
        "request.reroute_requested",
        "request.cancelled",
    }
)

# What the live stream announces: the work events, and the KCC's ratings (the thanks arrive).
LIVE_EVENTS: Final = WORK_EVENTS | {"request.rated"}


@dataclass(frozen=True)
class Change:
    """One timeline entry as the live stream announces it: no text, only what changed where."""

    seq: int
    request_id: str
    type: str
    state: str | None
    departments: frozenset[str]


@dataclass(frozen=True)
class Rating:
    """The KCC's score, thanks and comment on an answer, and who gave that answer."""

    request_id: str
    question: str | None
    score: int
    thanks: bool
    comment: str | None
    rated_at: datetime
    answered_by: str
    answered_at: datetime
    department: str | None
    reopened: bool


@dataclass(frozen=True)
class Forward:
    """A question a member of staff handed to another department, and what happened there."""

    request_id: str
    question: str | None
    from_department: str | None
    asked_department: str | None  # None: the routing rules chose
    reason: str | None
    forwarded_at: datetime
    arrived_department: str | None
    arrived_at: datetime | None
    claimed_at: datetime | None
    answered_at: datetime | None
    state: str


@dataclass(frozen=True)
class Answered:
    """An earlier answered question as staff see it beside a new one."""

    request_id: str
    department: str
    question: str
    answer: str
    answered_by: str | None
    answered_at: datetime | None
    reusable: bool


@dataclass(frozen=True)
class Reused:
    """How often the KCC answered a citizen with one of a department's reusable answers."""

    request_id: str
    question: str | None
    department: str | None
    answered_by: str | None
    times: int
    last_at: datetime


@dataclass(frozen=True)
class OpenQuestion:
    """An open item's question as the duplicate grouping compares it."""

    request_id: str
    arrived_at: datetime
    vector: bytes


@dataclass(frozen=True)
class Action:
    """What a member of staff asks: the action and, for some, its text and target."""

    name: str
    text: str | None = None
    to_department: str | None = None
    reusable: bool = False  # an answer offered for reuse at the desk


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
        # The tables are the migrations' (migrations/): refuse a database that is behind.
        require_current(self.engine, HISTORY)

    # -- the consumer's handler ---------------------------------------------------------

    def apply(self, connection: Connection, event: Event) -> None:
        """Apply one event from the wire inside the consumer's transaction."""
        if event.type == "request.answer_reused":
            # Only counted (in the timeline of the earlier, answered item): nothing to work on.
            self._timeline(connection, event)
            return
        current = self._locked(connection, event.request_id)
        changed = apply_event(current, event, self._calendar_for)
        if changed.question is not None:
            # Redacted by the intake already; redacted again on the way in (a second line of
            # defence, as for every free text below).
            changed = replace(changed, question=redact_bsn(changed.question)[0])
        values = _row(changed)
        if changed.question is not None and (
            current is None or current.question != changed.question
        ):
            # Its meaning, once, for the grouping of duplicates (of the redacted text only).
            values["question_vector"] = meaning([changed.question])[0]
        if current is None:
            connection.execute(insert(items_table).values(**values))
        elif changed != current:
            connection.execute(
                update(items_table)
                .where(items_table.c.request_id == event.request_id)
                .values(**values)
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

    def items_in(
        self, departments: Sequence[str], states: Sequence[str] = OPEN_STATES
    ) -> list[Item]:
        """The items of several departments at once (a member of staff's whole view)."""
        t = items_table
        query = select(t).where(t.c.department.in_(list(departments)), t.c.state.in_(list(states)))
        with self.engine.connect() as connection:
            return [_item(r) for r in connection.execute(query).all()]

    def latest_work_events(self, request_ids: Sequence[str]) -> dict[str, str]:
        """Per item the type of the newest event that changed its work (the 'nieuw' and
        'nieuwe informatie' markers are read from it; ratings and submits do not count)."""
        if not request_ids:
            return {}
        t = timeline_table
        latest: dict[str, str] = {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.request_id, t.c.type)
                .where(t.c.request_id.in_(list(request_ids)), t.c.type.in_(list(WORK_EVENTS)))
                .order_by(t.c.seq)
            ).all()
        for request_id, type_ in rows:
            latest[request_id] = type_
        return latest

    def last_timeline_seq(self) -> int:
        with self.engine.connect() as connection:
            value = connection.execute(select(func.max(timeline_table.c.seq))).scalar()
        return int(value or 0)

    def changes_after(self, seq: int, limit: int = 200) -> list[Change]:
        """Timeline entries after `seq`, in order, with the department each concerns now (the
        live stream's feed; entries of items not routed yet concern nobody)."""
        t, i = timeline_table, items_table
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.seq, t.c.request_id, t.c.type, t.c.details, i.c.department, i.c.state)
                .select_from(t.outerjoin(i, i.c.request_id == t.c.request_id))
                .where(t.c.seq > seq, t.c.type.in_(LIVE_EVENTS))
                .order_by(t.c.seq)
                .limit(limit)
            ).all()
        changes = []
        for r in rows:
            departments = {r.department} if r.department else set()
            if r.type in ("request.reroute_requested", "request.routed"):
                # The department it left hears of it too (its inbox drops the item).
                source = json.loads(r.details).get("from_department")
                if source:
                    departments.add(source)
            changes.append(
                Change(int(r.seq), r.request_id, r.type, r.state, frozenset(departments))
            )
        return changes

    def ratings(
        self,
        *,
        departments: Sequence[str] | None = None,
        answered_by: str | None = None,
        limit: int = 50,
    ) -> list[Rating]:
        """The newest ratings the KCC gave, each with who answered (the last answer before the
        rating): of the answers of `answered_by`, or of answers given in `departments`."""
        t, i = timeline_table, items_table
        query = select(t.c.seq, t.c.request_id).where(t.c.type == "request.rated")
        if answered_by is not None:
            mine = select(t.c.request_id).where(
                t.c.type == "request.answered", t.c.actor_id == answered_by
            )
            query = query.where(t.c.request_id.in_(mine))
        if departments is not None:
            query = query.where(
                t.c.request_id.in_(
                    select(i.c.request_id).where(i.c.department.in_(list(departments)))
                )
            )
        with self.engine.connect() as connection:
            rated = connection.execute(query.order_by(t.c.seq.desc()).limit(limit)).all()
            ids = sorted({r.request_id for r in rated})
            history = connection.execute(
                select(t)
                .where(
                    t.c.request_id.in_(ids),
                    t.c.type.in_(("request.answered", "request.rated", "request.reopened")),
                )
                .order_by(t.c.seq)
            ).all()
            questions = dict(
                connection.execute(
                    select(i.c.request_id, i.c.question).where(i.c.request_id.in_(ids))
                ).all()
            )
        by_request: dict[str, list[Any]] = {}
        for row in history:
            by_request.setdefault(row.request_id, []).append(row)
        found = []
        for seq, request_id in rated:
            entries = by_request.get(request_id, [])
            answer = None
            for entry in entries:
                if entry.type == "request.answered" and entry.seq < seq:
                    answer = entry
            rating = next(e for e in entries if e.seq == seq)
            if answer is None:
                continue  # a rating without an answer here: nothing to credit
            answer_details = json.loads(answer.details)
            department = answer_details.get("department")
            if answered_by is not None and answer.actor_id != answered_by:
                continue  # rated after someone else's (later) answer
            if departments is not None and department not in departments:
                continue
            details = json.loads(rating.details)
            found.append(
                Rating(
                    request_id=request_id,
                    question=questions.get(request_id),
                    score=int(details["score"]),
                    thanks=bool(details.get("thanks")),
                    comment=details.get("comment"),
                    rated_at=rating.occurred_at,
                    answered_by=answer.actor_id,
                    answered_at=answer.occurred_at,
                    department=department,
                    reopened=any(e.type == "request.reopened" and e.seq > seq for e in entries),
                )
            )
        return found

    def forwards_by(self, staff_id: str, *, limit: int = 50) -> list[Forward]:
        """What `staff_id` forwarded, newest first, with where it arrived and when it was
        picked up and answered there (from the timeline; nothing is kept twice)."""
        t, i = timeline_table, items_table
        with self.engine.connect() as connection:
            sent = connection.execute(
                select(t)
                .where(
                    t.c.type == "request.reroute_requested",
                    t.c.actor_kind == "staff",
                    t.c.actor_id == staff_id,
                )
                .order_by(t.c.seq.desc())
                .limit(limit)
            ).all()
            ids = sorted({r.request_id for r in sent})
            later = connection.execute(
                select(t)
                .where(
                    t.c.request_id.in_(ids),
                    t.c.type.in_(
                        (
                            "request.routed",
                            "request.claimed",
                            "request.answered",
                            "request.reroute_requested",
                        )
                    ),
                )
                .order_by(t.c.seq)
            ).all()
            items = {
                r.request_id: r
                for r in connection.execute(select(i).where(i.c.request_id.in_(ids))).all()
            }
        by_request: dict[str, list[Any]] = {}
        for row in later:
            by_request.setdefault(row.request_id, []).append(row)
        forwards = []
        for row in sent:
            details = json.loads(row.details)
            arrived = claimed = answered = None
            for entry in by_request.get(row.request_id, []):
                if entry.seq <= row.seq:
                    continue
                if entry.type == "request.reroute_requested":
                    break  # forwarded on again: what happened next is no longer this handoff
                if entry.type == "request.routed" and arrived is None:
                    arrived = entry
                elif entry.type == "request.claimed" and arrived is not None and claimed is None:
                    claimed = entry
                elif entry.type == "request.answered" and arrived is not None:
                    answered = entry
                    break
            item = items.get(row.request_id)
            forwards.append(
                Forward(
                    request_id=row.request_id,
                    question=item.question if item is not None else None,
                    from_department=details.get("from_department"),
                    asked_department=details.get("to_department"),
                    reason=details.get("reason"),
                    forwarded_at=row.occurred_at,
                    arrived_department=(
                        json.loads(arrived.details).get("department") if arrived else None
                    ),
                    arrived_at=arrived.occurred_at if arrived else None,
                    claimed_at=claimed.occurred_at if claimed else None,
                    answered_at=answered.occurred_at if answered else None,
                    state=item.state if item is not None else "pending",
                )
            )
        return forwards

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
        vectors = self._answer_vectors([request_id], action)
        now = self._clock()
        with write(self.engine) as connection:
            return self._act_one(connection, request_id, staff, action, now, vectors)

    def answer_together(
        self, request_ids: Sequence[str], staff: Principal, action: Action
    ) -> list[ActionResult]:
        """Answer several questions with one text, all or none: each gets its own
        `request.answered` (a waiting one is claimed first, by the same person), so every
        KCC-medewerker hears back on their own question with its own clock and rating."""
        assert action.name == "answer"
        vectors = self._answer_vectors(request_ids, action)
        now = self._clock()
        results = []
        with write(self.engine) as connection:
            for request_id in request_ids:
                item = self._locked(connection, request_id)
                if item is not None and item.state == "waiting":
                    self._act_one(connection, request_id, staff, Action("claim"), now, {})
                results.append(self._act_one(connection, request_id, staff, action, now, vectors))
        return results

    def _act_one(
        self,
        connection: Connection,
        request_id: str,
        staff: Principal,
        action: Action,
        now: datetime,
        vectors: Mapping[str, bytes],
    ) -> ActionResult:
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
        values = _row(changed)
        if action.name == "answer":
            values["answer_vector"] = vectors.get(request_id)
            values["answer_seq"] = self._next_answer_seq(connection)
        connection.execute(
            update(items_table).where(items_table.c.request_id == request_id).values(**values)
        )
        self._timeline(connection, event)
        self.outbox.add(connection, [event])
        return ActionResult(changed, event)

    def _answer_vectors(self, request_ids: Sequence[str], action: Action) -> dict[str, bytes]:
        """The meaning of each question with this answer, computed before the transaction
        (20-80 ms a text) so no lock is held meanwhile. Both texts are redacted already."""
        if action.name != "answer" or not action.text:
            return {}
        t = items_table
        with self.engine.connect() as connection:
            questions = dict(
                connection.execute(
                    select(t.c.request_id, t.c.question).where(
                        t.c.request_id.in_(list(request_ids))
                    )
                ).all()
            )
        ids = [r for r in request_ids if r in questions]
        texts = [answered_text(questions[r] or "", action.text) for r in ids]
        return dict(zip(ids, meaning(texts), strict=True))

    def _next_answer_seq(self, connection: Connection) -> int:
        """The next change number, taken last in the transaction: the lock is held until
        commit, so the numbers grow in commit order and no reader skips one."""
        if is_postgres(self.engine):
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ANSWER_SEQ_LOCK_KEY}
            )
        current = connection.execute(select(func.max(items_table.c.answer_seq))).scalar()
        return int(current or 0) + 1

    def change_reuse(self, request_id: str, staff: Principal, reusable: bool) -> ActionResult:
        """Offer an answered item's answer for reuse at the desk, or withdraw it
        (`request.reuse_changed`). Saying what is already so changes nothing. Raises
        ItemNotFound, NotYourDepartment, InvalidTransition (not answered)."""
        now = self._clock()
        with write(self.engine) as connection:
            item = self._locked(connection, request_id)
            if item is None or item.state == "pending":
                raise ItemNotFound(request_id)
            if item.department not in staff.departments:
                raise NotYourDepartment(request_id)
            if item.state not in ("answered", "closed") or item.answer is None:
                raise InvalidTransition(
                    "You cannot change whether the answer is reusable: "
                    "this request has not been answered.",
                    state=item.state,
                    action="reuse",
                )
            if item.reusable == reusable:
                return ActionResult(item, None)
            assert item.department is not None
            event = new_event(
                "request.reuse_changed",
                request_id=request_id,
                actor=Actor("staff", staff.user_id),
                occurred_at=now,
                data={
                    "department": item.department,
                    "staff_id": staff.user_id,
                    "reusable": reusable,
                },
            )
            changed = replace(item, reusable=reusable, updated_at=now)
            connection.execute(
                update(items_table)
                .where(items_table.c.request_id == request_id)
                .values(reusable=reusable, updated_at=now)
            )
            self._timeline(connection, event)
            self.outbox.add(connection, [event])
        return ActionResult(changed, event)

    def keep_apart(self, request_id: str) -> None:
        """'Niet samenvoegen': the item is never suggested in a group again."""
        with write(self.engine) as connection:
            connection.execute(
                update(items_table)
                .where(items_table.c.request_id == request_id)
                .values(kept_apart=True)
            )

    # -- similar questions, duplicates, reuse ---------------------------------------------

    def answered_changes_after(
        self, seq: int, limit: int = 5000
    ) -> list[tuple[str, str, bytes | None, int]]:
        """(request id, department, meaning vector, seq) of answers after `seq`, in order."""
        t = items_table
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.request_id, t.c.department, t.c.answer_vector, t.c.answer_seq)
                .where(t.c.answer_seq > seq)
                .order_by(t.c.answer_seq)
                .limit(limit)
            ).all()
        return [
            (r[0], r[1] or "", bytes(r[2]) if r[2] is not None else None, int(r[3])) for r in rows
        ]

    def answered(self, request_ids: Sequence[str]) -> dict[str, Answered]:
        """The answered (or closed) items among `request_ids`, with their answers."""
        if not request_ids:
            return {}
        t = items_table
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t).where(
                    t.c.request_id.in_(list(request_ids)),
                    t.c.state.in_(("answered", "closed")),
                    t.c.answer.is_not(None),
                )
            ).all()
        return {
            r.request_id: Answered(
                request_id=r.request_id,
                department=r.department or "",
                question=r.question or "",
                answer=r.answer,
                answered_by=r.answered_by,
                answered_at=r.answered_at,
                reusable=bool(r.reusable),
            )
            for r in rows
        }

    def question_vector(self, request_id: str) -> bytes | None:
        t = items_table
        with self.engine.connect() as connection:
            value = connection.execute(
                select(t.c.question_vector).where(t.c.request_id == request_id)
            ).scalar()
        return bytes(value) if value is not None else None

    def open_questions(self, departments: Sequence[str]) -> dict[str, list[OpenQuestion]]:
        """Per department its open items that may be grouped (not kept apart, with a
        question's meaning), in the order they arrived there."""
        t = items_table
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(t.c.request_id, t.c.department, t.c.routed_at, t.c.question_vector)
                .where(
                    t.c.department.in_(list(departments)),
                    t.c.state.in_(list(OPEN_STATES)),
                    t.c.kept_apart.is_(False),
                    t.c.question_vector.is_not(None),
                    t.c.routed_at.is_not(None),
                )
                .order_by(t.c.routed_at, t.c.request_id)
            ).all()
        found: dict[str, list[OpenQuestion]] = {}
        for r in rows:
            found.setdefault(r.department, []).append(
                OpenQuestion(r.request_id, r.routed_at, bytes(r.question_vector))
            )
        return found

    def reuses(
        self,
        *,
        departments: Sequence[str] | None = None,
        answered_by: str | None = None,
        limit: int = 10,
    ) -> list[Reused]:
        """The answers the KCC reused, most recently reused first, with how often each
        helped: of the answers of `answered_by`, or of answers given in `departments`."""
        t, i = timeline_table, items_table
        query = (
            select(
                i.c.request_id,
                i.c.question,
                i.c.department,
                i.c.answered_by,
                func.count().label("times"),
                func.max(t.c.occurred_at).label("last_at"),
            )
            .select_from(t.join(i, i.c.request_id == t.c.request_id))
            .where(t.c.type == "request.answer_reused")
            .group_by(i.c.request_id, i.c.question, i.c.department, i.c.answered_by)
        )
        if answered_by is not None:
            query = query.where(i.c.answered_by == answered_by)
        if departments is not None:
            query = query.where(i.c.department.in_(list(departments)))
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(func.max(t.c.seq).desc()).limit(limit)).all()
        return [
            Reused(r.request_id, r.question, r.department, r.answered_by, int(r.times), r.last_at)
            for r in rows
        ]

    def reuse_total(
        self, *, departments: Sequence[str] | None = None, answered_by: str | None = None
    ) -> int:
        """How often answers (of a person, or of departments) were reused, in all."""
        t, i = timeline_table, items_table
        query = (
            select(func.count())
            .select_from(t.join(i, i.c.request_id == t.c.request_id))
            .where(t.c.type == "request.answer_reused")
        )
        if answered_by is not None:
            query = query.where(i.c.answered_by == answered_by)
        if departments is not None:
            query = query.where(i.c.department.in_(list(departments)))
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

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
            data = {
                "department": department,
                "staff_id": staff.user_id,
                "answer": action.text,
                "reusable": action.reusable,
            }
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
            changed,
            answer=action.text,
            answered_by=staff_id,
            answered_at=now,
            paused_since=None,
            reusable=action.reusable,
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
    "Answered",
    "Change",
    "Forward",
    "InboxStore",
    "OpenQuestion",
    "Rating",
    "Reused",
    "TimelineEntry",
]
