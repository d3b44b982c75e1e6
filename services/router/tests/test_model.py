"""The routing model: training, predictions, and model files that can or cannot be used."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from router.errors import ModelError
from router.model import RoutingModel, TrainingExample, train

EXAMPLES = {
    "afval": [
        "De container is niet geleegd",
        "Grofvuil ophalen, afspraak maken",
        "Wanneer is de ophaaldag voor papier",
        "Mijn kliko is kapot",
        "Milieustraat openingstijden",
        "Waar breng ik oud frituurvet heen",
    ],
    "parkeren": [
        "Parkeervergunning aanvragen voor mijn tweede auto",
        "Bezoekers aanmelden voor parkeren",
        "Bezwaar tegen een parkeerboete",
        "Hoe werkt de parkeerautomaat",
        "Gehandicaptenparkeerkaart aanvragen",
        "Laadpaal voor mijn elektrische auto",
    ],
    "burgerzaken": [
        "Paspoort verlopen, nieuw aanvragen",
        "Verhuizing doorgeven",
        "Uittreksel uit de BRP nodig",
        "ID-kaart kwijt op vakantie",
        "Geboorteaangifte doen",
        "Rijbewijs verlengen",
    ],
}


def examples(departments: dict[str, list[str]] = EXAMPLES) -> list[TrainingExample]:
    return [
        TrainingExample(f"{department}-{i}", question, department)
        for department, questions in departments.items()
        for i, question in enumerate(questions)
    ]


@pytest.fixture(scope="module")
def model() -> RoutingModel:
    return train(examples())


def test_predicts_the_department_of_similar_questions(model: RoutingModel) -> None:
    afval, parkeren = model.predict(["kliko niet geleegd", "parkeervergunning aanvragen"])

    assert afval.department == "afval"
    assert parkeren.department == "parkeren"
    assert sum(afval.probabilities.values()) == pytest.approx(1.0)
    assert afval.confidence == afval.probability("afval")


def test_similar_examples_come_from_the_predicted_department(model: RoutingModel) -> None:
    (prediction,) = model.predict(["Mijn kliko is stuk en niet geleegd"])

    assert prediction.similar
    assert {s.department for s in prediction.similar} == {"afval"}
    assert prediction.similar[0].question == "Mijn kliko is kapot"


def test_english_questions_are_read_by_the_sentence_head(model: RoutingModel) -> None:
    (prediction,) = model.predict(["My passport has expired, how do I get a new one?"])

    assert prediction.department == "burgerzaken"


def test_a_question_without_known_text_has_no_confidence(model: RoutingModel) -> None:
    emoji, script, empty = model.predict(["🙂🙂🙂", "日本語の質問", ""])

    assert emoji.confidence == script.confidence == empty.confidence == 0.0
    assert emoji.similar == ()


def test_a_huge_question_is_predicted_from_its_beginning(model: RoutingModel) -> None:
    (prediction,) = model.predict(["Parkeren met een parkeervergunning. " + "bla " * 20_000])

    assert prediction.department == "parkeren"


def test_the_model_file_keeps_no_one_off_words_and_no_numbers(tmp_path: Path) -> None:
    once = TrainingExample("x", "Mevrouw Jansen van de Lindelaan 12 belt, 06-12345678", "afval")
    model = train([*examples(), once])
    model.save(tmp_path / "model.npz")

    arrays = _arrays(tmp_path / "model.npz")
    words = {str(w) for w in arrays["word_vocabulary"]}
    chars = {str(c) for c in arrays["char_vocabulary"]}
    assert "jansen" not in words
    assert "lindelaan" not in words
    assert not any(c.isdigit() for term in words | chars for c in term)


def test_saved_and_loaded_model_predicts_the_same(model: RoutingModel, tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    model.save(path)

    loaded = RoutingModel.load(path)
    questions = ["kliko stuk", "parkeervergunning", "passport expired", "paspoort kwijt"]

    assert loaded.version == model.version
    before, after = model.predict(questions), loaded.predict(questions)
    for old, new in zip(before, after, strict=True):
        assert new.department == old.department
        assert new.confidence == pytest.approx(old.confidence, abs=1e-5)
    assert path.stat().st_mode & 0o777 == 0o644


def test_the_version_follows_the_examples() -> None:
    same = train(list(reversed(examples())))
    changed = train(examples({**EXAMPLES, "afval": [*EXAMPLES["afval"], "Glasbak vol"]}))

    assert same.version == train(examples()).version
    assert changed.version != same.version


def test_two_departments_are_enough() -> None:
    model = train(examples({k: EXAMPLES[k] for k in ("afval", "parkeren")}))

    (prediction,) = model.predict(["container niet geleegd"])

    assert model.departments == ("afval", "parkeren")
    assert prediction.department == "afval"


def test_departments_with_too_few_examples_are_left_out() -> None:
    model = train(examples({**EXAMPLES, "wonen": ["Urgentie aanvragen"]}))

    assert "wonen" not in model.departments
    assert model.header["left_out"] == ["wonen"]
    with pytest.raises(ValueError, match="at least two departments"):
        train(examples({"afval": EXAMPLES["afval"], "wonen": ["Urgentie"]}))


def test_a_model_for_other_departments_is_refused(model: RoutingModel) -> None:
    with pytest.raises(ModelError, match="predicts departments the organisation file does not"):
        model.check_departments({"afval", "burgerzaken"})
    model.check_departments({"afval", "burgerzaken", "parkeren", "wonen"})


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing", "no such model file"),
        ("text", "not a model file"),
        ("truncated", "not a model file"),
        ("no-coef", "missing coef"),
        ("format", "model format 99, this router reads format 2"),
        ("nan", "values that are not finite"),
        ("shape", r"do not fit together \(corrupt file\): coef"),
        ("header", "the model header is corrupt"),
        ("pickle", "not a model file"),
        ("npy", "a single array, not a model archive"),
    ],
)
def test_a_broken_model_file_is_refused_with_the_reason(
    model: RoutingModel, tmp_path: Path, damage: str, message: str
) -> None:
    good = tmp_path / "good.npz"
    model.save(good)
    bad = tmp_path / "bad.npz"
    arrays = _arrays(good)
    if damage == "text":
        bad.write_text("dit is geen model")
    elif damage == "truncated":
        bad.write_bytes(good.read_bytes()[:1000])
    elif damage == "npy":
        with bad.open("wb") as handle:
            np.save(handle, np.zeros(3))
    elif damage == "pickle":
        np.savez(bad, coef=np.array([{"a": 1}], dtype=object))
    elif damage != "missing":
        if damage == "no-coef":
            del arrays["coef"]
        elif damage == "format":
            header = json.loads(arrays["header"].tobytes())
            arrays["header"] = np.frombuffer(json.dumps({**header, "format": 99}).encode(), "u1")
        elif damage == "nan":
            arrays["coef"][0, 0] = np.nan
        elif damage == "shape":
            arrays["coef"] = arrays["coef"][:, :-1]
        elif damage == "header":
            arrays["header"] = np.frombuffer(b"{not json", "u1")
        np.savez(bad, **arrays)  # type: ignore[arg-type]

    with pytest.raises(ModelError, match=message):
        RoutingModel.load(bad)


def test_a_model_file_is_a_plain_zip_of_arrays(model: RoutingModel, tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    model.save(path)

    with zipfile.ZipFile(path) as archive:
        names = sorted(archive.namelist())

    assert "header.npy" in names
    assert all(name.endswith(".npy") for name in names)
