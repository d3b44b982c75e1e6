"""Similar questions: which earlier questions say what a new one says.

A question's meaning is a multilingual sentence embedding (kcc_shared.embedding), so "kliko"
finds "container", an English question finds its Dutch twin and a paraphrase its original; the
closer two meanings (cosine), the more alike the questions. An answered question is indexed
with its answer (``answered_text``): the answer carries the department's own words, which a
new question often uses. Adding a word view (character n-grams, or words weighted by rarity)
lowered the share of questions whose answer was among the first three on the tuning file, so
there is none (docs/similar.md has the figures).

The index lives in memory; the services keep each entry's text and meaning vector in their own
database (a vector is computed once, when the question is stored) and load them at start, so
SQLite and PostgreSQL give the same suggestions. Only redacted text is ever indexed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from kcc_shared import embedding
from kcc_shared.privacy import REDACTED

__all__ = ["THRESHOLD", "Entry", "Match", "SimilarityIndex", "answered_text", "meaning"]

# Below this closeness a question is not shown: an unrelated suggestion costs the
# KCC-medewerker more (reading, doubting) than none. Chosen on data/similar-dev.jsonl only
# (docs/similar.md); the validation file is held out. Sentence embeddings put any two
# municipal questions fairly close (0.80-0.86 for unrelated ones), so this removes only the
# clearly foreign; the pages present suggestions as "lijkt op", for the reader to judge.
THRESHOLD: Final = 0.82
# The topic is in the first sentences; a pasted e-mail must not cost the search its speed.
_MAX_TEXT: Final = 600


@dataclass(frozen=True)
class Entry:
    """An indexed question: the caller's key and the meaning vector of its redacted text."""

    key: str
    vector: bytes


@dataclass(frozen=True)
class Match:
    key: str
    score: float


def answered_text(question: str, answer: str) -> str:
    """What an answered question is indexed by: the question, then its answer."""
    return f"{question}\n{answer}"


def meaning(texts: Sequence[str]) -> list[bytes]:
    """The stored form of each text's meaning vector (float32 bytes, unit length)."""
    cleaned = [t[:_MAX_TEXT].replace(REDACTED, " ") for t in texts]
    return [row.tobytes() for row in embedding.encode(cleaned)]


class SimilarityIndex:
    """Questions in memory, searched by meaning.

    Thread-safe: the web threads search while the consumer adds and removes entries.
    """

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._lock = threading.Lock()
        self._keys: list[str] = []
        self._rows: dict[str, int] = {}
        # Rows 0.._size-1 are in use; the arrays grow by doubling, so adding one answer to an
        # index of 100,000 does not copy 150 MB of vectors (a search waits for the lock).
        self._size = 0
        self._vectors = np.zeros((0, embedding.DIMENSIONS), dtype=np.float32)
        self._alive = np.zeros(0, dtype=bool)
        self.add(entries)

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, entries: Iterable[Entry]) -> None:
        """Add entries (an entry whose key is present replaces it)."""
        batch = list(entries)
        if not batch:
            return
        vectors = np.stack([_vector(e.vector) for e in batch])
        with self._lock:
            for entry in batch:
                self._remove_locked(entry.key)
            if self._size + len(batch) > len(self._vectors):
                self._grow(self._size + len(batch))
            start, end = self._size, self._size + len(batch)
            self._vectors[start:end] = vectors
            self._alive[start:end] = True
            self._size = end
            for offset, entry in enumerate(batch):
                self._keys.append(entry.key)
                self._rows[entry.key] = start + offset

    def _grow(self, needed: int) -> None:
        # Rows of removed or replaced entries are dropped when the arrays grow.
        keep = np.flatnonzero(self._alive[: self._size])
        capacity = max(needed - self._size + len(keep), 2 * len(keep), 64)
        vectors = np.zeros((capacity, embedding.DIMENSIONS), dtype=np.float32)
        vectors[: len(keep)] = self._vectors[keep]
        self._keys = [self._keys[row] for row in keep.tolist()]
        self._rows = {key: row for row, key in enumerate(self._keys)}
        self._vectors = vectors
        self._alive = np.zeros(capacity, dtype=bool)
        self._alive[: len(keep)] = True
        self._size = len(keep)

    def remove(self, key: str) -> None:
        with self._lock:
            self._remove_locked(key)

    def _remove_locked(self, key: str) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            self._alive[row] = False

    def search(
        self,
        text: str,
        *,
        limit: int = 3,
        vector: bytes | None = None,
        allowed: frozenset[str] | None = None,
        threshold: float = THRESHOLD,
    ) -> list[Match]:
        """The best ``limit`` entries at or above ``threshold``, best first; only keys in
        ``allowed`` when given. ``vector`` saves computing the text's meaning again."""
        query = _vector(vector if vector is not None else meaning([text])[0])
        with self._lock:
            closeness = self._vectors[: self._size] @ query
            closeness[~self._alive[: self._size]] = -np.inf
            if allowed is not None:
                visible = np.zeros(len(closeness), dtype=bool)
                visible[[self._rows[k] for k in allowed if k in self._rows]] = True
                closeness[~visible] = -np.inf
            best = _best(closeness, limit)
            keys = [self._keys[row] for row in best]
        return [
            Match(key, round(float(closeness[row]), 4))
            for key, row in zip(keys, best, strict=True)
            if closeness[row] >= threshold
        ]


def _vector(data: bytes) -> npt.NDArray[np.float32]:
    vector = np.frombuffer(data, dtype=np.float32)
    if vector.shape != (embedding.DIMENSIONS,):
        raise ValueError(
            f"a meaning vector has {vector.size} numbers, "
            f"expected {embedding.DIMENSIONS} ({embedding.MODEL})"
        )
    return vector


def _best(scores: npt.NDArray[np.float32], limit: int) -> npt.NDArray[np.intp]:
    if limit >= len(scores):
        return np.argsort(-scores, kind="stable")
    top = np.argpartition(-scores, limit)[:limit]
    return top[np.argsort(-scores[top], kind="stable")]
