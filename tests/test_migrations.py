"""Schema migrations, as an operations team meets them: a release's database upgraded with its
rows, down and up again, a service that refuses a database that is behind, and the code's
tables equal to the migrations' head. On SQLite here, on PostgreSQL in the integration tier."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from intake.store import RequestStore
from intake.view import NewRequest
from kcc_cli.main import cli
from kcc_cli.migrate import SERVICES, migrate_dev
from kcc_shared.auth import Principal, open_token_store
from kcc_shared.auth_migrations import HISTORY as AUTH
from kcc_shared.config import Config
from kcc_shared.db import make_engine
from kcc_shared.migrations import (
    History,
    SchemaBehind,
    check_models,
    downgrade,
    head,
    migrate,
    state,
)
from sqlalchemy import Engine, MetaData, inspect, text

FIXTURES = Path(__file__).parent / "fixtures" / "release-32120a3"
HISTORIES = {history.name: history for history, _, _ in SERVICES}
# The command group of each history in `kcc`.
GROUPS = {"intake": "intake", "backoffice": "backoffice", "sla": "sla"}
ANNA = Principal(role="agent", user_id="agent-anna", team="kcc-noord")
AUTH_UP_TO_DATE = f"auth: up to date (revision {head(AUTH)})"


@pytest.fixture(params=sorted(HISTORIES))
def history(request: pytest.FixtureRequest) -> History:
    return HISTORIES[str(request.param)]


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def load_release(engine: Engine, service: str) -> None:
    """The database release 32120a3 left behind (tests/fixtures/release-32120a3/make.py)."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        assert database is not None
        with sqlite3.connect(database) as db:
            db.executescript((FIXTURES / f"{service}.sqlite.sql").read_text())
        return
    script = (FIXTURES / f"{service}.postgresql.sql").read_text()
    # psql's own commands (\restrict) are not SQL.
    sql = "\n".join(line for line in script.splitlines() if not line.startswith("\\"))
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        assert driver is not None
        driver.execute(sql)
        driver.commit()
    engine.dispose()  # the dump emptied the session's search_path


def counts(engine: Engine, tables: set[str]) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            t: connection.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()
            for t in sorted(tables)
        }


def tables_of(engine: Engine, history: History) -> set[str]:
    return set(inspect(engine).get_table_names()) & history.tables()


def invoke(args: list[str], url: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env={"KCC_DATABASE_URL": url})
    return result.exit_code, result.stdout


def test_the_code_s_tables_are_the_migrations_head(history: History, engine: Engine) -> None:
    check_models(engine, history)  # raises, printing the operations a migration needs


def test_migrations_run_down_to_nothing_and_up_again(history: History, engine: Engine) -> None:
    migrate(engine, history)
    assert state(engine, history).kind == "current"
    assert tables_of(engine, history) == history.tables()

    downgrade(engine, history, "base")
    assert tables_of(engine, history) == set()
    assert state(engine, history).kind == "empty"

    migrate(engine, history)
    assert state(engine, history).kind == "current"
    check_models(engine, history)


def test_a_release_32120a3_database_is_recognised_and_migrated_with_its_rows(
    history: History, engine: Engine, database_url: str
) -> None:
    load_release(engine, history.name)
    before = counts(engine, tables_of(engine, history))
    assert sum(before.values()) > 0
    assert state(engine, history).kind == "behind"

    status, output = invoke([GROUPS[history.name], "migrate", "--check"], database_url)
    assert status == 1
    assert f"run `kcc {GROUPS[history.name]} migrate`" in output

    status, output = invoke([GROUPS[history.name], "migrate"], database_url)
    assert status == 0, output
    assert "recognised tables without a version as revision 0001" in output
    assert f"to {head(history)}" in output

    after = counts(engine, set(before))
    assert after == before
    assert state(engine, history).kind == "current"
    check_models(engine, history)
    status, output = invoke([GROUPS[history.name], "migrate"], database_url)
    assert (status, output.splitlines()) == (
        0,
        [f"{history.name}: up to date (revision {head(history)})", AUTH_UP_TO_DATE],
    )


def test_the_intake_s_earlier_questions_get_references_in_filing_order(
    engine: Engine, database_url: str
) -> None:
    load_release(engine, "intake")
    assert invoke(["intake", "migrate"], database_url)[0] == 0

    store = RequestStore(engine, clock=lambda: datetime(2026, 1, 6, 8, 0, tzinfo=UTC))
    store.create_schema()
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT r.question, x.reference FROM requests r "
                "JOIN request_references x ON x.request_id = r.id ORDER BY r.created_at"
            )
        ).all()
    # Filed 30 December 2025, 31 December 23:30 UTC (already 2026 in the Netherlands), 5 January.
    assert [(q[:7], ref) for q, ref in rows] == [
        ("Vraag 1", "KV-2025-000001"),
        ("Vraag 2", "KV-2026-000001"),
        ("Vraag 3", "KV-2026-000002"),
    ]
    # The year's counter went on from there: the next question filed gets the next number.
    filed = store.submit(
        ANNA,
        NewRequest(
            question="Mag ik een dakkapel plaatsen zonder vergunning?",
            category=None,
            priority="normal",
            channel="phone",
            citizen_ref=None,
        ),
    ).request
    assert filed.reference == "KV-2026-000003"


def test_a_service_refuses_a_database_that_is_behind(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate(engine, HISTORIES["intake"], "0001")
    from intake.app import create_app

    with pytest.raises(SchemaBehind, match="run `kcc intake migrate`"):
        create_app(Config(database_url=sqlite_url))
    with pytest.raises(SchemaBehind, match="0001; this code needs 0"):
        RequestStore(engine).create_schema()
    migrate(engine, HISTORIES["intake"])
    RequestStore(engine).create_schema()
    engine.dispose()


@pytest.mark.parametrize("service", ["backoffice", "sla"])
def test_the_other_services_refuse_a_release_database_too(
    service: str, sqlite_url: str, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    load_release(engine, service)
    before = counts(engine, tables_of(engine, HISTORIES[service]))
    if service == "backoffice":
        from backoffice.app import create_app as create_backoffice

        with pytest.raises(SchemaBehind, match="run `kcc backoffice migrate`"):
            create_backoffice(Config(database_url=sqlite_url))
    else:
        from sla_monitor.app import create_app as create_sla

        with pytest.raises(SchemaBehind, match="run `kcc sla migrate`"):
            create_sla(Config(database_url=sqlite_url))
    assert counts(engine, set(before)) == before
    engine.dispose()


def test_a_brand_new_database_is_created_at_head_by_the_service(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    RequestStore(engine).create_schema()
    assert state(engine, HISTORIES["intake"]).kind == "current"
    engine.dispose()


def test_check_says_up_to_date_and_names_what_is_pending(sqlite_url: str) -> None:
    status, output = invoke(["intake", "migrate", "--check"], sqlite_url)
    assert status == 1
    assert "no tables yet" in output
    assert invoke(["intake", "migrate", "--to", "0001"], sqlite_url)[0] == 0
    status, output = invoke(["intake", "migrate", "--check"], sqlite_url)
    assert status == 1
    assert f"behind (0001; this code needs {head(HISTORIES['intake'])})" in output
    assert "0002 Since release 32120a3" in output
    assert invoke(["intake", "migrate"], sqlite_url)[0] == 0
    assert invoke(["intake", "migrate", "--check"], sqlite_url) == (
        0,
        f"intake: up to date (revision {head(HISTORIES['intake'])})\n{AUTH_UP_TO_DATE}\n",
    )


def test_down_and_to_a_revision(sqlite_url: str) -> None:
    assert invoke(["sla", "migrate"], sqlite_url)[0] == 0
    status, output = invoke(["sla", "migrate", "--down", "0001"], sqlite_url)
    assert status == 0, output
    assert f"downgraded from {head(HISTORIES['sla'])} to 0001" in output
    status, output = invoke(["sla", "migrate", "--to", "0001"], sqlite_url)
    assert (status, "up to date (revision 0001)" in output) == (0, True)
    status, output = invoke(["sla", "migrate", "--to", "0002"], sqlite_url)
    assert (status, "migrated from 0001 to 0002" in output) == (0, True)
    both = CliRunner().invoke(
        cli,
        ["sla", "migrate", "--to", "0002", "--down", "0001"],
        env={"KCC_DATABASE_URL": sqlite_url},
    )
    assert both.exit_code == 2
    assert "give --to or --down, not both" in both.stderr


def test_bad_revisions_and_databases_are_refused_and_change_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    status, output = invoke(["intake", "migrate", "--to", "0042"], sqlite_url)
    assert status == 2
    assert "no revision '0042' (known: base, 0001, 0002" in output
    assert state(make_engine(sqlite_url), HISTORIES["intake"]).kind == "empty"

    unreachable = "postgresql+psycopg://kcc@127.0.0.1:1/kcc_nowhere"
    status, output = invoke(["intake", "migrate"], unreachable)
    assert status == 2
    assert "cannot reach the database postgresql+psycopg://kcc@127.0.0.1:1/kcc_nowhere" in output


def test_a_database_of_a_newer_release_is_not_touched(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate(engine, HISTORIES["intake"])
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version_intake SET version_num = '0099'"))
    status, output = invoke(["intake", "migrate"], sqlite_url)
    assert status == 2
    assert "revision 0099, which this release does not know (a newer release" in output
    assert invoke(["intake", "migrate", "--check"], sqlite_url)[0] == 2
    from intake.app import create_app

    with pytest.raises(Exception, match="newer release"):
        create_app(Config(database_url=sqlite_url))
    engine.dispose()


def test_tables_that_match_no_revision_are_refused(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    load_release(engine, "sla")
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE sla_ratings ADD COLUMN comment TEXT"))
    status, output = invoke(["sla", "migrate"], sqlite_url)
    assert status == 2
    assert "match no revision" in output
    assert "sla_ratings: has ['comment']" in output
    assert "alembic_version_sla" not in inspect(engine).get_table_names()
    engine.dispose()


def test_kcc_dev_brings_its_own_stores_up_to_date(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    data.mkdir()
    for history, store, _ in SERVICES:
        engine = make_engine(f"sqlite:///{data / store}.db")
        load_release(engine, history.name)
        engine.dispose()
    migrate_dev(data)
    for history, store, _ in SERVICES:
        engine = make_engine(f"sqlite:///{data / store}.db")
        assert state(engine, history).kind == "current"
        engine.dispose()


def test_every_history_has_its_own_version_table() -> None:
    tables = {h.version_table for h in HISTORIES.values()}
    assert tables == {"alembic_version_intake", "alembic_version_backoffice", "alembic_version_sla"}
    assert all(isinstance(m, MetaData) for h in HISTORIES.values() for m in h.metadata())


def test_make_migrations_check_says_each_history_matches_the_code() -> None:
    result = CliRunner().invoke(cli, ["migrate", "--models"])
    assert result.exit_code == 0, result.output
    for history in HISTORIES.values():
        assert f"{history.name}: the migrations' head ({head(history)}) is the code's" in (
            result.stdout
        )


# --- the auth tables (api_tokens, web_sessions): their own history --------------------------


def test_the_auth_tables_are_their_history_s_head_and_run_down_and_up(engine: Engine) -> None:
    check_models(engine, AUTH)
    assert tables_of(engine, AUTH) == {"api_tokens", "web_sessions"}
    assert "alembic_version_auth" in inspect(engine).get_table_names()

    downgrade(engine, AUTH, "base")
    assert tables_of(engine, AUTH) == set()
    assert state(engine, AUTH).kind == "empty"

    migrate(engine, AUTH)
    check_models(engine, AUTH)


def release_tokens(engine: Engine) -> list[tuple[str, str, bool]]:
    """Who holds a token, with which role, and whether it still works."""
    return [
        (t.principal.user_id, t.principal.role, t.revoked_at is None)
        for t in open_token_store(engine).list()
    ]


def test_a_release_database_with_the_auth_tables_beside_the_intake_s_is_migrated_whole(
    engine: Engine, database_url: str
) -> None:
    # Release 32120a3 without KCC_AUTH_DATABASE_URL: every service kept tokens and web sessions
    # in its own database, created at start without a version.
    load_release(engine, "intake")
    load_release(engine, "auth")
    before = counts(engine, {"api_tokens", "web_sessions", "requests"})
    # What every service's start does with its token store (create_app: the SQLite test below).
    with pytest.raises(SchemaBehind, match="auth: the database is behind"):
        open_token_store(engine)
    status, output = invoke(["intake", "migrate", "--check"], database_url)
    assert status == 1
    assert (
        "auth: the database is behind (release 32120a3's tables, not versioned; this code needs "
        "0001): run `kcc <service> migrate`"
    ) in output

    status, output = invoke(["intake", "migrate"], database_url)

    assert status == 0, output
    assert "auth:   recognised tables without a version as revision 0001; stamped" in output
    assert "auth: migrated from 0001 to 0001" in output
    assert counts(engine, set(before)) == before
    assert state(engine, AUTH).kind == "current"
    assert state(engine, HISTORIES["intake"]).kind == "current"
    assert release_tokens(engine) == [
        ("agent-anna", "agent", True),
        ("staff-piet", "staff", False),
    ]


def test_a_service_refuses_a_shared_auth_database_that_is_behind(
    sqlite_url: str, tmp_path: Path
) -> None:
    auth_url = f"sqlite:///{tmp_path / 'auth.db'}"
    auth = make_engine(auth_url)
    load_release(auth, "auth")
    config = Config(database_url=sqlite_url, auth_database_url=auth_url, secret_key="s" * 32)
    from backoffice.app import create_app

    with pytest.raises(SchemaBehind, match="auth: the database is behind"):
        create_app(config)
    # `kcc token` refuses it too, with the same advice and without a traceback.
    result = CliRunner().invoke(cli, ["token", "list"], env={"KCC_AUTH_DATABASE_URL": auth_url})
    assert result.exit_code == 1
    assert "run `kcc <service> migrate`" in result.stderr

    # The service's migrate reads KCC_AUTH_DATABASE_URL as the service does.
    migrated = CliRunner().invoke(
        cli,
        ["backoffice", "migrate"],
        env={"KCC_DATABASE_URL": sqlite_url, "KCC_AUTH_DATABASE_URL": auth_url},
    )
    assert migrated.exit_code == 0, migrated.output
    assert state(auth, AUTH).kind == "current"
    assert "web_sessions" not in inspect(make_engine(sqlite_url)).get_table_names()
    create_app(config)
    auth.dispose()


def test_a_downgrade_of_a_service_leaves_the_auth_tables_alone(sqlite_url: str) -> None:
    assert invoke(["sla", "migrate"], sqlite_url)[0] == 0
    status, output = invoke(["sla", "migrate", "--down", "base"], sqlite_url)
    assert status == 0, output
    assert "auth" not in output
    assert state(make_engine(sqlite_url), AUTH).kind == "current"


def test_kcc_migrate_brings_the_auth_tables_of_every_service_database_up(tmp_path: Path) -> None:
    urls = {store: f"sqlite:///{tmp_path / store}.db" for _, store, _ in SERVICES}
    intake = make_engine(urls["intake"])
    load_release(intake, "auth")
    before = counts(intake, {"api_tokens", "web_sessions"})

    result = CliRunner().invoke(
        cli,
        [
            "migrate",
            "--intake-url",
            urls["intake"],
            "--backoffice-url",
            urls["backoffice"],
            "--sla-url",
            urls["sla-monitor"],
        ],
        env={"KCC_AUTH_DATABASE_URL": None},
    )

    assert result.exit_code == 0, result.output
    for url in urls.values():
        assert state(make_engine(url), AUTH).kind == "current"
    assert counts(intake, set(before)) == before
    intake.dispose()


def test_kcc_migrate_with_a_shared_auth_database_migrates_it_once(tmp_path: Path) -> None:
    auth_url = f"sqlite:///{tmp_path / 'auth.db'}"
    load_release(make_engine(auth_url), "auth")

    result = CliRunner().invoke(
        cli, ["migrate", "--data", str(tmp_path / "dev"), "--auth-url", auth_url]
    )

    assert result.exit_code == 0, result.output
    assert result.output.count("auth: migrated from 0001 to 0001") == 1
    assert state(make_engine(auth_url), AUTH).kind == "current"


def test_kcc_dev_brings_its_auth_store_up_to_date(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    data.mkdir()
    store = make_engine(f"sqlite:///{data / 'auth.db'}")
    load_release(store, "auth")
    migrate_dev(data)
    assert state(store, AUTH).kind == "current"
    store.dispose()
