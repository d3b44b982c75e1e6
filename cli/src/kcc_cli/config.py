"""The ``kcc config`` commands: validate an organisation file before anything reads it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from kcc_shared.examples import DatasetError, check_labels, read_labelled_file
from kcc_shared.organisation import Organisation, OrganisationError, load_organisation
from router.model import MIN_EXAMPLES_PER_DEPARTMENT

__all__ = ["config_group"]


@click.group("config")
def config_group() -> None:
    """The organisation file: departments, calendars, SLA targets and routing rules."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def check_command(file: Path | None) -> None:
    """Validate FILE (default: the packaged organisation) and its example questions, and list
    every problem found.

    Exits 0 when the file is valid, 1 when it has problems (each as file:line: message).
    """
    try:
        organisation = load_organisation(file)
    except OrganisationError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        count = len(exc.problems)
        click.echo(f"{count} problem{'s' if count != 1 else ''} found", err=True)
        raise click.exceptions.Exit(1) from None
    summary = _check_examples(organisation)
    click.echo(
        f"OK: {organisation.name}, {len(organisation.departments)} departments, "
        f"{len(organisation.rules)} rules, version {organisation.version}"
    )
    if summary:
        click.echo(summary)


def _check_examples(organisation: Organisation) -> str | None:
    """The example questions must name known departments and categories and hold no BSN
    (they are shown to people); a department with too few is left out of the model."""
    path = organisation.examples_file
    if path is None:
        return None
    try:
        rows = read_labelled_file(path)
        check_labels(
            rows,
            organisation.departments,
            organisation.categories,
            source=str(path),
            allow_bsn=False,
        )
    except DatasetError as exc:
        click.echo(str(exc), err=True)
        click.echo("1 problem found", err=True)
        raise click.exceptions.Exit(1) from None
    counts = Counter(row.department for row in rows)
    routed = [d for d in organisation.departments if d != organisation.fallback_department]
    few = sorted(d for d in routed if counts[d] < MIN_EXAMPLES_PER_DEPARTMENT)
    text = f"examples: {len(rows)} questions in {path.name}"
    if routed:
        text += f" (fewest: {min(counts[d] for d in routed)} for one department)"
    if few:
        text += (
            f"; fewer than {MIN_EXAMPLES_PER_DEPARTMENT}, so the rules alone route to: "
            + ", ".join(few)
        )
    return text
