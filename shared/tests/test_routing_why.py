"""Why a routed event chose its department, as people read it: a sentence, never a code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from kcc_shared.routing_why import Why, routing_in_force, why_routed

NAMES = {"parkeren": "Parkeren", "belastingen": "Belastingen en WOZ"}


@dataclass(frozen=True)
class Entry:
    type: str
    details: Mapping[str, Any] = field(default_factory=dict)


def routed(department: str, handoff_count: int = 0, **details: Any) -> Entry:
    return Entry(
        "request.routed", {"department": department, "handoff_count": handoff_count, **details}
    )


def test_the_explanation_is_the_sentence_with_the_similar_questions() -> None:
    details = {
        "reason": "model",
        "explanation": " Lijkt op eerdere vragen voor Parkeren (87 % zeker) ",
        "similar": ["Bewonersvergunning aanvragen?", "", None],
    }
    assert why_routed(details, NAMES.get) == Why(
        "Lijkt op eerdere vragen voor Parkeren (87 % zeker)", ("Bewonersvergunning aanvragen?",)
    )


@pytest.mark.parametrize(
    ("details", "sentence"),
    [
        ({"reason": "rule"}, "Een routeringsregel herkende de vraag"),
        ({"reason": "category"}, "Op grond van de gekozen categorie"),
        ({"reason": "fallback"}, "Geen regel herkende de vraag; het KCC kiest de afdeling"),
        ({"reason": "model", "explanation": None}, "Lijkt op eerdere vragen voor deze afdeling"),
        (
            {"reason": "forward", "from_department": "belastingen"},
            "Doorgestuurd door Belastingen en WOZ",
        ),
        # An id the organisation does not know (any more) is never shown.
        (
            {"reason": "forward", "from_department": "oud-id"},
            "Doorgestuurd door een andere afdeling",
        ),
        ({"reason": "forward"}, "Doorgestuurd door een andere afdeling"),
        ({"reason": "rule", "explanation": "  "}, "Een routeringsregel herkende de vraag"),
    ],
)
def test_an_old_event_gets_a_derived_sentence(details: dict[str, Any], sentence: str) -> None:
    assert why_routed(details, NAMES.get) == Why(sentence)


def test_an_unknown_reason_shows_nothing() -> None:
    assert why_routed({"reason": "iets-nieuws"}, NAMES.get) is None
    assert why_routed({}, NAMES.get) is None


def test_the_routing_in_force_has_the_highest_handoff_count() -> None:
    forwarded = routed("parkeren", 1, reason="forward")
    timeline = [
        Entry("request.submitted"),
        forwarded,
        routed("belastingen", 0),
        Entry("request.claimed"),
    ]
    assert routing_in_force(timeline, "parkeren") is forwarded
    # Where the request is now is not where that routing sent it: no explanation.
    assert routing_in_force(timeline, "belastingen") is None
    assert routing_in_force([Entry("request.submitted")], None) is None
