"""Questions that arrive close together in one department and say the same thing: a group
staff may answer once (each question still gets its own answer event, clock and rating).

A group is only ever a suggestion, worked out each time the inbox is read from the open items'
question meanings (computed once, when a question arrives); nothing is stored about it except
an item staff took out ("Niet samenvoegen"), which is never grouped again. An item joins the
group of the earliest open question it is within CLOSENESS of, if that one arrived at most
WINDOW before it; comparing with that first question only (not with any member) keeps one
chain of slightly different questions from growing into a group of unrelated ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final

import numpy as np

from backoffice.store import OpenQuestion

__all__ = ["CLOSENESS", "WINDOW", "groups"]

# Question-to-question closeness (cosine of the meaning vectors) at or above which two
# questions are offered as one group. Chosen on data/similar-dev.jsonl only with
# bench/duplicates.py: the best recall at a precision of at least 0.85 (dev: precision 0.88,
# recall 0.11; held-out validation, run once: 0.90, 0.13). Sentence embeddings put any two
# municipal questions at 0.80-0.87, so only near-identical wordings are grouped; a wrong group
# costs staff a "Niet samenvoegen", a missed one only an answer written twice.
CLOSENESS: Final = 0.93
# Duplicates arrive together (an outage, a street): a question of last month is no duplicate.
WINDOW: Final = timedelta(days=3)


def groups(
    questions: Sequence[OpenQuestion],
    *,
    closeness: float = CLOSENESS,
    window: timedelta = WINDOW,
) -> list[list[str]]:
    """Groups of two or more request ids, each in order of arrival, from questions of one
    department in order of arrival."""
    if len(questions) < 2:
        return []
    vectors = np.stack([np.frombuffer(q.vector, dtype=np.float32) for q in questions])
    close = vectors @ vectors.T
    anchors: list[int] = []
    members: dict[int, list[int]] = {}
    for i, question in enumerate(questions):
        best, best_score = None, closeness
        for a in anchors:
            if question.arrived_at - questions[a].arrived_at > window:
                continue
            if close[i, a] >= best_score:
                best, best_score = a, float(close[i, a])
        if best is None:
            anchors.append(i)
            members[i] = [i]
        else:
            members[best].append(i)
    return [
        [questions[i].request_id for i in group] for group in members.values() if len(group) > 1
    ]
