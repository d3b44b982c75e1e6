"""Earlier answers for a question being typed: the desk's suggestions, and counting their use.

Each web process holds the reusable answers' meaning vectors in memory (SimilarityIndex),
loaded from the knowledge base at start and brought up to date before every search by reading
the rows whose change sequence is newer than the last one it saw: one indexed query that finds
nothing most of the time. Withdrawn answers leave the index then; answers older than their
department's shelf life (organisation: `reuse_shelf_life_days`) leave it when they expire. The
few found are read back from the database, which has the last word: an answer withdrawn a
moment ago is not shown.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from kcc_shared.auth import Principal
from kcc_shared.db import write
from kcc_shared.events import Actor, new_event
from kcc_shared.organisation import DEFAULT_REUSE_SHELF_LIFE_DAYS, Organisation
from kcc_shared.outbox import Outbox
from kcc_shared.privacy import redact_bsn
from kcc_shared.similarity import Entry, SimilarityIndex, meaning
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from intake.errors import AnswerNotReusable, IdempotencyKeyReused
from intake.knowledge import answer_reuses, reusable_answers
from intake.store import key_digest

__all__ = ["Reuse", "Suggestion", "Suggestions"]

# A handful, for the reader to judge: more would be read less carefully.
LIMIT: Final = 3
# Rows read per query while loading: bounds the memory one fetch holds.
_LOAD_CHUNK: Final = 5000


@dataclass(frozen=True)
class Suggestion:
    request_id: str
    question: str
    answer: str
    department: str
    category: str | None
    answered_at: datetime
    score: float


@dataclass(frozen=True)
class Reuse:
    """A recorded "Hiermee is de vraag beantwoord"."""

    event_id: str
    request_id: str
    department: str
    category: str | None
    created_at: datetime
    replayed: bool


@dataclass(frozen=True)
class _Indexed:
    department: str
    answered_at: datetime


class Suggestions:
    """The in-memory index of reusable answers (one per process, shared by its threads)."""

    def __init__(
        self,
        engine: Engine,
        organisation: Organisation,
        outbox: Outbox,
        clock: Callable[[], datetime],
    ) -> None:
        self.engine = engine
        self.organisation = organisation
        self._outbox = outbox
        self._clock = clock
        self._index = SimilarityIndex()
        self._indexed: dict[str, _Indexed] = {}
        # (expires at, request id, answered at): the answer leaves the index then, unless it
        # was answered again since (then a newer entry is in the heap).
        self._expiry: list[tuple[datetime, str, datetime]] = []
        self._seq = 0
        # One refresh at a time; searches run concurrently on the index (it has its own lock).
        self._refreshing = threading.Lock()

    def __len__(self) -> int:
        return len(self._index)

    def shelf_life(self, department: str) -> timedelta:
        known = self.organisation.departments.get(department)
        days = known.reuse_shelf_life_days if known else DEFAULT_REUSE_SHELF_LIFE_DAYS
        return timedelta(days=days)

    def refresh(self) -> None:
        """Take in every change since the last one seen, and let expired answers go."""
        with self._refreshing:
            t = reusable_answers
            while True:
                with self.engine.connect() as connection:
                    rows = connection.execute(
                        select(
                            t.c.request_id,
                            t.c.department,
                            t.c.answered_at,
                            t.c.reusable,
                            t.c.vector,
                            t.c.seq,
                        )
                        .where(t.c.seq > self._seq)
                        .order_by(t.c.seq)
                        .limit(_LOAD_CHUNK)
                    ).all()
                if not rows:
                    break
                self._take(rows)
                self._seq = rows[-1].seq
                if len(rows) < _LOAD_CHUNK:
                    break
            self._expire(self._clock())

    def _take(self, rows: Sequence[Any]) -> None:
        now = self._clock()
        entries: list[Entry] = []
        for row in rows:
            expires = (
                row.answered_at + self.shelf_life(row.department)
                if row.answered_at is not None
                else now
            )
            if not row.reusable or row.vector is None or expires <= now:
                if self._indexed.pop(row.request_id, None) is not None:
                    self._index.remove(row.request_id)
                continue
            entries.append(Entry(row.request_id, bytes(row.vector)))
            self._indexed[row.request_id] = _Indexed(row.department, row.answered_at)
            heapq.heappush(self._expiry, (expires, row.request_id, row.answered_at))
        self._index.add(entries)

    def _expire(self, now: datetime) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, key, answered_at = heapq.heappop(self._expiry)
            indexed = self._indexed.get(key)
            if indexed is not None and indexed.answered_at == answered_at:
                del self._indexed[key]
                self._index.remove(key)

    def search(self, text: str, limit: int = LIMIT) -> list[Suggestion]:
        """The reusable answers whose questions are most like ``text``, best first."""
        self.refresh()
        if not len(self._index):
            return []
        # Never a BSN into the model, even though nothing of the search is kept.
        vector = meaning([redact_bsn(text)[0]])[0]
        matches = self._index.search(text, limit=limit, vector=vector)
        if not matches:
            return []
        rows = self._current([m.key for m in matches])
        return [
            Suggestion(
                request_id=m.key,
                question=rows[m.key].question,
                answer=rows[m.key].answer,
                department=rows[m.key].department,
                category=rows[m.key].category,
                answered_at=rows[m.key].answered_at,
                score=m.score,
            )
            for m in matches
            if m.key in rows
        ]

    def get(self, request_id: str) -> Suggestion:
        """One answer that is suggested now (AnswerNotReusable if it is not)."""
        row = self._current([request_id]).get(request_id)
        if row is None:
            raise AnswerNotReusable()
        return Suggestion(
            request_id=row.request_id,
            question=row.question,
            answer=row.answer,
            department=row.department,
            category=row.category,
            answered_at=row.answered_at,
            score=1.0,
        )

    def _current(self, request_ids: list[str]) -> dict[str, Any]:
        """The rows that may be suggested now, by request id: reusable and within shelf life."""
        t = reusable_answers
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(
                    t.c.request_id,
                    t.c.question,
                    t.c.answer,
                    t.c.department,
                    t.c.category,
                    t.c.answered_at,
                ).where(
                    t.c.request_id.in_(request_ids),
                    t.c.reusable.is_(True),
                    t.c.answered_at.is_not(None),
                )
            ).all()
        now = self._clock()
        return {
            r.request_id: r for r in rows if r.answered_at + self.shelf_life(r.department) > now
        }

    def use(self, request_id: str, agent: Principal, idempotency_key: str | None) -> Reuse:
        """Record that a citizen was answered with this answer instead of a new question:
        `request.answer_reused` through the outbox, once per Idempotency-Key."""
        digest = key_digest(idempotency_key) if idempotency_key is not None else None
        if digest is not None:
            earlier = self._by_key(agent.user_id, digest)
            if earlier is not None:
                return self._replay(earlier, request_id)
        answer = self.get(request_id)
        event = new_event(
            "request.answer_reused",
            request_id=request_id,
            actor=Actor("agent", agent.user_id),
            occurred_at=self._clock(),
            data={
                "department": answer.department,
                "agent_id": agent.user_id,
                "team": agent.team,
            },
        )
        try:
            with write(self.engine) as connection:
                connection.execute(
                    insert(answer_reuses).values(
                        event_id=event.id,
                        request_id=request_id,
                        agent_id=agent.user_id,
                        department=answer.department,
                        category=answer.category,
                        idempotency_key=digest,
                        created_at=event.occurred_at,
                    )
                )
                self._outbox.add(connection, [event])
        except IntegrityError:
            # A concurrent retry with the same key was first: answer with its use.
            earlier = self._by_key(agent.user_id, digest) if digest is not None else None
            if earlier is None:
                raise
            return self._replay(earlier, request_id)
        return Reuse(
            event_id=event.id,
            request_id=request_id,
            department=answer.department,
            category=answer.category,
            created_at=event.occurred_at,
            replayed=False,
        )

    def _by_key(self, agent_id: str, digest: str) -> Any:
        r = answer_reuses
        with self.engine.connect() as connection:
            return connection.execute(
                select(r).where(r.c.agent_id == agent_id, r.c.idempotency_key == digest)
            ).first()

    @staticmethod
    def _replay(earlier: Any, request_id: str) -> Reuse:
        if earlier.request_id != request_id:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used for another answer; "
                "use a new key for a new use"
            )
        return Reuse(
            event_id=earlier.event_id,
            request_id=earlier.request_id,
            department=earlier.department,
            category=earlier.category,
            created_at=earlier.created_at,
            replayed=True,
        )
