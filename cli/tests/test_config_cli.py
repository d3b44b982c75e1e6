"""`kcc config check`, through click's runner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from kcc_cli.config import config_group
from kcc_shared.config import Config
from kcc_shared.organisation import load_organisation

VALID = """\
version: 1
organisation: {name: Gemeente Klein}
calendars:
  kantoor:
    timezone: Europe/Amsterdam
    opening_hours: {monday: ["09:00-17:00"]}
departments:
  - id: kcc-triage
    name: KCC Triage
    calendar: kantoor
    sla:
      urgent: {first_response: 15m, resolution: 1h}
      high: {first_response: 30m, resolution: 2h}
      normal: {first_response: 1h, resolution: 4h}
      low: {first_response: 2h, resolution: 8h}
fallback_department: kcc-triage
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_check_packaged_default(runner: CliRunner) -> None:
    organisation = load_organisation()

    result = runner.invoke(config_group, ["check"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"OK: Gemeente Voorbeeldstad, {len(organisation.departments)} departments, "
        f"{len(organisation.rules)} rules, version {organisation.version}",
        "examples: 2449 questions in voorbeeldvragen.jsonl (fewest: 234 for one department)",
    ]
    assert re.fullmatch(r"[0-9a-f]{12}", organisation.version)
    assert result.stderr == ""


def test_check_a_valid_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(VALID, encoding="utf-8")

    result = runner.invoke(config_group, ["check", str(path)])

    assert result.exit_code == 0, result.output
    version = load_organisation(path).version
    assert result.stdout == f"OK: Gemeente Klein, 1 departments, 0 rules, version {version}\n"


def test_check_lists_every_problem_on_stderr(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(
        VALID.replace("Europe/Amsterdam", "Europe/Amsterdm")
        .replace("resolution: 8h}", "resolution: 1d}")
        .replace("fallback_department: kcc-triage", "fallback_department: triage"),
        encoding="utf-8",
    )

    result = runner.invoke(config_group, ["check", str(path)])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}:5: calendar 'kantoor': unknown time zone 'Europe/Amsterdm'; use an IANA name "
        "such as Europe/Amsterdam",
        f"{path}:15: department 'kcc-triage': sla low: resolution: duration '1d': days and weeks "
        "are ambiguous in business time (a business day is not 24 hours); write hours instead, "
        "e.g. 16h for two days of 8 hours",
        f"{path}:16: fallback_department: unknown department 'triage' (did you mean 'kcc-triage'?)",
        "3 problems found",
    ]


def test_check_yaml_syntax_error(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(VALID.replace("    name: KCC Triage", "    name: KCC: Triage"), "utf-8")

    result = runner.invoke(config_group, ["check", str(path)])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"{path}:9: YAML syntax error: mapping values are not allowed here"
    )
    assert "Traceback" not in result.output


def test_check_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "weg.yaml"

    result = runner.invoke(config_group, ["check", str(path)])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"{path}: file not found", "1 problem found"]


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        (
            '{"question": "Hond", "department": "dierenzaken"}',
            ":1: unknown department 'dierenzaken'",
        ),
        (
            '{"question": "BSN 111222333 belt", "department": "kcc-triage"}',
            ":1: the question holds a",
        ),
        ('{"question": ', ":1: not valid JSON"),
        (None, ": file not found"),
    ],
    ids=["unknown department", "a bsn", "bad json", "missing"],
)
def test_check_refuses_bad_example_questions(
    runner: CliRunner, tmp_path: Path, examples: str | None, message: str
) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(VALID + "examples: vragen.jsonl\n", encoding="utf-8")
    if examples is not None:
        (tmp_path / "vragen.jsonl").write_text(examples + "\n", encoding="utf-8")

    result = runner.invoke(config_group, ["check", str(path)])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"{tmp_path / 'vragen.jsonl'}{message}")


def test_check_says_which_departments_have_too_few_examples(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "org.yaml"
    text = VALID.replace(
        "fallback_department: kcc-triage",
        "  - id: afval\n    name: Afval\n    calendar: kantoor\n    sla: *sla\n"
        "fallback_department: kcc-triage",
    ).replace("    sla:\n      urgent", "    sla: &sla\n      urgent", 1)
    path.write_text(text + "examples: vragen.jsonl\n", encoding="utf-8")
    (tmp_path / "vragen.jsonl").write_text(
        '{"question": "Container vol", "department": "afval"}\n', encoding="utf-8"
    )

    result = runner.invoke(config_group, ["check", str(path)])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == (
        "examples: 1 questions in vragen.jsonl (fewest: 1 for one department); "
        "fewer than 5, so the rules alone route to: afval"
    )


def test_example_copies_the_demo_organisation_to_start_from(
    runner: CliRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "mijn-gemeente"

    result = runner.invoke(config_group, ["example", str(folder)])

    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in folder.iterdir()) == [
        "organisation.yaml",
        "voorbeeldvragen.jsonl",
    ]
    # The copy checks as the demo does: same file, same version, its examples beside it.
    check = runner.invoke(config_group, ["check", str(folder / "organisation.yaml")])
    assert check.exit_code == 0, check.output
    assert f"version {load_organisation().version}" in check.stdout
    assert "examples: 2449 questions" in check.stdout


def test_example_never_overwrites(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "mijn-gemeente"
    folder.mkdir()
    (folder / "organisation.yaml").write_text("# mijn eigen werk\n", encoding="utf-8")

    result = runner.invoke(config_group, ["example", str(folder)])

    assert result.exit_code == 1
    assert "organisation.yaml already exists; nothing was copied" in result.output
    assert (folder / "organisation.yaml").read_text(encoding="utf-8") == "# mijn eigen werk\n"
    assert not (folder / "voorbeeldvragen.jsonl").exists()


def test_env_lists_every_setting_as_an_environment_file_of_the_defaults(
    runner: CliRunner,
) -> None:
    result = runner.invoke(config_group, ["env"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assigned = dict(line.split("=", 1) for line in lines if line.startswith("KCC_"))
    unset = {line[2:-1] for line in lines if line.startswith("# KCC_") and line.endswith("=")}
    assert set(assigned) | unset == {variable for variable, _, _ in Config.describe()}
    assert Config.from_env(assigned) == Config()
    assert "# Threads per gunicorn worker" in result.output
