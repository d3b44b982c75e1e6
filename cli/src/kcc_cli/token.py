"""`kcc token ...`: create, list and revoke API tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import click
from kcc_shared.auth import ROLES, TokenError, TokenStore, open_token_store
from kcc_shared.config import Config
from kcc_shared.db import make_engine
from kcc_shared.migrations import SchemaError
from kcc_shared.organisation import OrganisationError, load_organisation

# `kcc dev --data FOLDER` keeps its tokens here (one SQLite file per store in the folder).
DEV_AUTH_STORE: Final = "auth.db"

_data_option = click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The data folder of a `kcc dev` (e.g. var/dev): use its tokens. "
    "Without it: KCC_AUTH_DATABASE_URL, else KCC_DATABASE_URL.",
)


def _store(config: Config, data: Path | None = None) -> TokenStore:
    if data is not None:
        database = data / DEV_AUTH_STORE
        if not database.is_file():
            raise click.UsageError(
                f"{data} holds no `kcc dev` tokens ({database} does not exist); start "
                f"`kcc dev --data {data}` once first, or leave out --data"
            )
        config = config.with_(auth_database_url=f"sqlite:///{database.resolve()}")
    engine = make_engine(config.auth_url)
    try:
        return open_token_store(engine)
    except SchemaError as exc:
        engine.dispose()
        raise click.ClickException(str(exc)) from None


@click.group("token")
def token_group() -> None:
    """API tokens for agents, staff, operators and admins (stored hashed)."""


@token_group.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--user", "user_id", required=True, help="The person's id, e.g. an employee number.")
@click.option("--team", default=None, help="The agent's team (teams see each other's requests).")
@click.option("--department", "departments", multiple=True, help="For staff; repeatable.")
@click.option("--label", default=None, help="A note, e.g. which desktop client uses it.")
@_data_option
@click.pass_obj
def create(
    config: Config,
    role: str,
    user_id: str,
    team: str | None,
    departments: tuple[str, ...],
    label: str | None,
    data: Path | None,
) -> None:
    """Create a token and print it once: it cannot be shown again."""
    try:
        known = list(load_organisation(config.organisation_file).departments)
    except OrganisationError as exc:
        raise click.ClickException(f"the organisation file is invalid:\n{exc}") from exc
    try:
        token, info = _store(config, data).create(
            role=role,
            user_id=user_id,
            team=team,
            departments=departments,
            label=label,
            known_departments=known,
        )
    except TokenError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(token)
    click.echo(
        f"token {info.id} for {role} {user_id} created; store it now, it is not shown again",
        err=True,
    )


@token_group.command("list")
@_data_option
@click.pass_obj
def list_tokens(config: Config, data: Path | None) -> None:
    """List tokens (id, prefix, role, user, departments; never the secret)."""
    for info in _store(config, data).list():
        p = info.principal
        state = "revoked" if info.revoked_at else "active"
        depts = ",".join(sorted(p.departments)) or "-"
        click.echo(
            f"{info.id}  {info.prefix}…  {state:<7}  {p.role:<5}  {p.user_id}  "
            f"team={p.team or '-'}  departments={depts}  {info.label or ''}".rstrip()
        )


@token_group.command("revoke")
@click.argument("token_id")
@_data_option
@click.pass_obj
def revoke(config: Config, token_id: str, data: Path | None) -> None:
    """Revoke a token by its id (from `kcc token list`); it stops working at once."""
    if not _store(config, data).revoke(token_id):
        raise click.ClickException(f"no active token with id {token_id}")
    click.echo(f"token {token_id} revoked")
