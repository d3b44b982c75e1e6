from __future__ import annotations

import threading

import pytest
from kcc_shared.similarity import Entry, SimilarityIndex, meaning

EARLIER = {
    "grofvuil-niet": "Grofvuil is niet opgehaald terwijl de afspraak vandaag was",
    "grofvuil-aanmelden": "Hoe meld ik grofvuil aan om te laten ophalen?",
    "paspoort": "Paspoort verloopt binnenkort, hoe maak ik een afspraak voor een nieuw paspoort?",
    "woz": "Wanneer moet het bezwaar tegen de WOZ-waarde binnen zijn?",
    "lantaarn": "Lantaarnpaal brandt niet meer in de Dahliastraat",
}


@pytest.fixture(scope="module")
def index() -> SimilarityIndex:
    keys = list(EARLIER)
    vectors = meaning([EARLIER[k] for k in keys])
    return SimilarityIndex(Entry(k, v) for k, v in zip(keys, vectors, strict=True))


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("kliko met grofvuil staat er nog, ophaalafspraak was vanochtend", "grofvuil-niet"),
        ("mevrouw wil een bank en een kast laten ophalen, hoe moet dat", "grofvuil-aanmelden"),
        ("my passport expires next month, how do I renew it", "paspoort"),
        ("straatverlichting kapot dahliastraat", "lantaarn"),
        ("tot wanneer kan ik bezwaar maken tegen de woz waarde", "woz"),
    ],
)
def test_the_question_that_says_the_same_comes_first(
    index: SimilarityIndex, question: str, expected: str
) -> None:
    matches = index.search(question)
    assert matches, f"nothing found for {question!r}"
    assert matches[0].key == expected, matches


def test_a_question_far_from_everything_gets_no_suggestion(index: SimilarityIndex) -> None:
    # Only the clearly foreign: embeddings put any two Dutch sentences fairly close.
    assert index.search("Wie won de wedstrijd van Ajax gisteren") == []
    assert index.search("The weather is nice") == []
    assert index.search("asdf qwerty 1234") == []


def test_a_removed_question_is_never_suggested_and_a_replaced_one_is_found_by_its_new_text(
    index: SimilarityIndex,
) -> None:
    local = SimilarityIndex()
    texts = [EARLIER["woz"], EARLIER["lantaarn"]]
    local.add(Entry(k, v) for k, v in zip(["a", "b"], meaning(texts), strict=True))
    local.remove("a")
    assert [m.key for m in local.search(EARLIER["woz"], threshold=0.0)] == ["b"]
    assert len(local) == 1
    [vector] = meaning([EARLIER["paspoort"]])
    local.add([Entry("b", vector)])
    assert len(local) == 1
    assert local.search("paspoort verlopen afspraak maken")[0].key == "b"


def test_allowed_limits_suggestions_to_what_the_reader_may_see(index: SimilarityIndex) -> None:
    question = "grofvuil niet opgehaald"
    assert index.search(question)[0].key == "grofvuil-niet"
    matches = index.search(question, allowed=frozenset({"grofvuil-aanmelden", "woz"}), limit=5)
    assert {m.key for m in matches} <= {"grofvuil-aanmelden", "woz"}


def test_scores_come_best_first_and_respect_the_limit(index: SimilarityIndex) -> None:
    matches = index.search("grofvuil", limit=2, threshold=0.0)
    assert len(matches) == 2
    assert matches[0].score >= matches[1].score


def test_a_vector_of_another_model_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="a meaning vector has 3 numbers, expected 384"):
        SimilarityIndex([Entry("x", b"\0" * 12)])


def test_searching_while_questions_are_added_from_another_thread() -> None:
    # The desk's web threads search while the consumer adds answered questions.
    texts = [f"{EARLIER['lantaarn']} nummer {i}" for i in range(40)]
    vectors = meaning(texts)
    local = SimilarityIndex()
    errors: list[BaseException] = []

    def add() -> None:
        try:
            for i, vector in enumerate(vectors):
                local.add([Entry(str(i), vector)])
        except BaseException as exc:  # reported below: a thread's failure is not lost
            errors.append(exc)

    writer = threading.Thread(target=add)
    writer.start()
    while writer.is_alive():
        local.search("lantaarnpaal kapot", vector=vectors[0])
    writer.join()
    assert not errors
    assert len(local) == 40


def test_many_replacements_keep_one_row_per_question_and_find_the_latest_text() -> None:
    # Years of "herbruikbaar" ticked and withdrawn: the index holds what is current only.
    texts = [EARLIER["woz"], EARLIER["lantaarn"], EARLIER["paspoort"]]
    vectors = meaning(texts)
    local = SimilarityIndex()
    for round_ in range(100):
        local.add([Entry("a", vectors[round_ % 3]), Entry(f"b{round_ % 5}", vectors[2])])
        local.remove(f"b{(round_ + 1) % 5}")
    assert len(local) == 5  # "a" and four of the five "b"s
    # Round 99 left "a" with the WOZ question; its earlier texts are gone.
    assert local.search(EARLIER["woz"], limit=1)[0].key == "a"
    assert "a" not in {m.key for m in local.search(EARLIER["lantaarn"], limit=5)}
