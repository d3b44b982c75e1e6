"""The router's commands: `kcc router run` and `kcc router train`."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import NoReturn

import click
from kcc_shared import runner
from kcc_shared.config import Config, ConfigError
from kcc_shared.examples import DatasetError, check_labels, read_labelled_file
from kcc_shared.health import HealthServer
from kcc_shared.logging import configure_logging
from kcc_shared.organisation import OrganisationError, load_organisation
from kcc_shared.privacy import redact_bsn

from router.model import (
    MIN_EXAMPLES_PER_DEPARTMENT,
    ModelError,
    RoutingModel,
    TrainingExample,
    model_file_for,
    train,
)
from router.worker import RouterWorker

__all__ = ["router_group"]

log = logging.getLogger(__name__)

# Exit status when the configuration or the organisation file keeps the router from starting.
EXIT_CONFIG = 2


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
    try:
        config = Config.from_env()
    except ConfigError as exc:
        click.echo(f"router: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_CONFIG) from None
    configure_logging(config.log_level, config.log_format)
    try:
        organisation = load_organisation(config.organisation_file)
    except OrganisationError as exc:
        click.echo("router: the organisation file is invalid; not starting:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise click.exceptions.Exit(EXIT_CONFIG) from None

    model = None
    model_file = model_file_for(config.routing_model, config.organisation_file)
    if model_file is not None:
        try:
            model = RoutingModel.load(model_file)
            model.check_departments(organisation.departments)
        except ModelError as exc:
            click.echo(f"router: the routing model cannot be used; not starting: {exc}", err=True)
            raise click.exceptions.Exit(EXIT_CONFIG) from None

    worker = RouterWorker(
        config.broker_url,
        organisation,
        organisation_file=config.organisation_file,
        model=model,
        model_file=model_file,
        prefetch=config.prefetch,
        publish_timeout=config.publish_timeout,
        heartbeat=config.heartbeat,
        stall_timeout=config.stall_timeout,
    )
    consumer = worker.part()
    server = HealthServer(
        config.metrics_host,
        config.metrics_port,
        worker.readiness_checks(),
        liveness=runner.liveness([consumer]),
        name="router",
        metrics_token=config.metrics_token,
    )
    status = runner.run("router", [server.part(), consumer])
    if status:
        raise click.exceptions.Exit(status)


@router_group.command("train")
@click.option(
    "--file",
    "organisation_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Organisation file (default: the packaged organisation); its `examples` are used.",
)
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
    (exit 2).
    """
    try:
        organisation = load_organisation(organisation_file)
    except OrganisationError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        _fail("the organisation file is invalid; see `kcc config check`")
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


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    raise click.exceptions.Exit(EXIT_CONFIG)


if __name__ == "__main__":  # `python -m router.commands run`, until the kcc command wires it
    router_group()
