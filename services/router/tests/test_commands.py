"""`kcc router run` refuses a broken organisation or model file; `kcc router train`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from kcc_shared.organisation import load_organisation
from router.commands import router_group
from router.model import RoutingModel


def test_run_refuses_an_invalid_organisation_file(tmp_path: Path) -> None:
    broken = tmp_path / "organisation.yaml"
    broken.write_text("version: 1\norganisation: {name: X}\ncalendars: {}\n")

    result = CliRunner().invoke(
        router_group,
        ["run"],
        env={"KCC_ORGANISATION_FILE": str(broken), "KCC_BROKER_URL": "memory://"},
    )

    assert result.exit_code == 2
    assert "the organisation file is invalid; not starting" in result.output
    assert f"{broken}:" in result.output


def test_run_refuses_bad_configuration() -> None:
    result = CliRunner().invoke(router_group, ["run"], env={"KCC_PREFETCH": "veel"})

    assert result.exit_code == 2
    assert "KCC_PREFETCH" in result.output


def _organisation_with_examples(tmp_path: Path, examples: list[dict[str, str]]) -> Path:
    organisation = tmp_path / "organisation.yaml"
    organisation.write_bytes(Path(load_organisation().source).read_bytes())
    lines = [json.dumps(e, ensure_ascii=False) for e in examples]
    (tmp_path / "voorbeeldvragen.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return organisation


EXAMPLES = [
    {"question": q, "department": d}
    for d, questions in {
        "afval": ["Container niet geleegd", "Grofvuil ophalen", "Kliko kapot", "Glasbak vol"],
        "burgerzaken": ["Paspoort verlopen", "Verhuizing doorgeven", "Rijbewijs", "ID-kaart"],
        "kcc-triage": ["Algemene vraag"],
    }.items()
    for q in questions * 2
]


def test_train_writes_a_model_from_examples_and_history(tmp_path: Path) -> None:
    organisation = _organisation_with_examples(tmp_path, EXAMPLES)
    history = tmp_path / "historie.jsonl"
    history.write_text(
        '{"id": "r1", "question": "Wanneer komt de vuilniswagen, BSN 111222333", '
        '"department": "afval", "source": "historie"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "model.npz"

    result = CliRunner().invoke(
        router_group,
        ["train", "--file", str(organisation), "--history", str(history), "--out", str(out)],
    )

    assert result.exit_code == 0, result.output
    model = RoutingModel.load(out)
    assert model.departments == ("afval", "burgerzaken")
    assert f"model {model.version} written to {out}" in result.stdout
    assert "examples: 19 (voorbeeld 18, historie 1)" in result.stdout
    assert "parkeren                   0  (too few: the rules alone route here)" in result.stdout
    # History is trained on, never shown as an example to people.
    assert "r1" not in {e["id"] for e in model.header["examples"]}


@pytest.mark.parametrize(
    ("history", "message"),
    [
        ('{"question": "Hond", "department": "dierenzaken"}', ":1: unknown department"),
        ('{"question": ', ":1: not valid JSON"),
    ],
)
def test_train_refuses_bad_history_and_writes_nothing(
    tmp_path: Path, history: str, message: str
) -> None:
    organisation = _organisation_with_examples(tmp_path, EXAMPLES)
    path = tmp_path / "historie.jsonl"
    path.write_text(history + "\n", encoding="utf-8")
    out = tmp_path / "model.npz"

    result = CliRunner().invoke(
        router_group,
        ["train", "--file", str(organisation), "--history", str(path), "--out", str(out)],
    )

    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path}{message}")
    assert not out.exists()


def test_train_refuses_an_invalid_organisation_file_as_config_check_does(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "organisation.yaml"
    broken.write_text("version: 1\norganisation: {name: X}\n")
    out = tmp_path / "m.npz"

    result = CliRunner().invoke(router_group, ["train", "--file", str(broken), "--out", str(out)])

    assert result.exit_code == 1
    assert f"{broken}:1: the file: missing required field 'calendars'" in result.stderr
    assert "see `kcc config check`" in result.stderr
    assert not out.exists()


def test_train_refuses_examples_with_a_bsn(tmp_path: Path) -> None:
    bad = [*EXAMPLES, {"question": "Meneer met BSN 111222333", "department": "afval"}]
    organisation = _organisation_with_examples(tmp_path, bad)

    result = CliRunner().invoke(
        router_group, ["train", "--file", str(organisation), "--out", str(tmp_path / "m.npz")]
    )

    assert result.exit_code == 2
    assert "the question holds a citizen service number (BSN)" in result.stderr


def test_train_needs_somewhere_to_write(tmp_path: Path) -> None:
    organisation = _organisation_with_examples(tmp_path, EXAMPLES)

    result = CliRunner().invoke(
        router_group,
        ["train", "--file", str(organisation), "--out", str(tmp_path / "weg" / "m.npz")],
    )

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_run_refuses_a_broken_model(tmp_path: Path) -> None:
    model = tmp_path / "model.npz"
    model.write_text("geen model")

    result = CliRunner().invoke(
        router_group,
        ["run"],
        env={"KCC_ROUTING_MODEL": str(model), "KCC_BROKER_URL": "memory://"},
    )

    assert result.exit_code == 2
    assert "the routing model cannot be used; not starting" in result.output
