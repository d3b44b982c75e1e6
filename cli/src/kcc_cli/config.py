"""The ``kcc config`` commands: validate an organisation file before anything reads it, and
list the KCC_* settings every service reads."""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import click
from kcc_shared.config import Config
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


@config_group.command("env")
def env_command() -> None:
    """Print every KCC_* setting with what it does and its default, as an environment file to
    start from (a setting without a default is commented out). docs/configuration.md says more.
    """
    for variable, default, help_ in Config.describe():
        click.echo(textwrap.fill(help_, width=98, initial_indent="# ", subsequent_indent="# "))
        value = default.strip("'")
        if default == "None":
            click.echo(f"# {variable}=\n")
        else:
            click.echo(f"{variable}={value.lower() if value in ('True', 'False') else value}\n")


@config_group.command("example")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def example_command(folder: Path) -> None:
    """Copy the demo organisation (Gemeente Voorbeeldstad) into FOLDER to start your own from:
    organisation.yaml and the example questions it names. Existing files are never overwritten.
    """
    demo = load_organisation()
    # Note: the examples file is named inside the YAML and read from beside it, so the two are
    # copied together; a lone organisation.yaml would fail `kcc config check`.
    sources = [Path(demo.source)]
    if demo.examples_file is not None:
        sources.append(demo.examples_file)
    targets = [folder / source.name for source in sources]
    existing = [str(target) for target in targets if target.exists()]
    if existing:
        raise click.ClickException(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
            "nothing was copied (choose another folder or move the file away)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for source, target in zip(sources, targets, strict=True):
            target.write_bytes(source.read_bytes())
    except OSError as exc:
        raise click.ClickException(f"cannot write to {folder}: {exc.strerror or exc}") from None
    for target in targets:
        click.echo(f"wrote {target}")
    click.echo(f"next: edit {targets[0]}, then run: kcc config check {targets[0]}")


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
