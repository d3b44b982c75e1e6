"""Two deciders, one decision: the demo organisation's rules with its trained model."""

from __future__ import annotations

from pathlib import Path

import pytest
from kcc_shared.examples import read_labelled_file
from kcc_shared.organisation import load_organisation
from router.decision import Decider, Query
from router.model import DEMO_MODEL, RoutingModel
from router.rules import RuleSet


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return RuleSet.from_organisation(load_organisation())


@pytest.fixture(scope="module")
def decider(rules: RuleSet) -> Decider:
    return Decider(rules, RoutingModel.load(DEMO_MODEL))


def test_a_policy_rule_always_decides(decider: Decider) -> None:
    decision = decider.decide(
        Query("Tak van een gemeenteboom viel op mijn auto bij de speeltuin, wil schadevergoeding")
    )

    assert (decision.department, decision.reason, decision.rule_id) == (
        "juridische-zaken",
        "rule",
        "juridische-zaken",
    )
    assert decision.explanation.startswith("Regel voor Juridische Zaken")
    assert "'schadevergoeding'" in decision.explanation


def test_a_policy_rule_wins_even_after_an_earlier_rule(decider: Decider, rules: RuleSet) -> None:
    question = (
        "We hebben een huurachterstand en er dreigt een huisuitzetting; kan er een "
        "betalingsregeling voor de aanslag?"
    )

    decision = decider.decide(Query(question))

    assert rules.route(question).department == "belastingen"  # the first rule in file order
    assert (decision.department, decision.rule_id) == ("sociaal-domein", "sociaal-domein-crisis")
    assert decision.apply_priority("normal") == "urgent"


def test_the_model_chooses_between_the_departments_whose_rules_match(
    decider: Decider, rules: RuleSet
) -> None:
    question = (
        "Mevrouw heeft een scootmobiel via de Wmo maar kan niet over de kapotte stoep, "
        "wie repareert de stoeptegel?"
    )

    decision = decider.decide(Query(question))

    # The first rule names the context (the Wmo); the question is about the pavement.
    assert rules.route(question).department == "sociaal-domein"
    assert (decision.department, decision.reason) == ("openbare-ruimte", "rule")
    assert "Ook een regel voor Sociaal Domein" in decision.explanation
    assert decision.confidence is not None


def test_the_model_decides_what_no_rule_recognises(decider: Decider) -> None:
    english = decider.decide(Query("My bin was not emptied this week"))

    assert (english.department, english.reason) == ("afval", "model")
    assert english.explanation.startswith("Lijkt op eerdere vragen voor Afvalinzameling (")
    assert 1 <= len(english.similar) <= 3
    assert english.model_version == decider.model_version


@pytest.mark.parametrize("question", ["🙂🙂🙂", "?!", "Wie kann ich meinen Hund anmelden?", ""])
def test_what_neither_decider_knows_goes_to_triage(decider: Decider, question: str) -> None:
    decision = decider.decide(Query(question))

    assert (decision.department, decision.reason) == ("kcc-triage", "fallback")
    assert "KCC Triage kiest de afdeling" in decision.explanation


def test_the_longest_question_gets_a_decision(decider: Decider) -> None:
    # 3,900 characters: the most the intake accepts is 4,000.
    decision = decider.decide(Query("Mijn paspoort is verlopen en ik moet op reis. " * 85))

    assert decision.department == "burgerzaken"


def test_a_category_that_contradicts_the_text_is_weighed_like_a_rule(decider: Decider) -> None:
    question = "Mijn paspoort is verlopen, kan ik een nieuw aanvragen?"

    decision = decider.decide(Query(question, category="afval"))

    assert decision.department == "burgerzaken"
    assert "Afvalinzameling" in decision.explanation


def test_a_forward_never_returns_to_the_department_that_gave_it_away(decider: Decider) -> None:
    query = Query("My bin was not emptied this week", exclude=frozenset({"afval"}))

    assert decider.decide(query).department != "afval"


def test_without_a_model_the_rules_decide_exactly_as_before(
    rules: RuleSet, dev_set_path: Path
) -> None:
    alone = Decider(rules)
    for row in read_labelled_file(dev_set_path):
        decision = alone.decide(Query(row.question, row.category))
        assert decision.department == rules.route(row.question, row.category).department
        assert decision.model_version is None
        assert decision.confidence is None


def test_a_batch_decides_as_one_by_one(decider: Decider, dev_set_path: Path) -> None:
    queries = [Query(r.question, r.category) for r in read_labelled_file(dev_set_path)][:40]

    assert decider.decide_many(queries) == [decider.decide(q) for q in queries]
