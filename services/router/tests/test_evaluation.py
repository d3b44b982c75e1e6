"""Measuring the router: the whole decision on labelled questions, and the held-out figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from kcc_shared.examples import LabelledQuestion, read_labelled_file
from kcc_shared.organisation import load_organisation
from router.decision import Decider
from router.evaluation import evaluate
from router.model import DEMO_MODEL, RoutingModel
from router.rules import RuleSet


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return RuleSet.from_organisation(load_organisation())


def test_counts_right_wrong_and_triage_per_group(rules: RuleSet) -> None:
    rows = [
        LabelledQuestion("a", "Paspoort kwijt", "burgerzaken", style="plain"),
        LabelledQuestion("b", "Container niet geleegd", "afval", style="plain"),
        LabelledQuestion("c", "Lantaarnpaal kapot", "afval", style="shorthand"),
        LabelledQuestion("d", "Iets heel anders", "burgerzaken", style="shorthand"),
    ]

    result = evaluate(Decider(rules), rows)

    overall = result.overall
    assert (overall.total, overall.right, overall.wrong, overall.triaged) == (4, 2, 1, 1)
    assert result.by_style["plain"].accuracy == 1.0
    assert result.by_style["shorthand"].wrong_rate == pytest.approx(0.5)
    assert result.by_decider["fallback"].triaged == 1
    assert result.precision_recall["afval"] == (1.0, 0.5)
    assert result.confusion["afval"] == {"afval": 1, "openbare-ruimte": 1}
    assert [m.question.id for m in result.misses] == ["c", "d"]
    # Without a model there is no threshold to trade off.
    assert result.curve == ()


def test_a_file_without_styles_has_no_style_figures(rules: RuleSet) -> None:
    result = evaluate(Decider(rules), [LabelledQuestion("a", "Paspoort", "burgerzaken")])

    assert result.by_style == {}


@pytest.fixture(scope="module")
def demo(rules: RuleSet) -> Decider:
    return Decider(rules, RoutingModel.load(DEMO_MODEL))


def test_the_held_out_validation_figures_do_not_fall(
    demo: Decider, validation_set_path: Path
) -> None:
    # data/routing-validation.jsonl: written before any tuning, never trained or tuned on.
    # Figures of the shipped model (docs/routing.md): 97.1 % right, 2.1 % wrong, 0.8 % triage.
    result = evaluate(demo, read_labelled_file(validation_set_path))

    overall = result.overall
    assert overall.total == 240
    assert overall.accuracy >= 0.95
    assert overall.wrong_rate <= 0.04
    for style, tally in result.by_style.items():
        assert tally.accuracy >= 0.80, style
    # The curve trades right answers for triage: the strictest threshold sends far more to
    # triage than the router's own.
    curve = dict(result.curve)
    assert curve[0.9].triaged > curve[demo.policy.threshold].triaged + 20
