"""The knowledge base: answers a department marked reusable, kept for the desk's suggestions.

The consumer keeps one row per request whose answer was offered for reuse (`request.answered`
with `reusable`, or a later `request.reuse_changed`): the redacted question and answer, the
department, the category, when it was answered and the meaning vector of both (computed once,
here). Every change gives the row the next `seq`, so each web process keeps its in-memory index
current by reading the rows changed since the last one it saw (intake/suggestions.py): gunicorn
workers and the consumer agree through the database, without messaging.

Order- and duplicate-tolerant: the newest answer is the one suggested, and whether it is
reusable is decided by the newest of the events that said so (an answer or a reuse change).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from kcc_shared.db import UtcDateTime
from kcc_shared.events import Event
from kcc_shared.privacy import redact_bsn
from kcc_shared.similarity import answered_text, meaning
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    LargeBinary,
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

__all__ = ["KNOWLEDGE_EVENTS", "answer_reuses", "apply", "metadata", "reusable_answers"]

metadata = MetaData()

reusable_answers = Table(
    "reusable_answers",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("department", String(64), nullable=False),
    Column("category", String(64), nullable=True),
    # Both redacted (a second time here: the services that accepted them redacted first).
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    # None while only a reuse decision is known (it arrived before the answer).
    Column("answered_at", UtcDateTime, nullable=True),
    Column("reusable", Boolean, nullable=False),
    # When the event that set `reusable` happened: only a newer one may change it.
    Column("reusable_since", UtcDateTime, nullable=False),
    # float32 of kcc_shared.similarity.meaning(answered_text(question, answer)); None while
    # the newest answer is not reusable (computed when it is marked reusable).
    Column("vector", LargeBinary, nullable=True),
    # The change sequence the web processes follow (see the module's note).
    Column("seq", Integer, nullable=False),
    Index("ix_reusable_answers_seq", "seq", unique=True),
)

# "Hiermee is de vraag beantwoord": one row per use, so a retry with the same Idempotency-Key
# is counted (and published) once.
answer_reuses = Table(
    "answer_reuses",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False),
    Column("agent_id", String(64), nullable=False),
    Column("department", String(64), nullable=False),
    Column("category", String(64), nullable=True),
    # The key's SHA-256 (hex), as for filed requests (store.key_digest).
    Column("idempotency_key", String(200), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("agent_id", "idempotency_key", name="uq_answer_reuses_idempotency"),
    Index("ix_answer_reuses_request", "request_id"),
)

# Events that only change the knowledge base, never an agent's timeline: a department
# changing its mind about reuse, and the desk's own use of an answer coming back.
KNOWLEDGE_EVENTS: Final = frozenset({"request.reuse_changed", "request.answer_reused"})

# Takes the lock that orders changes (held until commit), so `seq` grows in commit order.
Lock = Callable[[Connection], None]


def apply(connection: Connection, event: Event, request: Any, lock: Lock) -> None:
    """Keep the knowledge base current for an answer or a reuse change of a request we know.

    ``request`` is the intake's row of the request (question, category, answer, department):
    the question an answer is suggested for is the one the KCC-medewerker filed.
    """
    if event.type == "request.answered":
        _answered(connection, event, request, lock)
    elif event.type == "request.reuse_changed":
        _reuse_changed(connection, event, request, lock)


def _answered(connection: Connection, event: Event, request: Any, lock: Lock) -> None:
    reusable = bool(event.data.get("reusable", False))
    row = _row(connection, event.request_id)
    if (
        row is not None
        and row.answered_at is not None
        and _utc(row.answered_at) > event.occurred_at
    ):
        return  # an older answer arriving late: the newer one stays
    if row is None and not reusable:
        return  # not offered for reuse: nothing of it is kept here
    answer = redact_bsn(str(event.data["answer"]))[0]
    question = redact_bsn(str(request.question))[0]
    values: dict[str, Any] = {
        "department": event.data["department"],
        "category": request.category,
        "question": question,
        "answer": answer,
        "answered_at": event.occurred_at,
    }
    if row is None or _utc(row.reusable_since) <= event.occurred_at:
        values["reusable"] = reusable
        values["reusable_since"] = event.occurred_at
        reusable_now = reusable
    else:
        reusable_now = bool(row.reusable)  # a newer reuse change decided already
    values["vector"] = meaning([answered_text(question, answer)])[0] if reusable_now else None
    _save(connection, event.request_id, row, values, lock)


def _reuse_changed(connection: Connection, event: Event, request: Any, lock: Lock) -> None:
    reusable = bool(event.data["reusable"])
    row = _row(connection, event.request_id)
    if row is not None and _utc(row.reusable_since) > event.occurred_at:
        return  # a newer change decided already
    values: dict[str, Any] = {"reusable": reusable, "reusable_since": event.occurred_at}
    if row is None or row.answered_at is None:
        # No answer kept yet: the request's own if it has one (marked reusable afterwards),
        # else only the decision, for the answer to find when it arrives.
        values.update(
            department=request.department or event.data["department"],
            category=request.category,
            question=redact_bsn(str(request.question))[0],
            answer=redact_bsn(str(request.answer))[0] if request.answer else "",
            # The answer's own moment is in the timeline; the change is a close stand-in
            # that errs on the side of a shorter shelf life.
            answered_at=event.occurred_at if request.answer else None,
        )
    after = {**(row._mapping if row is not None else {}), **values}
    if reusable and after["answer"] and (after.get("vector") is None or "answer" in values):
        values["vector"] = meaning([answered_text(after["question"], after["answer"])])[0]
    _save(connection, event.request_id, row, values, lock)


def _save(
    connection: Connection, request_id: str, row: Any, values: dict[str, Any], lock: Lock
) -> None:
    # Last, after the meaning was computed: the lock is held from here until commit.
    lock(connection)
    t = reusable_answers
    values["seq"] = (connection.execute(select(func.max(t.c.seq))).scalar() or 0) + 1
    if row is None:
        connection.execute(insert(t).values(request_id=request_id, **values))
    else:
        connection.execute(update(t).where(t.c.request_id == request_id).values(**values))


def _row(connection: Connection, request_id: str) -> Any:
    t = reusable_answers
    return connection.execute(select(t).where(t.c.request_id == request_id)).first()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
