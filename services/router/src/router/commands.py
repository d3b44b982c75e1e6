"""The router's commands: `kcc router run|train`, and `kcc rules explain|eval` that decide
exactly as the running router does: the organisation's rules, plus the routing model when one is
given (``--model``, default ``KCC_ROUTING_MODEL``), combined by the same Decider.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Final, NoReturn

import click
from kcc_shared.commands import current_config, organisation_or_exit, refuse, run_process
from kcc_shared.config import EXIT_CONFIG
from kcc_shared.examples import DatasetError, check_labels, read_labelled_file
from kcc_shared.organisation import Organisation, OrganisationError, load_organisation
from kcc_shared.privacy import redact_bsn

from router.decision import Decider, Query
from router.errors import ModelError
from router.evaluation import Evaluation, Tally, evaluate
from router.model import (
    MIN_EXAMPLES_PER_DEPARTMENT,
    RoutingModel,
    TrainingExample,
    configured_model,
    model_file_for,
    train,
)
from router.rules import RuleSet
from router.worker import RouterWorker

__all__ = ["router_group", "rules_group"]

# Exit codes: 0 done, 1 the organisation file is invalid (as `kcc config check`), 2 a usage or
# configuration mistake (bad KCC_* variable, unknown category, unreadable input or model file).
EXIT_INVALID_ORGANISATION = 1

_ORGANISATION_OPTION = click.option(
    "--file",
    "organisation_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Organisation file (default: the packaged organisation).",
)


def _fail(message: str, code: int = EXIT_CONFIG) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(code)


def _load(organisation_file: Path | None) -> Organisation:
    try:
        return load_organisation(organisation_file)
    except OrganisationError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        _fail(
            f"the organisation file has {len(exc.problems)} problem(s); see `kcc config check`",
            EXIT_INVALID_ORGANISATION,
        )


@click.group("router")
def router_group() -> None:
    """Route questions from the KCC to the responsible department."""


@router_group.command("run")
def run() -> None:
    """Consume router.work until SIGTERM or Ctrl-C.

    Reads the KCC_* environment (see `kcc config env`). Refuses to start, with every problem
    listed, when the organisation file is invalid. On SIGTERM or SIGINT it finishes the batch
    in hand (publish, confirm, ack), closes its connections and exits 0; when its consumer
    thread dies it exits 70, so the supervisor starts a fresh one.
    """
    config = current_config("router")
    organisation = organisation_or_exit("router", config)
    try:
        model, model_file = configured_model(
            config.routing_model, config.organisation_file, organisation.departments
        )
    except ModelError as exc:
        refuse("router", f"the routing model cannot be used; not starting: {exc}")

    worker = RouterWorker(config, organisation, model=model, model_file=model_file)
    run_process("router", config, [worker.part()], worker.readiness_checks())


@router_group.command("train")
@_ORGANISATION_OPTION
@click.option(
    "--history",
    "history_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Labelled history (kcc intake export-labelled); repeatable.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The model file to write (replaced atomically; the router reloads it).",
)
def train_command(
    organisation_file: Path | None, history_files: tuple[Path, ...], out: Path
) -> None:
    """Train the routing model on the organisation's example questions and its history.

    Every label must name a department of the organisation file. Questions labelled with the
    fallback department teach the model what belongs to no department (general questions,
    questions for other organisations); besides those, triage gets what the model is unsure
    of. History text is redacted again before use. Nothing is written when anything is wrong
    (exit 2; an invalid organisation file: exit 1).
    """
    organisation = _load(organisation_file)
    if organisation.examples_file is None:
        _fail(f"{organisation.source}: has no `examples` file to train on")
    sources = [(organisation.examples_file, "voorbeeld")]
    sources += [(path, "historie") for path in history_files]
    examples: list[TrainingExample] = []
    for path, source in sources:
        try:
            rows = read_labelled_file(path)
            check_labels(
                rows,
                organisation.departments,
                organisation.categories,
                source=str(path),
                allow_bsn=source == "historie",
            )
        except DatasetError as exc:
            _fail(str(exc))
        for row in rows:
            question = redact_bsn(row.question)[0] if source == "historie" else row.question
            examples.append(TrainingExample(row.id, question, row.department, source))
    counts = Counter(e.department for e in examples)
    try:
        model = train(examples)
    except ValueError as exc:
        _fail(str(exc))
    if not out.parent.is_dir():
        _fail(f"{out}: the folder {out.parent} does not exist")
    try:
        model.save(out)
    except OSError as exc:
        _fail(f"{out}: cannot write the model: {exc.strerror or exc}")
    click.echo(f"model {model.version} written to {out}")
    by_source = ", ".join(f"{k} {v}" for k, v in Counter(e.source for e in examples).items())
    click.echo(f"examples: {len(examples)} ({by_source})")
    for department in sorted(organisation.departments):
        n = counts.get(department, 0)
        if department == organisation.fallback_department:
            note = "  (the fallback: what belongs to no department)"
        elif n < MIN_EXAMPLES_PER_DEPARTMENT:
            note = "  (too few: the rules alone route here)"
        else:
            note = ""
        click.echo(f"  {department:<22}{n:>6}{note}")


_MODEL_OPTION = click.option(
    "--model",
    "model_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("KCC_ROUTING_MODEL") or None,
    help="Routing model file (default: KCC_ROUTING_MODEL, else the demo model for the demo "
    "organisation, else none: the rules alone).",
)
_RULES_ONLY_OPTION = click.option(
    "--rules-only", is_flag=True, help="Leave the model out: the rules decide alone."
)


def _decider(
    organisation: Organisation,
    organisation_file: Path | None,
    model_file: Path | None,
    rules_only: bool,
) -> Decider:
    model = None
    model_file = model_file_for(model_file, organisation_file)
    if model_file is not None and not rules_only:
        try:
            model = RoutingModel.load(model_file)
        except ModelError as exc:
            _fail(str(exc))
    return Decider(RuleSet.from_organisation(organisation), model)


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
@_MODEL_OPTION
@_RULES_ONLY_OPTION
def explain_command(
    question: str,
    category: str | None,
    exclude: tuple[str, ...],
    organisation_file: Path | None,
    model_file: Path | None,
    rules_only: bool,
) -> None:
    """Show which department QUESTION goes to, what both deciders said and why."""
    organisation = _load(organisation_file)
    if not question.strip():
        _fail("the question is empty")
    if category is not None and category not in organisation.categories:
        _fail(
            f"unknown category '{category}'; known categories: {_known(organisation.categories)}",
        )
    for department in exclude:
        if department not in organisation.departments:
            _fail(
                f"unknown department '{department}' in --exclude; known departments: "
                f"{_known(organisation.departments)}",
            )

    decider = _decider(organisation, organisation_file, model_file, rules_only)
    ruleset = decider.ruleset
    query = Query(question, category, frozenset(exclude))
    routed = decider.decide(query)
    explanation = ruleset.explain(question, category, frozenset(exclude))
    decision = explanation.decision
    target = organisation.departments[routed.department]
    click.echo(f"{'department:':<15}{target.id} ({target.name})")
    click.echo(f"{'decided by:':<15}{_DECIDERS[routed.reason]}")
    click.echo(f"{'why (Dutch):':<15}{routed.explanation}")
    for similar in routed.similar:
        click.echo(f"{'':<15}- {_redacted(similar)}")
    click.echo(
        f"{'priority:':<15}"
        + (str(routed.priority_change) if routed.priority_change else "unchanged")
    )
    click.echo("")
    click.echo("the rules:")
    if decision.rule_id is not None:
        spec = ruleset.rule(decision.rule_id)
        line = f" (line {spec.line})" if spec is not None else ""
        rule_text = f"{decision.rule_id}{line}"
    elif decision.reason == "category":
        rule_text = "none: no rule matched; the catalog owner of the category decides"
    else:
        rule_text = "none: no rule matched; fallback department"
    rows = [
        ("department", decision.department),
        ("rule", rule_text),
        ("reason", decision.reason),
        ("matched", "; ".join(decision.matched) or "-"),
        ("rules version", f"{decision.rules_version} ({organisation.source})"),
    ]
    for label, value in rows:
        click.echo(f"  {label + ':':<15}{value}")

    others = [t for t in explanation.trace if t.outcome != "decided"]
    if others:
        click.echo("  other rules that matched:")
        for trace in others:
            detail = "; ".join(trace.matched)
            if trace.outcome == "vetoed":
                detail += f" -- vetoed by {'; '.join(trace.vetoed_by)}"
            click.echo(f"    {trace.rule_id} (line {trace.line}, {trace.outcome}): {detail}")

    click.echo("")
    predictions = decider.predict([query])
    if predictions is None:
        click.echo("the model: none (--model or KCC_ROUTING_MODEL); the rules decide alone")
        return
    prediction = predictions[0]
    click.echo(f"the model ({decider.model_version}):")
    ranked = sorted(prediction.probabilities.items(), key=lambda item: -item[1])[:3]
    for department, probability in ranked:
        click.echo(f"  {department:<22}{probability:6.1%}")
    if prediction.confidence == 0:
        click.echo("  (no known words: the model has no opinion)")


_DECIDERS: Final = {
    "rule": "a rule",
    "category": "the agent's category",
    "model": "the model",
    "fallback": "nobody: triage chooses",
}


@rules_group.command("eval")
@click.argument(
    "dataset",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@_ORGANISATION_OPTION
@_MODEL_OPTION
@_RULES_ONLY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def eval_command(
    dataset: Path,
    organisation_file: Path | None,
    model_file: Path | None,
    rules_only: bool,
    as_json: bool,
) -> None:
    """Route every question in DATASET as the running router would and report right, wrong
    department and triage: overall, per department, per decider, per style (when the file
    has a `style` field), precision and recall, and the model threshold's trade-off.

    DATASET is JSON Lines: question, department (or expected_department), optional id,
    category and style.
    """
    organisation = _load(organisation_file)
    try:
        rows = read_labelled_file(dataset)
        if not rows:
            _fail(f"{dataset}: no questions in the file")
        # Labels must name real departments and categories, or the figures silently lie.
        check_labels(rows, organisation.departments, organisation.categories, source=str(dataset))
    except DatasetError as exc:
        _fail(str(exc))
    result = evaluate(_decider(organisation, organisation_file, model_file, rules_only), rows)
    if as_json:
        click.echo(json.dumps(_as_json(result, organisation), indent=2, ensure_ascii=False))
    else:
        _print_text(result, organisation)


def _redacted(text: str) -> str:
    # Labelled data may hold citizen service numbers; they never go to a terminal or a log.
    return redact_bsn(text)[0]


def _figures(tally: Tally) -> dict[str, Any]:
    return {
        "total": tally.total,
        "right": tally.right,
        "wrong": tally.wrong,
        "triaged": tally.triaged,
        "accuracy": round(tally.accuracy, 4),
        "wrong_rate": round(tally.wrong_rate, 4),
        "triage_rate": round(tally.triage_rate, 4),
    }


def _as_json(result: Evaluation, organisation: Organisation) -> dict[str, Any]:
    return {
        "rules_version": result.rules_version,
        "model_version": result.model_version,
        "organisation": organisation.source,
        **_figures(result.overall),
        "by_department": {k: _figures(v) for k, v in result.by_department.items()},
        "by_decider": {k: _figures(v) for k, v in result.by_decider.items()},
        "by_style": {k: _figures(v) for k, v in result.by_style.items()},
        "precision_recall": {
            k: {"precision": round(p, 4), "recall": round(r, 4)}
            for k, (p, r) in result.precision_recall.items()
        },
        "threshold_curve": [{"threshold": t, **_figures(v)} for t, v in result.curve],
        "confusion": result.confusion,
        "misses": [
            {
                "id": miss.question.id,
                "expected": miss.question.department,
                "got": miss.decision.department,
                "decider": miss.decision.reason,
                "rule_id": miss.decision.rule_id,
                "confidence": miss.decision.confidence,
                "style": miss.question.style,
                "question": _redacted(miss.question.question),
            }
            for miss in result.misses
        ],
    }


def _line(label: str, tally: Tally, width: int = 18) -> str:
    return (
        f"  {label:<{width}}{tally.total:>5}  right {tally.accuracy:6.1%}  "
        f"wrong {tally.wrong_rate:6.1%}  triage {tally.triage_rate:6.1%}"
    )


def _print_text(result: Evaluation, organisation: Organisation) -> None:
    overall = result.overall
    click.echo(
        f"rules version {result.rules_version} ({organisation.source}); "
        f"model {result.model_version or 'none (the rules alone)'}"
    )
    click.echo(f"{'questions':<18}{overall.total:>5}")
    click.echo(f"{'right department':<18}{overall.right:>5}  {overall.accuracy:6.1%}")
    click.echo(f"{'wrong department':<18}{overall.wrong:>5}  {overall.wrong_rate:6.1%}")
    click.echo(f"{'triage':<18}{overall.triaged:>5}  {overall.triage_rate:6.1%}")
    sections = [
        ("per style", result.by_style),
        ("per decider", result.by_decider),
        ("per expected department", result.by_department),
    ]
    for title, groups in sections:
        if groups:
            click.echo("")
            click.echo(f"{title}:")
            width = max(18, *(len(k) + 2 for k in groups))
            for name, tally in groups.items():
                click.echo(_line(name, tally, width))
    click.echo("")
    click.echo("precision / recall per department:")
    for department, (precision, recall) in result.precision_recall.items():
        click.echo(f"  {department:<22}precision {precision:6.1%}  recall {recall:6.1%}")
    if result.curve:
        click.echo("")
        click.echo("model threshold trade-off (the router runs at the policy's threshold):")
        for threshold, tally in result.curve:
            click.echo(_line(f"threshold {threshold:.1f}", tally))
    click.echo("")
    if not result.misses:
        click.echo("misses: none")
        return
    click.echo(f"misses ({len(result.misses)}):")
    for miss in result.misses:
        decision = miss.decision
        how = f"rule {decision.rule_id}" if decision.rule_id else decision.reason
        click.echo(
            f"  {miss.question.id}: expected {miss.question.department}, "
            f"got {decision.department} ({how})"
        )
        click.echo(f"    {_redacted(miss.question.question)}")


if __name__ == "__main__":  # `python -m router.commands run`: the integration tests' router
    router_group()
