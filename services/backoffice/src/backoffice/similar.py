"""Earlier answered questions like the one on an item: what staff may reuse while answering.

Each web process holds the meaning vectors of every answered question (question with its
answer, kcc_shared.similarity.answered_text) in memory, loaded at the first search and brought
up to date before each one by reading the items whose answer change number (`answer_seq`) is
newer than the last it saw: one indexed query that finds nothing most of the time. The
gunicorn workers and the consumer are separate processes; they agree through the database. The
few found are read back from the database, which has the last word: only answered items of
the viewer's own departments are shown (reusable or not: staff see their departments' history,
the desk sees only reusable answers).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from kcc_shared.similarity import Entry, SimilarityIndex, meaning

from backoffice.inbox import Item
from backoffice.store import Answered, InboxStore

__all__ = ["EarlierAnswers", "Similar"]

# A handful beside the answer form: more would be read less carefully.
LIMIT: Final = 3


@dataclass(frozen=True)
class Similar:
    earlier: Answered
    score: float


class EarlierAnswers:
    """The in-memory index of answered questions (one per process, shared by its threads)."""

    def __init__(self, store: InboxStore) -> None:
        self._store = store
        self._index = SimilarityIndex()
        self._department: dict[str, str] = {}
        self._seq = 0
        self._refreshing = threading.Lock()

    def __len__(self) -> int:
        return len(self._index)

    def refresh(self) -> None:
        """Take in every answer given since the last one seen."""
        with self._refreshing:
            while True:
                changes = self._store.answered_changes_after(self._seq)
                if not changes:
                    return
                entries = []
                for request_id, department, vector, seq in changes:
                    self._seq = seq
                    if vector is None:
                        continue
                    self._department[request_id] = department
                    entries.append(Entry(request_id, vector))
                self._index.add(entries)

    def like(self, item: Item, departments: Collection[str], limit: int = LIMIT) -> list[Similar]:
        """The answered questions of `departments` most like the item's question, best first."""
        if not item.question:
            return []
        self.refresh()
        allowed = frozenset(
            key
            for key, department in self._department.items()
            if department in departments and key != item.request_id
        )
        if not allowed:
            return []
        vector = self._store.question_vector(item.request_id) or meaning([item.question])[0]
        matches = self._index.search(item.question, limit=limit, vector=vector, allowed=allowed)
        found = self._store.answered([m.key for m in matches])
        return [
            Similar(found[m.key], m.score)
            for m in matches
            if m.key in found and found[m.key].department in departments
        ]
