"""Why a request went where it went, in Dutch for people: never the router's internal codes.

A `request.routed` event from a current router carries `explanation` (a Dutch sentence) and
`similar` (example questions of the chosen department). Events of older routers have only
`reason` (category, rule, model, fallback, forward): for those a sentence is derived here. The
agent desk and the back office both show what `why_routed` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Why", "routing_in_force", "why_routed"]

ROUTED = "request.routed"

# A sentence per reason code, for routed events without an explanation. A forward names the
# department that sent it on (see `derived_sentence`).
REASON_SENTENCES: Mapping[str, str] = {
    "rule": "Een routeringsregel herkende de vraag",
    "category": "Op grond van de gekozen categorie",
    "model": "Lijkt op eerdere vragen voor deze afdeling",
    "fallback": "Geen regel herkende de vraag; het KCC kiest de afdeling",
}
FORWARD_UNKNOWN = "Doorgestuurd door een andere afdeling"


class Entry(Protocol):
    """What is read of a timeline entry (both services' TimelineEntry satisfy it)."""

    @property
    def type(self) -> str: ...
    @property
    def details(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class Why:
    """What people see: one sentence and up to three similar earlier questions."""

    sentence: str
    similar: tuple[str, ...] = ()


def derived_sentence(
    details: Mapping[str, Any], department_name: Callable[[str], str | None]
) -> str | None:
    """The sentence for a routed event: its explanation, or one derived from its reason.

    `department_name` gives a department's name, or None for an id the organisation does
    not know (an id is never shown). An unknown reason gives None: nothing is shown.
    """
    explanation = details.get("explanation")
    if isinstance(explanation, str) and explanation.strip():
        return explanation.strip()
    reason = details.get("reason")
    if reason == "forward":
        sender = details.get("from_department")
        name = department_name(sender) if isinstance(sender, str) else None
        return f"Doorgestuurd door {name}" if name else FORWARD_UNKNOWN
    return REASON_SENTENCES.get(reason) if isinstance(reason, str) else None


def why_routed(
    details: Mapping[str, Any], department_name: Callable[[str], str | None]
) -> Why | None:
    """The sentence and the similar questions of one routed event's (stored) details."""
    sentence = derived_sentence(details, department_name)
    if sentence is None:
        return None
    similar = details.get("similar")
    examples: Sequence[Any] = similar if isinstance(similar, list) else ()
    return Why(sentence, tuple(q for q in examples if isinstance(q, str) and q.strip()))


def routing_in_force(timeline: Iterable[Entry], department: str | None) -> Entry | None:
    """The routed entry that put the request where it is: the highest handoff count wins (a
    late, older routing never does), as in both services' views. None when the request is
    not routed, or when that routing names another department than the one it is at now."""
    best: Entry | None = None
    best_count = -1
    for entry in timeline:
        if entry.type != ROUTED:
            continue
        count = entry.details.get("handoff_count", 0)
        count = count if isinstance(count, int) else 0
        if count > best_count:
            best, best_count = entry, count
    if best is None or department is None or best.details.get("department") != department:
        return None
    return best
