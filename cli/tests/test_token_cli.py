"""`kcc token create/list/revoke`: tokens are printed once, stored hashed, and checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from kcc_cli.dev import demo_tokens, private_folder
from kcc_cli.main import cli
from kcc_shared.auth import TokenStore, tokens_table
from kcc_shared.config import EXIT_CONFIG, Config
from kcc_shared.db import make_engine
from sqlalchemy import MetaData, select


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"KCC_DATABASE_URL": f"sqlite:///{tmp_path / 'kcc.db'}", "KCC_LOG_FORMAT": "text"}


def store(env: dict[str, str]) -> TokenStore:
    metadata = MetaData()
    table = tokens_table(metadata)
    engine = make_engine(env["KCC_DATABASE_URL"])
    metadata.create_all(engine)
    return TokenStore(engine, table)


def test_create_prints_the_token_once_and_stores_only_its_hash(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        cli,
        ["token", "create", "--role", "agent", "--user", "agent-anna", "--team", "kcc-noord"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("kcc_")
    assert "not shown again" in result.stderr

    principal = store(env).authenticate(token)
    assert principal is not None
    assert (principal.user_id, principal.role, principal.team) == (
        "agent-anna",
        "agent",
        "kcc-noord",
    )
    engine = make_engine(env["KCC_DATABASE_URL"])
    metadata = MetaData()
    table = tokens_table(metadata)
    with engine.connect() as connection:
        stored = [str(v) for row in connection.execute(select(table)) for v in row]
    assert not any(token in value or token[4:] in value for value in stored)


def test_staff_tokens_are_bound_to_known_departments(env: dict[str, str]) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        cli,
        [
            "token",
            "create",
            "--role",
            "staff",
            "--user",
            "staff-eva",
            "--department",
            "burgerzaken",
            "--department",
            "belastingen",
        ],
        env=env,
    )
    assert ok.exit_code == 0, ok.output
    principal = store(env).authenticate(ok.stdout.strip())
    assert principal is not None
    assert principal.departments == {"burgerzaken", "belastingen"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "staff", "--user", "staff-eva"], "needs at least one --department"),
        (["--role", "staff", "--user", "s", "--department", "ruimtevaart"], "unknown department"),
        (["--role", "agent", "--user", "a", "--department", "afval"], "only staff tokens"),
        (["--role", "agent", "--user", "has space"], "user id"),
        (["--role", "wizard", "--user", "x"], "wizard"),
        (["--role", "agent"], "--user"),
    ],
)
def test_bad_token_requests_are_refused_and_store_nothing(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["token", "create", *args], env=env)
    assert result.exit_code == 2
    assert message in result.output
    assert store(env).list() == []


def test_list_never_shows_the_secret_and_revoke_disables(env: dict[str, str]) -> None:
    runner = CliRunner()
    token = runner.invoke(
        cli, ["token", "create", "--role", "ops", "--user", "ops-dana"], env=env
    ).stdout.strip()
    listing = runner.invoke(cli, ["token", "list"], env=env)
    assert listing.exit_code == 0
    assert "ops-dana" in listing.stdout
    assert token not in listing.stdout
    token_id = listing.stdout.split()[0]

    revoked = runner.invoke(cli, ["token", "revoke", token_id], env=env)
    assert revoked.exit_code == 0
    assert store(env).authenticate(token) is None
    assert "revoked" in runner.invoke(cli, ["token", "list"], env=env).stdout

    again = runner.invoke(cli, ["token", "revoke", token_id], env=env)
    assert again.exit_code == 1
    assert "no active token" in again.output


def test_a_bad_environment_is_reported_before_anything_runs(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        cli, ["token", "list"], env={**env, "KCC_PUBLISH_TIMEOUT": "soon", "KCC_LOG_LEVEL": "LOUD"}
    )
    # The status every command refuses its configuration with, whichever command it is.
    assert result.exit_code == EXIT_CONFIG
    assert "KCC_PUBLISH_TIMEOUT" in result.output
    assert "KCC_LOG_LEVEL" in result.output


def dev_data(tmp_path: Path) -> Path:
    """The data folder a `kcc dev --data` leaves behind: its token store and demo tokens."""
    data = tmp_path / "dev"
    private_folder(data)
    demo_tokens(Config().with_(auth_database_url=f"sqlite:///{data / 'auth.db'}"), data)
    return data


def dev_store(data: Path) -> TokenStore:
    metadata = MetaData()
    return TokenStore(make_engine(f"sqlite:///{data / 'auth.db'}"), tokens_table(metadata))


def test_data_puts_the_token_where_kcc_dev_reads_tokens(
    env: dict[str, str], tmp_path: Path
) -> None:
    data = dev_data(tmp_path)
    runner = CliRunner()

    result = runner.invoke(
        cli,
        ["token", "create", "--data", str(data), "--role", "agent", "--user", "agent-zoe"],
        env=env,
    )

    assert result.exit_code == 0, result.output
    principal = dev_store(data).authenticate(result.stdout.strip())
    assert principal is not None
    assert principal.user_id == "agent-zoe"
    # Not in the store KCC_DATABASE_URL names.
    assert store(env).list() == []
    listing = runner.invoke(cli, ["token", "list", "--data", str(data)], env=env)
    assert "agent-zoe" in listing.stdout
    assert "agent-anna" in listing.stdout  # a demo user of that kcc dev


def test_data_without_a_kcc_dev_is_refused_and_creates_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    empty = tmp_path / "niet-gestart"

    result = CliRunner().invoke(
        cli,
        ["token", "create", "--data", str(empty), "--role", "agent", "--user", "agent-zoe"],
        env=env,
    )

    assert result.exit_code == 2
    assert "holds no `kcc dev` tokens" in result.output
    assert f"kcc dev --data {empty}" in result.output
    assert not empty.exists()
