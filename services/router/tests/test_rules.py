"""The rules engine: word forms, first match, unless, exclude, categories, priority."""

from __future__ import annotations

from pathlib import Path

import pytest
from kcc_shared.examples import LabelledQuestion, read_labelled_file
from kcc_shared.organisation import Organisation, load_organisation
from kcc_shared.text import normalise, word_forms
from router.decision import Decider
from router.evaluation import evaluate
from router.rules import RuleSet

SLA = """\
    sla:
      urgent: {first_response: 1h, resolution: 4h}
      high: {first_response: 2h, resolution: 8h}
      normal: {first_response: 4h, resolution: 24h}
      low: {first_response: 8h, resolution: 40h}
"""

DEPARTMENTS = (
    "burgerzaken",
    "belastingen",
    "vergunningen",
    "parkeren",
    "afval",
    "openbare-ruimte",
    "juridische-zaken",
    "kcc-triage",
)

MINI = (
    """\
version: 1
organisation: {name: Gemeente Klein}
calendars:
  kantoor:
    timezone: Europe/Amsterdam
    opening_hours: {monday: ["09:00-17:00"]}
departments:
"""
    + "".join(
        f"  - id: {d}\n    name: {d.title()}\n    calendar: kantoor\n{SLA}" for d in DEPARTMENTS
    )
    + """\
categories:
  - {id: documenten, label: Reisdocumenten, department: burgerzaken}
  - {id: parkeren, label: Parkeren, department: parkeren}
  - {id: overig, label: Overig, department: kcc-triage}
fallback_department: kcc-triage
rules:
  - id: juridisch
    department: juridische-zaken
    keywords: [aansprakelijk, schadevergoeding]
    phrases: ["schade aan mijn"]
  - id: parkeren
    department: parkeren
    keywords: [parkeervergunning, naheffing]
  - id: belastingen
    department: belastingen
    keywords: [heffing, aanslag, woz]
  - id: vergunningen
    department: vergunningen
    keywords: [vergunning, sloop, café]
    unless: [milieustraat, grof vuil]
  - id: spoed
    department: burgerzaken
    keywords: [spoedaanvraag]
    priority: {raise_to: high}
  - id: burgerzaken
    department: burgerzaken
    categories: [documenten]
    keywords: [paspoort, id-kaart]
    phrases: ["akte van overlijden"]
    patterns: ['\\bvog\\b']
  - id: afval
    department: afval
    keywords: [container, milieustraat, pas, tak]
  - id: gevaar
    department: openbare-ruimte
    keywords: [levensgevaarlijk]
    priority: {set: urgent}
  - id: openbare-ruimte
    department: openbare-ruimte
    keywords: [lantaarn, stoeptegel, boom]
"""
)


@pytest.fixture
def organisation(tmp_path: Path) -> Organisation:
    path = tmp_path / "organisation.yaml"
    path.write_text(MINI, encoding="utf-8")
    return load_organisation(path)


@pytest.fixture
def ruleset(organisation: Organisation) -> RuleSet:
    return RuleSet.from_organisation(organisation)


@pytest.fixture(scope="module")
def default_ruleset() -> RuleSet:
    return RuleSet.from_organisation(load_organisation())


def test_normalise_drops_case_accents_and_punctuation() -> None:
    assert normalise("ID-kaart kwijt, auto's & één Paspoort!") == (
        "id kaart kwijt autos een paspoort"
    )
    assert normalise("Café  Zoë\u2019s\tterras") == "cafe zoes terras"


@pytest.mark.parametrize(
    ("word", "form"),
    [
        ("container", "containers"),
        ("paspoort", "paspoorten"),
        ("tak", "takken"),
        ("boom", "bomen"),
        ("straat", "straten"),
        ("huis", "huizen"),
        ("brief", "brieven"),
        ("boete", "boeten"),
        ("auto", "autos"),
        ("pas", "pasje"),
        ("pas", "pasjes"),
        ("boom", "boompje"),
        ("kind", "kinderen"),
        ("mogelijkheid", "mogelijkheden"),
        ("gevaarlijk", "gevaarlijke"),
    ],
)
def test_word_forms(word: str, form: str) -> None:
    assert form in word_forms(word)


@pytest.mark.parametrize(
    ("question", "department", "matched"),
    [
        ("Twee containers niet geleegd", "afval", "keyword container: containers"),
        (
            "Omgevingsvergunning aangevraagd",
            "vergunningen",
            "keyword vergunning: omgevingsvergunning",
        ),
        ("Vergunningen voor een dakkapel?", "vergunningen", "keyword vergunning: vergunningen"),
        ("PASPOORT VERLOPEN", "burgerzaken", "keyword paspoort"),
        ("Status paspoortaanvraag?", "burgerzaken", "keyword paspoort: paspoortaanvraag"),
        ("Waar is mijn ID-kaart?", "burgerzaken", "keyword id-kaart"),
        ("id kaarten van de kinderen", "burgerzaken", "keyword id-kaart: id kaarten"),
        ("Het cafe wil langer open", "vergunningen", "keyword café"),
        ("Het CAFÉ wil langer open", "vergunningen", "keyword café"),
        ("Straatlantaarn brandt niet", "openbare-ruimte", "keyword lantaarn: straatlantaarn"),
        ("Bomen langs de weg", "openbare-ruimte", "keyword boom: bomen"),
        ("Takken op het pad", "afval", "keyword tak: takken"),
        ("Mijn pasje werkt niet", "afval", "keyword pas: pasje"),
        ("Rioolheffing te hoog", "belastingen", "keyword heffing: rioolheffing"),
        ("Hoeveel is mijn WOZ?", "belastingen", "keyword woz"),
        (
            "Aktes van overlijden nodig",
            "burgerzaken",
            "phrase akte van overlijden: aktes van overlijden",
        ),
        ("VOG aanvragen", "burgerzaken", "pattern \\bvog\\b: vog"),
    ],
)
def test_word_forms_compounds_case_and_accents_match(
    ruleset: RuleSet, question: str, department: str, matched: str
) -> None:
    decision = ruleset.route(question)

    assert decision.department == department
    assert decision.reason == "rule"
    assert matched in decision.matched


@pytest.mark.parametrize(
    "question",
    [
        "Passagiers in de bus",  # "pas" is short: whole words only, no compounds
        "De speeltoestellen zijn kapot",
        "Ontheffing nodig voor de markt",  # not a kind of "heffing"
        "Boomstam op straat",  # "boom" is short: no compounds
        "Vogels in de tuin",  # the pattern wants the whole word "vog"
        "Overlijden van de akte",  # a phrase keeps its word order
        "Woonwijk",  # "woz" is not a prefix of anything
    ],
)
def test_no_false_matches(ruleset: RuleSet, question: str) -> None:
    decision = ruleset.route(question)

    assert decision.department == "kcc-triage"
    assert decision.rule_id is None
    assert decision.reason == "fallback"
    assert decision.matched == ()


def test_first_match_wins_and_explain_shows_the_rest(ruleset: RuleSet) -> None:
    question = "Naheffingsaanslag ontvangen"

    decision = ruleset.route(question)
    explanation = ruleset.explain(question)

    assert (decision.department, decision.rule_id) == ("parkeren", "parkeren")
    assert explanation.decision == decision
    outcomes = [(t.rule_id, t.outcome) for t in explanation.trace]
    assert outcomes == [("parkeren", "decided"), ("belastingen", "also-matched")]


def test_unless_vetoes_a_rule_and_the_next_one_decides(ruleset: RuleSet) -> None:
    question = "Sloopafval naar de milieustraat brengen?"

    decision = ruleset.route(question)
    vetoed = ruleset.explain(question).trace[0]

    assert decision.department == "afval"
    assert decision.matched == ("keyword milieustraat",)
    assert (vetoed.rule_id, vetoed.outcome) == ("vergunningen", "vetoed")
    assert vetoed.vetoed_by == ("unless milieustraat",)
    assert ruleset.route("Sloopmelding voor de schuur").department == "vergunningen"
    assert ruleset.route("Sloop en grof vuil").department == "kcc-triage"


def test_exclude_skips_the_departments_rules(ruleset: RuleSet) -> None:
    question = "Gevallen over een stoeptegel, ik wil schadevergoeding"

    first = ruleset.route(question)
    forwarded = ruleset.route(question, exclude=frozenset({"juridische-zaken"}))
    traced = ruleset.explain(question, exclude=frozenset({"juridische-zaken"})).trace

    assert first.department == "juridische-zaken"
    assert forwarded.department == "openbare-ruimte"
    assert forwarded.rule_id == "openbare-ruimte"
    assert [(t.rule_id, t.outcome) for t in traced] == [
        ("juridisch", "excluded"),
        ("openbare-ruimte", "decided"),
    ]


def test_excluding_the_fallback_still_falls_back(ruleset: RuleSet) -> None:
    decision = ruleset.route("Iets heel anders", exclude=frozenset({"kcc-triage"}))

    assert decision.department == "kcc-triage"
    assert decision.reason == "fallback"


def test_category_in_a_rule_decides_with_reason_category(ruleset: RuleSet) -> None:
    decision = ruleset.route("Vraag van een inwoner", category="documenten")

    assert decision.department == "burgerzaken"
    assert decision.rule_id == "burgerzaken"
    assert decision.reason == "category"
    assert decision.matched == ("category documenten",)


def test_category_and_text_both_reported(ruleset: RuleSet) -> None:
    decision = ruleset.route("Paspoort kwijt", category="documenten")

    assert decision.reason == "category"
    assert decision.matched == ("category documenten", "keyword paspoort")


def test_an_earlier_text_rule_beats_a_later_category(ruleset: RuleSet) -> None:
    decision = ruleset.route("Aansprakelijk voor schade", category="documenten")

    assert decision.department == "juridische-zaken"
    assert decision.reason == "rule"


def test_category_without_a_rule_goes_to_its_catalog_department(ruleset: RuleSet) -> None:
    decision = ruleset.route("Vraag van een inwoner", category="parkeren")
    excluded = ruleset.route(
        "Vraag van een inwoner", category="parkeren", exclude=frozenset({"parkeren"})
    )

    assert (decision.department, decision.rule_id, decision.reason) == (
        "parkeren",
        None,
        "category",
    )
    assert decision.matched == ("category parkeren (catalog)",)
    assert excluded.department == "kcc-triage"
    assert excluded.reason == "fallback"


def test_unknown_category_matches_nothing(ruleset: RuleSet) -> None:
    decision = ruleset.route("Vraag van een inwoner", category="bestaat-niet")

    assert decision.department == "kcc-triage"
    assert decision.reason == "fallback"


@pytest.mark.parametrize(
    ("question", "current", "expected"),
    [
        ("Spoedaanvraag paspoort", "low", "high"),
        ("Spoedaanvraag paspoort", "normal", "high"),
        ("Spoedaanvraag paspoort", "urgent", "urgent"),
        ("Levensgevaarlijke situatie", "low", "urgent"),
        ("Levensgevaarlijke situatie", "high", "urgent"),
        ("Paspoort kwijt", "low", "low"),
        ("Iets heel anders", "normal", "normal"),
    ],
)
def test_priority_set_and_raise(
    ruleset: RuleSet, question: str, current: str, expected: str
) -> None:
    assert ruleset.route(question).apply_priority(current) == expected


def test_priority_change_is_on_the_decision(ruleset: RuleSet) -> None:
    spoed = ruleset.route("Spoedaanvraag paspoort").priority_change
    gevaar = ruleset.route("levensgevaarlijk").priority_change

    assert spoed is not None
    assert (spoed.mode, spoed.priority) == ("raise_to", "high")
    assert gevaar is not None
    assert (gevaar.mode, gevaar.priority) == ("set", "urgent")
    assert ruleset.route("Paspoort kwijt").priority_change is None


def test_apply_priority_rejects_unknown_priority(ruleset: RuleSet) -> None:
    with pytest.raises(ValueError, match="unknown priority"):
        ruleset.route("Paspoort kwijt").apply_priority("spoed")


def test_decision_names_the_rules_version(ruleset: RuleSet, organisation: Organisation) -> None:
    assert ruleset.route("Paspoort").rules_version == organisation.version
    assert ruleset.route("niets").rules_version == organisation.version


# -- the packaged default rules --------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "department"),
    [
        # "bezwaar" alone says nothing; the rest of the question decides.
        ("Ik wil bezwaar maken tegen de WOZ-beschikking", "belastingen"),
        ("Bezwaar tegen de omgevingsvergunning van de buren", "vergunningen"),
        ("Bezwaar tegen een naheffingsaanslag", "parkeren"),
        ("Ik wil bezwaar maken", "kcc-triage"),
        # "asbest" alone says nothing either.
        ("Sloopmelding voor een schuurtje met asbest", "vergunningen"),
        ("Asbest naar de milieustraat brengen, mag dat?", "afval"),
        ("Sloopafval naar de milieustraat brengen", "afval"),
        ("Asbest", "kcc-triage"),
        # A damage claim is a claim, whatever it mentions.
        (
            "Fiets kapot door een gat in het fietspad, ik stel de gemeente aansprakelijk",
            "juridische-zaken",
        ),
        ("Gat in het fietspad", "openbare-ruimte"),
        ("Tak van een gemeenteboom op mijn auto, ik wil schadevergoeding", "juridische-zaken"),
        ("Boom in de achtertuin kappen", "vergunningen"),
        ("Kerstbomen ophalen in januari", "afval"),
        # The broad words come last.
        ("Horecaondernemer vraagt om een terrasvergunning", "vergunningen"),
        ("Ondernemer begrijpt de aanslag rioolheffing niet", "belastingen"),
        ("Startende ondernemer zoekt advies", "ondernemers"),
        ("Klacht: de container is al twee weken niet geleegd", "afval"),
        ("Klacht over de behandeling aan de balie", "juridische-zaken"),
        # Moving house is context, not the question.
        ("Verhuisd, krijg ik afvalstoffenheffing terug?", "belastingen"),
        ("Net verhuisd en er staan geen containers", "afval"),
        ("Verhuizing doorgeven", "burgerzaken"),
    ],
)
def test_default_rules_hard_cases(default_ruleset: RuleSet, question: str, department: str) -> None:
    assert default_ruleset.route(question).department == department


def test_default_rules_priorities(default_ruleset: RuleSet) -> None:
    assert default_ruleset.route("Spoedaanvraag paspoort").apply_priority("normal") == "high"
    assert default_ruleset.route("Dreigende huisuitzetting").apply_priority("normal") == "urgent"
    assert default_ruleset.route("Paspoort verlengen").apply_priority("normal") == "normal"


@pytest.fixture(scope="module")
def labelled(dev_set_path: Path) -> list[LabelledQuestion]:
    return read_labelled_file(dev_set_path)


def test_default_rules_on_the_dev_set(
    default_ruleset: RuleSet, labelled: list[LabelledQuestion]
) -> None:
    result = evaluate(Decider(default_ruleset), labelled).overall

    assert result.total == len(labelled) > 100
    assert result.accuracy >= 0.90
    assert result.wrong_rate <= 0.03


def test_route_and_explain_agree(
    default_ruleset: RuleSet, labelled: list[LabelledQuestion]
) -> None:
    for row in labelled:
        for exclude in (frozenset(), frozenset({row.department})):
            routed = default_ruleset.route(row.question, row.category, exclude)
            explained = default_ruleset.explain(row.question, row.category, exclude)
            assert explained.decision == routed, row.id
