"""`kcc rules explain` and `kcc rules eval`, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from kcc_shared.organisation import load_organisation
from router.cli import rules_group


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    rows = [
        {"id": "q1", "question": "Paspoort verlopen", "expected_department": "burgerzaken"},
        {"id": "q2", "question": "Container niet geleegd", "expected_department": "afval"},
        {
            "id": "q3",
            "question": "Meneer met BSN 111222333 wil iets weten",
            "expected_department": "burgerzaken",
        },
        {
            "id": "q4",
            "question": "Hondenbelasting",
            "expected_department": "belastingen",
            "category": "belastingen",
        },
    ]
    path = tmp_path / "vragen.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_explain_prints_the_decision(runner: CliRunner) -> None:
    version = load_organisation().version

    result = runner.invoke(rules_group, ["explain", "Mijn paspoort is verlopen, spoedaanvraag?"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "department:    burgerzaken (Burgerzaken)"
    assert lines[1].startswith("rule:          burgerzaken-spoed (line ")
    assert lines[2] == "reason:        rule"
    assert lines[3] == "matched:       keyword spoedaanvraag"
    assert lines[4] == "priority:      raise to high"
    assert lines[5].startswith(f"rules version: {version} (")
    assert "burgerzaken (line" in result.stdout  # the generic rule also matched
    assert "also-matched" in result.stdout


def test_explain_with_category(runner: CliRunner) -> None:
    result = runner.invoke(
        rules_group, ["explain", "Vraag van een inwoner", "--category", "documenten"]
    )

    assert result.exit_code == 0, result.output
    assert "department:    burgerzaken" in result.stdout
    assert "reason:        category" in result.stdout
    assert "matched:       category documenten" in result.stdout


def test_explain_fallback(runner: CliRunner) -> None:
    result = runner.invoke(rules_group, ["explain", "Meneer wil graag iemand spreken"])

    assert result.exit_code == 0, result.output
    assert "department:    kcc-triage (KCC Triage)" in result.stdout
    assert "rule:          none: no rule matched; fallback department" in result.stdout
    assert "reason:        fallback" in result.stdout
    assert "matched:       -" in result.stdout
    assert "priority:      unchanged" in result.stdout


def test_explain_shows_a_veto(runner: CliRunner) -> None:
    result = runner.invoke(rules_group, ["explain", "Sloopafval naar de milieustraat"])

    assert result.exit_code == 0, result.output
    assert "department:    afval" in result.stdout
    assert "vergunningen (line" in result.stdout
    assert "vetoed by unless milieustraat" in result.stdout


def test_explain_with_exclude(runner: CliRunner) -> None:
    result = runner.invoke(
        rules_group,
        ["explain", "Stoeptegel los, wil schadevergoeding", "--exclude", "juridische-zaken"],
    )

    assert result.exit_code == 0, result.output
    assert "department:    openbare-ruimte" in result.stdout
    assert "(line" in result.stdout
    assert "excluded" in result.stdout


def test_explain_unknown_category_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(rules_group, ["explain", "Paspoort", "--category", "documentn"])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Error: unknown category 'documentn'; known categories: ")
    assert "documenten" in result.stderr
    assert "Traceback" not in result.output


def test_explain_unknown_excluded_department_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(rules_group, ["explain", "Paspoort", "--exclude", "burgerzaak"])

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: unknown department 'burgerzaak' in --exclude")


def test_explain_with_an_invalid_organisation_file(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "org.yaml"
    bad.write_text("version: 1\norganisation: {name: x}\n", encoding="utf-8")

    result = runner.invoke(rules_group, ["explain", "Paspoort", "--file", str(bad)])

    assert result.exit_code == 1
    assert f"{bad}:1: the file: missing required field 'calendars'" in result.stderr
    assert "Traceback" not in result.output


def test_explain_with_a_missing_organisation_file(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        rules_group, ["explain", "Paspoort", "--file", str(tmp_path / "weg.yaml")]
    )

    assert result.exit_code == 1
    assert f"{tmp_path / 'weg.yaml'}: file not found" in result.stderr


def test_eval_prints_figures_confusion_and_misses(runner: CliRunner, dataset: Path) -> None:
    result = runner.invoke(rules_group, ["eval", str(dataset)])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "questions             4" in out
    assert "right department      3   75.0%" in out
    assert "wrong department      0    0.0%" in out
    assert "triage                1   25.0%" in out
    assert "confusion (expected -> got):" in out
    assert "burgerzaken     2  -> burgerzaken 1, kcc-triage 1" in out
    assert "misses (1):" in out
    assert "q3: expected burgerzaken, got kcc-triage (fallback)" in out
    # A citizen service number in the data never reaches the terminal.
    assert "111222333" not in result.output
    assert "Meneer met [BSN] wil iets weten" in out


def test_eval_json(runner: CliRunner, dataset: Path) -> None:
    result = runner.invoke(rules_group, ["eval", str(dataset), "--json"])

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["total"] == 4
    assert figures["accuracy"] == 0.75
    assert figures["wrong_rate"] == 0.0
    assert figures["triage_rate"] == 0.25
    assert figures["rules_version"] == load_organisation().version
    assert figures["confusion"]["burgerzaken"] == {"burgerzaken": 1, "kcc-triage": 1}
    assert figures["misses"] == [
        {
            "id": "q3",
            "expected": "burgerzaken",
            "got": "kcc-triage",
            "rule_id": None,
            "reason": "fallback",
            "matched": [],
            "question": "Meneer met [BSN] wil iets weten",
        }
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            '{"question": "Paspoort", "expected_department": "burgerzaken"}\n{"question": \n',
            ":2: not valid JSON: Expecting value (column 14)",
        ),
        (
            '{"question": "Paspoort", "expected_department": "burgerzaken"}\n\n[1, 2]\n',
            ":3: expected a JSON object",
        ),
        (
            '{"question": "Paspoort", "expected_department": "burgerzakn"}\n',
            ":1: unknown expected_department 'burgerzakn'",
        ),
        (
            '{"question": "Paspoort", "expected_department": "burgerzaken", "category": "x"}\n',
            ":1: unknown category 'x'",
        ),
        ("\n\n", ": no questions in the file"),
    ],
    ids=["bad json", "not an object", "unknown department", "unknown category", "empty"],
)
def test_eval_bad_dataset_names_the_line(
    runner: CliRunner, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "vragen.jsonl"
    path.write_text(content, encoding="utf-8")

    result = runner.invoke(rules_group, ["eval", str(path)])

    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {path}{message}"
    assert "Traceback" not in result.output


def test_eval_missing_dataset(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(rules_group, ["eval", str(tmp_path / "weg.jsonl")])

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_eval_dataset_not_utf8(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "vragen.jsonl"
    path.write_bytes(b'{"question": "caf\xe9"}\n')

    result = runner.invoke(rules_group, ["eval", str(path)])

    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: {path}: not UTF-8 text"


def test_eval_on_the_dev_set(runner: CliRunner, dev_set_path: Path) -> None:
    result = runner.invoke(rules_group, ["eval", str(dev_set_path), "--json"])

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["accuracy"] >= 0.90
    assert figures["wrong_rate"] <= 0.03
