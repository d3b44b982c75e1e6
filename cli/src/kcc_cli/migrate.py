"""`kcc migrate`: every service's database and the auth tables to this release's schema (and
`kcc dev`'s own stores)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

import click
from backoffice.migrations import HISTORY as BACKOFFICE
from intake.migrations import HISTORY as INTAKE
from kcc_shared.auth_migrations import HISTORY as AUTH
from kcc_shared.db import make_engine
from kcc_shared.migrations import (
    EXIT_ERROR,
    History,
    SchemaError,
    check_models,
    head,
    migrate,
    run_migrate,
)
from sla_monitor.migrations import HISTORY as SLA

# Each service with a database, the file `kcc dev --data` keeps it in, and the variable that
# names its database for `kcc migrate` (a service itself reads KCC_DATABASE_URL).
SERVICES: Final[tuple[tuple[History, str, str], ...]] = (
    (INTAKE, "intake", "KCC_INTAKE_DATABASE_URL"),
    (BACKOFFICE, "backoffice", "KCC_BACKOFFICE_DATABASE_URL"),
    (SLA, "sla-monitor", "KCC_SLA_DATABASE_URL"),
)
# `kcc dev`'s token and web-session store (kcc_cli.token.DEV_AUTH_STORE).
AUTH_STORE: Final = "auth"


def dev_url(data: Path, store: str) -> str:
    return f"sqlite:///{data.resolve() / store}.db"


def migrate_dev(data: Path) -> None:
    """`kcc dev`'s own SQLite stores to head before it starts: a folder from an earlier
    release (or from before migrations) just works."""
    for history, store in [*((h, s) for h, s, _ in SERVICES), (AUTH, AUTH_STORE)]:
        engine = make_engine(dev_url(data, store))
        try:
            migrate(engine, history)
        finally:
            engine.dispose()


def check_all_models() -> int:
    """`make migrations-check`: 0 when every history's head is the code's tables, else 1."""
    differ = 0
    with tempfile.TemporaryDirectory(prefix="kcc-migrations-") as scratch:
        for history, store in [*((h, s) for h, s, _ in SERVICES), (AUTH, AUTH_STORE)]:
            engine = make_engine(dev_url(Path(scratch), store))
            try:
                check_models(engine, history)
                click.echo(f"{history.name}: the migrations' head ({head(history)}) is the code's")
            except SchemaError as exc:
                click.echo(str(exc))
                differ = 1
            finally:
                engine.dispose()
    return differ


@click.command("migrate")
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/dev"),
    show_default=True,
    help="A `kcc dev` data folder: its stores, for a service whose URL is not given.",
)
@click.option("--intake-url", envvar="KCC_INTAKE_DATABASE_URL", help="The intake's database.")
@click.option(
    "--backoffice-url", envvar="KCC_BACKOFFICE_DATABASE_URL", help="The back office's database."
)
@click.option("--sla-url", envvar="KCC_SLA_DATABASE_URL", help="The SLA monitor's database.")
@click.option(
    "--auth-url",
    envvar="KCC_AUTH_DATABASE_URL",
    help="The tokens' and web sessions' database, when the services share one; else their "
    "tables are migrated in each service's database.",
)
@click.option("--check", is_flag=True, help="Change nothing; exit 1 when any database is behind.")
@click.option(
    "--models",
    is_flag=True,
    help="For developers: compare the code's tables with each history's head (on scratch "
    "SQLite databases); exit 1 and print the operations a new migration needs when they differ.",
)
def migrate_all(
    data: Path,
    intake_url: str | None,
    backoffice_url: str | None,
    sla_url: str | None,
    auth_url: str | None,
    check: bool,
    models: bool,
) -> None:
    """Bring every service's database and the auth tables to this release's schema
    (`kcc <service> migrate` does one service's, for KCC_DATABASE_URL). Each database is its
    own: give its URL (or variable), or the stores of a `kcc dev` folder are migrated."""
    if models:
        raise click.exceptions.Exit(check_all_models())
    given = {"intake": intake_url, "backoffice": backoffice_url, "sla-monitor": sla_url}
    urls = {store: given[store] or dev_url(data, store) for _, store, _ in SERVICES}
    # Where the services keep their auth tables: the shared store, else each one's database
    # (`kcc dev`'s services share its auth store).
    auth_urls = [auth_url] if auth_url else [given[s] or dev_url(data, AUTH_STORE) for s in given]
    targets = [(h, urls[s]) for h, s, _ in SERVICES] + [(AUTH, u) for u in dict.fromkeys(auth_urls)]
    worst = 0
    for history, url in targets:
        engine = make_engine(url)
        try:
            status = run_migrate(engine, history, check=check, echo=click.echo)
        finally:
            engine.dispose()
        worst = max(worst, status)
    if worst:
        raise click.exceptions.Exit(min(worst, EXIT_ERROR))
