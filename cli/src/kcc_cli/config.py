"""The ``kcc config`` commands: validate an organisation file before anything reads it."""

from __future__ import annotations

from pathlib import Path

import click
from kcc_shared.organisation import OrganisationError, load_organisation

__all__ = ["config_group"]


@click.group("config")
def config_group() -> None:
    """The organisation file: departments, calendars, SLA targets and routing rules."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(path_type=Path))
def check_command(file: Path | None) -> None:
    """Validate FILE (default: the packaged organisation) and list every problem found.

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
    click.echo(
        f"OK: {organisation.name}, {len(organisation.departments)} departments, "
        f"{len(organisation.rules)} rules, version {organisation.version}"
    )
