"""The ``kcc rules`` commands: explain one routing decision, evaluate the rules on labelled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn

import click
from kcc_shared.organisation import Organisation, OrganisationError, load_organisation
from kcc_shared.privacy import redact_bsn

from router.rules import DatasetError, Evaluation, RuleSet, evaluate, read_labelled

__all__ = ["rules_group"]

# Exit codes: 0 done, 1 the organisation file is invalid (as `kcc config check`), 2 a usage
# mistake (unknown category, unreadable or malformed input file).
EXIT_INVALID_ORGANISATION = 1
EXIT_USAGE = 2

_ORGANISATION_OPTION = click.option(
    "--file",
    "organisation_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Organisation file (default: the packaged organisation).",
)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    raise click.exceptions.Exit(code)


def _load(organisation_file: Path | None) -> Organisation:
    try:
        return load_organisation(organisation_file)
    except OrganisationError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        _fail(
            f"Error: the organisation file has {len(exc.problems)} problem(s); "
            "see `kcc config check`",
            EXIT_INVALID_ORGANISATION,
        )


def _known(values: Any) -> str:
    return ", ".join(sorted(values))


@click.group("rules")
def rules_group() -> None:
    """Routing rules: explain a decision, or measure the rules on labelled questions."""


@rules_group.command("explain")
@click.argument("question")
@click.option("--category", default=None, help="The category the agent picked (catalog id).")
@click.option(
    "--exclude",
    multiple=True,
    metavar="DEPARTMENT",
    help="Route as if forwarded away from this department (repeatable).",
)
@_ORGANISATION_OPTION
def explain_command(
    question: str,
    category: str | None,
    exclude: tuple[str, ...],
    organisation_file: Path | None,
) -> None:
    """Show which department QUESTION goes to, which rule decided and why."""
    organisation = _load(organisation_file)
    if not question.strip():
        _fail("Error: the question is empty", EXIT_USAGE)
    if category is not None and category not in organisation.categories:
        _fail(
            f"Error: unknown category '{category}'; known categories: "
            f"{_known(organisation.categories)}",
            EXIT_USAGE,
        )
    for department in exclude:
        if department not in organisation.departments:
            _fail(
                f"Error: unknown department '{department}' in --exclude; known departments: "
                f"{_known(organisation.departments)}",
                EXIT_USAGE,
            )

    ruleset = RuleSet.from_organisation(organisation)
    explanation = ruleset.explain(question, category, frozenset(exclude))
    decision = explanation.decision
    target = organisation.departments[decision.department]

    if decision.rule_id is not None:
        spec = ruleset.rule(decision.rule_id)
        line = f" (line {spec.line})" if spec is not None else ""
        rule_text = f"{decision.rule_id}{line}"
    elif decision.reason == "category":
        rule_text = "none: no rule matched; the catalog owner of the category decides"
    else:
        rule_text = "none: no rule matched; fallback department"
    rows = [
        ("department", f"{target.id} ({target.name})"),
        ("rule", rule_text),
        ("reason", decision.reason),
        ("matched", "; ".join(decision.matched) or "-"),
        ("priority", str(decision.priority_change) if decision.priority_change else "unchanged"),
        ("rules version", f"{decision.rules_version} ({organisation.source})"),
    ]
    for label, value in rows:
        click.echo(f"{label + ':':<15}{value}")

    others = [t for t in explanation.trace if t.outcome != "decided"]
    if others:
        click.echo("other rules that matched:")
        for trace in others:
            detail = "; ".join(trace.matched)
            if trace.outcome == "vetoed":
                detail += f" -- vetoed by {'; '.join(trace.vetoed_by)}"
            click.echo(f"  {trace.rule_id} (line {trace.line}, {trace.outcome}): {detail}")


@rules_group.command("eval")
@click.argument(
    "dataset",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@_ORGANISATION_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_command(dataset: Path, organisation_file: Path | None, as_json: bool) -> None:
    """Route every question in DATASET (JSON Lines with question, expected_department and
    optional category) and report accuracy, wrong-department and triage rates."""
    organisation = _load(organisation_file)
    try:
        lines = dataset.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        _fail(f"Error: {dataset}: not UTF-8 text", EXIT_USAGE)
    except OSError as exc:
        _fail(f"Error: {dataset}: cannot read: {exc.strerror or exc}", EXIT_USAGE)
    try:
        rows = read_labelled(lines)
    except DatasetError as exc:
        _fail(f"Error: {dataset}:{exc.line}: {exc.message}", EXIT_USAGE)
    if not rows:
        _fail(f"Error: {dataset}: no questions in the file", EXIT_USAGE)

    # Labels must name real departments and categories, or the figures silently lie.
    for row in rows:
        if row.expected_department not in organisation.departments:
            _fail(
                f"Error: {dataset}:{row.line}: unknown expected_department "
                f"'{row.expected_department}'",
                EXIT_USAGE,
            )
        if row.category is not None and row.category not in organisation.categories:
            _fail(f"Error: {dataset}:{row.line}: unknown category '{row.category}'", EXIT_USAGE)

    result = evaluate(RuleSet.from_organisation(organisation), rows)
    if as_json:
        click.echo(json.dumps(_as_json(result, organisation), indent=2, ensure_ascii=False))
    else:
        _print_text(result, organisation)


def _redacted(text: str) -> str:
    # Labelled data may hold citizen service numbers; they never go to a terminal or a log.
    return redact_bsn(text)[0]


def _as_json(result: Evaluation, organisation: Organisation) -> dict[str, Any]:
    return {
        "rules_version": result.rules_version,
        "organisation": organisation.source,
        "total": result.total,
        "right": result.right,
        "wrong": result.wrong,
        "triaged": result.triaged,
        "accuracy": round(result.accuracy, 4),
        "wrong_rate": round(result.wrong_rate, 4),
        "triage_rate": round(result.triage_rate, 4),
        "confusion": {expected: dict(got) for expected, got in result.confusion.items()},
        "misses": [
            {
                "id": miss.question.id,
                "expected": miss.question.expected_department,
                "got": miss.decision.department,
                "rule_id": miss.decision.rule_id,
                "reason": miss.decision.reason,
                "matched": list(miss.decision.matched),
                "question": _redacted(miss.question.question),
            }
            for miss in result.misses
        ],
    }


def _print_text(result: Evaluation, organisation: Organisation) -> None:
    def line(label: str, count: int, rate: float) -> str:
        return f"{label:<18}{count:>5}  {rate:6.1%}"

    click.echo(f"rules version {result.rules_version} ({organisation.source})")
    click.echo(f"{'questions':<18}{result.total:>5}")
    click.echo(line("right department", result.right, result.accuracy))
    click.echo(line("wrong department", result.wrong, result.wrong_rate))
    click.echo(line("triage", result.triaged, result.triage_rate))

    click.echo("")
    click.echo("confusion (expected -> got):")
    width = max(len(expected) for expected in result.confusion)
    for expected in sorted(result.confusion):
        got = result.confusion[expected]
        total = sum(got.values())
        cells = ", ".join(f"{department} {count}" for department, count in got.items())
        click.echo(f"  {expected:<{width}}  {total:>4}  -> {cells}")

    click.echo("")
    if not result.misses:
        click.echo("misses: none")
        return
    click.echo(f"misses ({len(result.misses)}):")
    for miss in result.misses:
        decision = miss.decision
        how = f"rule {decision.rule_id}" if decision.rule_id else decision.reason
        click.echo(
            f"  {miss.question.id}: expected {miss.question.expected_department}, "
            f"got {decision.department} ({how})"
        )
        click.echo(f"    {_redacted(miss.question.question)}")
