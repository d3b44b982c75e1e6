"""API tokens on both stores: who a token is, that only its hash is kept, and what is refused."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from kcc_shared.auth import Principal, TokenError, TokenStore, bearer_token, tokens_table
from kcc_shared.db import make_engine
from sqlalchemy import Engine, MetaData, Table, create_engine, func, select

DEPARTMENTS = ("burgerzaken", "belastingen", "vergunningen")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def table(engine: Engine) -> Table:
    metadata = MetaData()
    table = tokens_table(metadata)
    metadata.create_all(engine)
    return table


@pytest.fixture
def store(engine: Engine, table: Table) -> TokenStore:
    return TokenStore(engine, table)


def stored_rows(engine: Engine, table: Table) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(select(table))]


@pytest.mark.parametrize(
    ("arguments", "principal"),
    [
        pytest.param(
            {"role": "agent", "user_id": "agent-anna", "team": "kcc-noord"},
            Principal("agent-anna", "agent", "kcc-noord"),
            id="agent with team",
        ),
        pytest.param(
            {"role": "staff", "user_id": "bert@gemeente.nl", "departments": ["vergunningen"]},
            Principal("bert@gemeente.nl", "staff", None, frozenset({"vergunningen"})),
            id="staff, one department",
        ),
        pytest.param(
            {
                "role": "staff",
                "user_id": "carla",
                "departments": ["belastingen", "burgerzaken", "belastingen"],
            },
            Principal("carla", "staff", None, frozenset({"belastingen", "burgerzaken"})),
            id="staff, two departments",
        ),
        pytest.param(
            {"role": "ops", "user_id": "ops.dirk"}, Principal("ops.dirk", "ops"), id="ops"
        ),
        pytest.param({"role": "admin", "user_id": "eva"}, Principal("eva", "admin"), id="admin"),
    ],
)
def test_a_created_token_authenticates_as_its_principal(
    store: TokenStore, arguments: dict[str, Any], principal: Principal
) -> None:
    token, info = store.create(**arguments, known_departments=DEPARTMENTS)

    authenticated = store.authenticate(token)

    assert token.startswith("kcc_")
    assert len(token) >= 40
    assert authenticated is not None
    assert authenticated.user_id == principal.user_id
    assert authenticated.role == principal.role
    assert authenticated.team == principal.team
    assert authenticated.departments == principal.departments
    assert authenticated.token_id == info.id
    assert info.principal == principal
    assert authenticated.is_operator is (principal.role in ("ops", "admin"))


def test_each_token_is_its_own_and_unique(store: TokenStore) -> None:
    anna, _ = store.create(role="agent", user_id="agent-anna")
    bert, _ = store.create(role="staff", user_id="staff-bert", departments=["burgerzaken"])

    assert anna != bert
    assert (principal := store.authenticate(anna)) is not None
    assert principal.user_id == "agent-anna"
    assert (principal := store.authenticate(bert)) is not None
    assert principal.user_id == "staff-bert"


def test_the_store_keeps_no_plaintext_token(
    store: TokenStore, engine: Engine, table: Table
) -> None:
    token, info = store.create(role="agent", user_id="agent-anna", label="desk 12")

    dump = repr(stored_rows(engine, table))

    # At most the 10-character display prefix is kept: no longer piece of the secret.
    assert info.prefix == token[:10]
    pieces = {token[i : i + 12] for i in range(len(token) - 11)}
    assert [piece for piece in pieces if piece in dump] == []


def test_a_revoked_token_no_longer_authenticates(store: TokenStore) -> None:
    token, info = store.create(role="agent", user_id="agent-anna")
    other, _ = store.create(role="agent", user_id="agent-ben")

    assert store.revoke(info.id) is True

    assert store.authenticate(token) is None
    assert store.authenticate(other) is not None
    assert store.revoke(info.id) is False  # already revoked
    [listed] = [t for t in store.list() if t.id == info.id]
    assert listed.revoked_at is not None


def test_with_a_token_cache_revoking_takes_effect_at_once_in_the_same_store(
    engine: Engine, table: Table
) -> None:
    store = TokenStore(engine, table, cache_seconds=60)
    token, info = store.create(role="agent", user_id="agent-anna")
    assert store.authenticate(token) is not None  # now cached

    store.revoke(info.id)

    assert store.authenticate(token) is None


def test_with_a_token_cache_another_process_sees_a_revocation_within_the_cache_time(
    engine: Engine, table: Table, wait_for: Callable[..., None]
) -> None:
    cache_seconds = 0.3
    service = TokenStore(engine, table, cache_seconds=cache_seconds)
    cli = TokenStore(engine, table)
    token, info = cli.create(role="agent", user_id="agent-anna")
    assert service.authenticate(token) is not None  # now cached by the service
    started = time.monotonic()

    cli.revoke(info.id)

    wait_for(lambda: service.authenticate(token) is None, timeout=5)
    assert time.monotonic() - started < cache_seconds + 1


def test_a_token_cache_refuses_what_it_has_not_checked(engine: Engine, table: Table) -> None:
    store = TokenStore(engine, table, cache_seconds=60)
    token, _ = store.create(role="agent", user_id="agent-anna")
    assert store.authenticate(token) is not None

    assert store.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_revoking_an_unknown_token_changes_nothing(store: TokenStore) -> None:
    token, _ = store.create(role="agent", user_id="agent-anna")

    assert store.revoke("00000000-0000-0000-0000-000000000000") is False
    assert store.authenticate(token) is not None


def test_list_shows_tokens_without_their_secret(store: TokenStore) -> None:
    token, info = store.create(role="ops", user_id="ops.dirk", label="grafana")

    [listed] = store.list()

    assert listed.id == info.id
    assert listed.prefix == token[:10]
    assert listed.principal == Principal("ops.dirk", "ops")
    assert listed.label == "grafana"
    assert listed.created_at.utcoffset() is not None
    assert listed.revoked_at is None
    assert token not in repr(listed)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"role": "superuser", "user_id": "x"}, "role must be one of", id="bad role"),
        pytest.param({"role": "Agent", "user_id": "x"}, "role must be one of", id="role case"),
        pytest.param({"role": "staff", "user_id": "bert"}, "needs at least one", id="no dept"),
        pytest.param(
            {"role": "agent", "user_id": "anna", "departments": ["burgerzaken"]},
            "only staff tokens are bound to departments",
            id="department for an agent",
        ),
        pytest.param(
            {"role": "ops", "user_id": "dirk", "departments": ["burgerzaken"]},
            "only staff tokens",
            id="department for ops",
        ),
        pytest.param(
            {"role": "staff", "user_id": "bert", "departments": ["parkeren"]},
            "unknown department 'parkeren'",
            id="unknown department",
        ),
        pytest.param(
            {"role": "staff", "user_id": "bert", "departments": ["Burger Zaken"]},
            "is not a department id",
            id="department not an id",
        ),
        pytest.param({"role": "agent", "user_id": ""}, "user id", id="empty user id"),
        pytest.param({"role": "agent", "user_id": "anna de vries"}, "user id", id="space"),
        pytest.param({"role": "agent", "user_id": "x" * 65}, "user id", id="user id too long"),
        pytest.param({"role": "agent", "user_id": "anna\n"}, "user id", id="trailing newline"),
        pytest.param({"role": "agent", "user_id": "a", "team": "team noord"}, "team", id="team"),
        pytest.param({"role": "agent", "user_id": "a", "team": "noord\n"}, "team", id="team \\n"),
    ],
)
def test_a_bad_creation_is_refused_clearly_and_stores_nothing(
    store: TokenStore, engine: Engine, table: Table, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(TokenError, match=message):
        store.create(**arguments, known_departments=DEPARTMENTS)

    assert stored_rows(engine, table) == []


def test_every_problem_with_a_creation_is_named_at_once(store: TokenStore) -> None:
    with pytest.raises(TokenError) as caught:
        store.create(role="root", user_id="", departments=["parkeren"], known_departments=())

    message = str(caught.value)
    assert "role must be one of agent, staff, ops, admin" in message
    assert "user id" in message
    assert "unknown department 'parkeren'" in message


def test_a_department_id_is_checked_whole_even_without_known_departments(
    store: TokenStore, engine: Engine, table: Table
) -> None:
    with pytest.raises(TokenError, match="is not a department id"):
        store.create(role="staff", user_id="bert", departments=["burgerzaken\n"])

    assert stored_rows(engine, table) == []


def test_without_known_departments_any_department_id_is_accepted(store: TokenStore) -> None:
    token, _ = store.create(role="staff", user_id="bert", departments=["nieuwe-afdeling"])

    assert (principal := store.authenticate(token)) is not None
    assert principal.departments == {"nieuwe-afdeling"}


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda t: t[len("kcc_") :], id="without the prefix"),
        pytest.param(lambda t: "KCC_" + t[len("kcc_") :], id="prefix in capitals"),
        pytest.param(lambda t: t[:-1], id="one character short"),
        pytest.param(lambda t: t + "x", id="one character more"),
        pytest.param(lambda t: t.upper(), id="upper case"),
        pytest.param(lambda t: f" {t}", id="leading space"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "kcc_", id="prefix alone"),
    ],
)
def test_a_wrong_token_is_refused(store: TokenStore, mangle: Any) -> None:
    token, _ = store.create(role="admin", user_id="eva")

    assert store.authenticate(mangle(token)) is None


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("Bearer-" + "a" * 40, id="no prefix"),
        pytest.param("kcc_" + "a" * 100_000, id="overlong"),
    ],
)
def test_a_malformed_token_is_refused_without_asking_the_store(token: str) -> None:
    # A store nobody can reach: if authenticate asked it, it would raise instead of refusing.
    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    store = TokenStore(unreachable, tokens_table(MetaData()))

    assert store.authenticate(token) is None


def test_tokens_of_one_store_are_shared_by_every_service_using_it(
    engine: Engine, table: Table
) -> None:
    # Two services (two TokenStore objects) on the same auth database see the same tokens.
    token, info = TokenStore(engine, table).create(role="agent", user_id="agent-anna")
    other_service = TokenStore(engine, table)

    assert (principal := other_service.authenticate(token)) is not None
    assert principal.token_id == info.id
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(table)).scalar_one() == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("Bearer kcc_abc", "kcc_abc", id="bearer"),
        pytest.param("bearer   kcc_abc  ", "kcc_abc", id="case and spaces"),
        pytest.param("Basic dXNlcjpwdw==", None, id="basic"),
        pytest.param("Bearer ", None, id="empty"),
        pytest.param("kcc_abc", None, id="no scheme"),
        pytest.param(None, None, id="no header"),
    ],
)
def test_bearer_token_reads_the_authorization_header(
    header: str | None, expected: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}

    with Flask(__name__).test_request_context(headers=headers) as context:
        assert bearer_token(context.request) == expected
