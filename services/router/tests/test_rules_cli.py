"""`kcc rules explain` and `kcc rules eval`, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from kcc_shared.organisation import load_organisation
from router.commands import rules_group


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


def test_explain_prints_both_deciders(runner: CliRunner) -> None:
    version = load_organisation().version

    result = runner.invoke(rules_group, ["explain", "Mijn paspoort is verlopen, spoedaanvraag?"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "department:    burgerzaken (Burgerzaken)"
    assert lines[1] == "decided by:    a rule"
    assert lines[2].startswith("why (Dutch):   Regel voor Burgerzaken: de vraag noemt ")
    assert "priority:      raise to high" in lines
    assert "the rules:" in lines
    assert any(line.startswith("  rule:          burgerzaken-spoed (line ") for line in lines)
    assert "  matched:       keyword spoedaanvraag" in lines
    assert any(line.startswith(f"  rules version: {version} (") for line in lines)
    assert "also-matched" in result.stdout  # the generic rule also matched
    assert any(line.startswith("the model (m-") for line in lines)
    assert any(line.startswith("  burgerzaken ") for line in lines)


def test_explain_rules_only(runner: CliRunner) -> None:
    result = runner.invoke(rules_group, ["explain", "My bin was not emptied", "--rules-only"])

    assert result.exit_code == 0, result.output
    assert "department:    kcc-triage (KCC Triage)" in result.stdout
    assert "the model: none" in result.stdout


def test_explain_with_a_broken_model(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "model.npz"
    broken.write_text("geen model")

    result = runner.invoke(rules_group, ["explain", "Paspoort", "--model", str(broken)])

    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {broken}: not a model file")


def test_explain_with_category(runner: CliRunner) -> None:
    result = runner.invoke(
        rules_group, ["explain", "Vraag van een inwoner", "--category", "documenten"]
    )

    assert result.exit_code == 0, result.output
    assert "department:    burgerzaken" in result.stdout
    assert "reason:        category" in result.stdout
    assert "matched:       category documenten" in result.stdout
    assert "decided by:    the agent's category" in result.stdout


def test_explain_fallback(runner: CliRunner) -> None:
    result = runner.invoke(rules_group, ["explain", "🙂 🙂"])

    assert result.exit_code == 0, result.output
    assert "department:    kcc-triage (KCC Triage)" in result.stdout
    assert "decided by:    nobody: triage chooses" in result.stdout
    assert "rule:          none: no rule matched; fallback department" in result.stdout
    assert "reason:        fallback" in result.stdout
    assert "matched:       -" in result.stdout
    assert "priority:      unchanged" in result.stdout
    assert "(no known words: the model has no opinion)" in result.stdout


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


def test_eval_prints_figures_and_misses(runner: CliRunner, dataset: Path) -> None:
    result = runner.invoke(rules_group, ["eval", str(dataset), "--rules-only"])

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "model none (the rules alone)" in out
    assert "questions             4" in out
    assert "right department      3   75.0%" in out
    assert "wrong department      0    0.0%" in out
    assert "triage                1   25.0%" in out
    assert "per expected department:" in out
    assert "per decider:" in out
    assert "per style:" not in out  # the file has no style field
    assert "precision / recall per department:" in out
    assert "misses (1):" in out
    assert "q3: expected burgerzaken, got kcc-triage (fallback)" in out
    # A citizen service number in the data never reaches the terminal.
    assert "111222333" not in result.output
    assert "Meneer met [BSN] wil iets weten" in out


def test_eval_json(runner: CliRunner, dataset: Path) -> None:
    result = runner.invoke(rules_group, ["eval", str(dataset), "--json", "--rules-only"])

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["total"] == 4
    assert figures["accuracy"] == 0.75
    assert figures["wrong_rate"] == 0.0
    assert figures["triage_rate"] == 0.25
    assert figures["rules_version"] == load_organisation().version
    assert figures["model_version"] is None
    assert figures["confusion"]["burgerzaken"] == {"burgerzaken": 1, "kcc-triage": 1}
    assert figures["by_decider"]["fallback"]["triaged"] == 1
    assert figures["threshold_curve"] == []
    assert figures["misses"] == [
        {
            "id": "q3",
            "expected": "burgerzaken",
            "got": "kcc-triage",
            "decider": "fallback",
            "rule_id": None,
            "confidence": None,
            "style": None,
            "question": "Meneer met [BSN] wil iets weten",
        }
    ]


def test_eval_with_the_model_reports_styles_deciders_and_the_curve(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "vragen.jsonl"
    rows = [
        {"question": "My bin was not emptied", "department": "afval", "style": "english"},
        {"question": "Paspoort verlopen", "department": "burgerzaken", "style": "plain"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")

    result = runner.invoke(rules_group, ["eval", str(path), "--json"])

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["model_version"].startswith("m-")
    assert figures["accuracy"] == 1.0
    assert set(figures["by_style"]) == {"english", "plain"}
    assert set(figures["by_decider"]) == {"model", "rule"}
    assert [point["threshold"] for point in figures["threshold_curve"]][:2] == [0.2, 0.3]


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
            ":1: unknown department 'burgerzakn'; known: afval, belastingen, burgerzaken,",
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
    assert result.stderr.strip().startswith(f"Error: {path}{message}")
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
