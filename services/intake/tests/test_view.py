"""The agent's view rules: each event's effect, and any order or duplication gives one result."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from intake.view import View, apply, fold

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class E:
    type: str
    minute: int
    details: Mapping[str, Any] = field(default_factory=dict)
    event_id: str = ""

    @property
    def occurred_at(self) -> datetime:
        return T0 + timedelta(minutes=self.minute)


def ev(kind: str, minute: int = 0, **details: Any) -> E:
    return E(f"request.{kind}", minute, details, event_id=f"{kind}-{minute}")


ROUTED_A = View("routed", "burgerzaken", 0)
CLAIMED_A = View("claimed", "burgerzaken", 0, held=True)
ASKING_A = View("awaiting_clarification", "burgerzaken", 0, held=True)
ANSWERED_A = View("answered", "burgerzaken", 0, answer="Ja, dat kan.")

RULES = [
    # (state before, event, state after)
    pytest.param(View(), ev("submitted"), View(), id="submitted-is-history"),
    pytest.param(
        View(), ev("routed", department="burgerzaken", handoff_count=0), ROUTED_A, id="routed"
    ),
    pytest.param(
        CLAIMED_A,
        ev("routed", department="belastingen", handoff_count=1),
        View("routed", "belastingen", 1),
        id="forward-moves-it-to-the-new-queue",
    ),
    pytest.param(
        View("routed", "belastingen", 1),
        ev("routed", department="burgerzaken", handoff_count=0),
        View("routed", "belastingen", 1),
        id="older-routing-never-wins",
    ),
    pytest.param(
        ANSWERED_A,
        ev("routed", department="belastingen", handoff_count=1),
        View("answered", "burgerzaken", 1, answer="Ja, dat kan."),
        id="routing-never-undoes-an-answer",
    ),
    pytest.param(
        ROUTED_A, ev("claimed", department="burgerzaken", staff_id="s1"), CLAIMED_A, id="claimed"
    ),
    pytest.param(
        ANSWERED_A,
        ev("claimed", department="burgerzaken", staff_id="s1"),
        ANSWERED_A,
        id="late-claim-never-undoes-an-answer",
    ),
    pytest.param(
        View("routed", "belastingen", 1),
        ev("claimed", department="burgerzaken", staff_id="s1"),
        View("routed", "belastingen", 1),
        id="claim-from-a-department-it-left-is-history",
    ),
    pytest.param(
        CLAIMED_A,
        ev("released", department="burgerzaken", staff_id="s1"),
        ROUTED_A,
        id="released-goes-back-to-the-queue",
    ),
    pytest.param(
        CLAIMED_A,
        ev("clarification_requested", department="burgerzaken", text="Welke datum?"),
        ASKING_A,
        id="clarification-requested",
    ),
    pytest.param(ASKING_A, ev("clarified", text="3 maart"), CLAIMED_A, id="clarified-to-asker"),
    pytest.param(
        View("awaiting_clarification", "burgerzaken", 0),
        ev("clarified", text="3 maart"),
        ROUTED_A,
        id="clarified-unclaimed-to-queue",
    ),
    pytest.param(
        ASKING_A,
        ev("claimed", department="burgerzaken", staff_id="s1"),
        ASKING_A,
        id="late-claim-keeps-the-question-open",
    ),
    pytest.param(CLAIMED_A, ev("clarified", text="x"), CLAIMED_A, id="clarified-needs-a-question"),
    pytest.param(
        CLAIMED_A,
        ev("answered", department="burgerzaken", staff_id="s1", answer="Ja, dat kan."),
        ANSWERED_A,
        id="answered",
    ),
    pytest.param(
        View("cancelled", "burgerzaken", 0),
        ev("answered", department="burgerzaken", staff_id="s1", answer="Ja."),
        View("cancelled", "burgerzaken", 0, answer="Ja."),
        id="cancelled-is-terminal-but-keeps-a-late-answer",
    ),
    pytest.param(
        ANSWERED_A,
        ev("rated", score=4, thanks=True),
        View("closed", "burgerzaken", 0, answer="Ja, dat kan."),
        id="rated",
    ),
    pytest.param(ROUTED_A, ev("rated", score=4, thanks=True), ROUTED_A, id="rated-needs-answer"),
    pytest.param(
        View("closed", "burgerzaken", 0, answer="Ja, dat kan."),
        ev("reopened", department="burgerzaken", reason="Onvolledig"),
        View("routed", "burgerzaken", 0, answer="Ja, dat kan."),
        id="reopened-goes-back-to-the-department",
    ),
    pytest.param(ROUTED_A, ev("cancelled"), View("cancelled", "burgerzaken", 0), id="cancelled"),
    pytest.param(
        ANSWERED_A, ev("cancelled"), ANSWERED_A, id="cancel-after-the-answer-changes-nothing"
    ),
    pytest.param(
        View("cancelled", "burgerzaken", 0),
        ev("routed", department="belastingen", handoff_count=1),
        View("cancelled", "burgerzaken", 1),
        id="cancelled-stays-cancelled",
    ),
    pytest.param(
        CLAIMED_A,
        ev("reroute_requested", from_department="burgerzaken", reason="x"),
        CLAIMED_A,
        id="reroute-request-waits-for-routed",
    ),
    pytest.param(
        CLAIMED_A, ev("sla_breached", department="burgerzaken"), CLAIMED_A, id="sla-is-history"
    ),
]


@pytest.mark.parametrize(("before", "event", "after"), RULES)
def test_each_event_moves_the_view_by_the_rules(before: View, event: E, after: View) -> None:
    assert apply(before, event) == after


LIFE = [
    ev("submitted", 0),
    ev("routed", 1, department="burgerzaken", handoff_count=0),
    ev("claimed", 2, department="burgerzaken", staff_id="s1"),
    ev("reroute_requested", 3, from_department="burgerzaken", reason="Niet van ons"),
    ev("routed", 4, department="belastingen", handoff_count=1),
    ev("claimed", 5, department="belastingen", staff_id="s2"),
    ev("clarification_requested", 6, department="belastingen", text="Welk jaar?"),
    ev("clarified", 7, text="2024"),
    ev("answered", 8, department="belastingen", staff_id="s2", answer="Bezwaar kan tot 6 weken."),
    ev("rated", 9, score=2, thanks=False, comment="Te kort", department="belastingen"),
    ev("reopened", 9, department="belastingen", reason="Te kort"),
    ev("claimed", 10, department="belastingen", staff_id="s2"),
    ev("answered", 11, department="belastingen", staff_id="s2", answer="Uitgebreid antwoord."),
]
FINAL = View("answered", "belastingen", 1, answer="Uitgebreid antwoord.")


def test_a_whole_life_in_order() -> None:
    assert fold(LIFE) == FINAL


def test_every_prefix_of_a_life_is_a_sensible_view() -> None:
    statuses = [fold(LIFE[: n + 1]).status for n in range(len(LIFE))]
    assert statuses == [
        "submitted",
        "routed",
        "claimed",
        "claimed",
        "routed",
        "claimed",
        "awaiting_clarification",
        "claimed",
        "answered",
        "closed",
        "routed",
        "claimed",
        "answered",
    ]


@pytest.mark.parametrize("seed", range(25))
def test_shuffled_and_duplicated_deliveries_give_the_same_view(seed: int) -> None:
    rng = random.Random(seed)
    deliveries = LIFE + rng.sample(LIFE, k=5)
    rng.shuffle(deliveries)
    assert fold(deliveries) == FINAL


def test_all_orders_of_a_short_life_agree() -> None:
    short = [
        ev("routed", 1, department="burgerzaken", handoff_count=0),
        ev("claimed", 2, department="burgerzaken", staff_id="s1"),
        ev("answered", 3, department="burgerzaken", staff_id="s1", answer="Ja, dat kan."),
        ev("claimed", 2, department="burgerzaken", staff_id="s1"),  # a duplicate
    ]
    views = {fold(order) for order in itertools.permutations(short)}
    assert views == {ANSWERED_A}


def test_clock_skew_answer_before_claim_stays_answered() -> None:
    # The claim's host clock ran ahead: it claims to have happened after the answer.
    skewed = [
        ev("routed", 1, department="burgerzaken", handoff_count=0),
        ev("answered", 2, department="burgerzaken", staff_id="s1", answer="Ja, dat kan."),
        ev("claimed", 3, department="burgerzaken", staff_id="s1"),
    ]
    assert fold(skewed) == ANSWERED_A
