"""JSON that parses but cannot be stored is a 400 problem, never a 500: a lone surrogate in any
text field, deep nesting, a number of thousands of digits, NaN, a blank tag, and a NUL, which
must not reach PostgreSQL. The answer names the field and never echoes the value."""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from backoffice.app import create_app as create_backoffice
from flask.testing import FlaskClient
from intake.app import create_app as create_intake
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config

from conftest import POSTGRES_ADMIN_DSN

SECRET = "malformed-json-test-secret-0123"
QUESTION = "Paspoort verlopen, vertrekt over 10 dagen. Spoedaanvraag mogelijk?"
BSN = "123456782"
# A lone surrogate escape and a NUL, each next to a BSN that must not come back either.
SURROGATE = "\\udc41"
NUL = "\\u0000"

# (service, path, body with @ where a text field's JSON string goes, the field's name)
TEXT_FIELDS = [
    ("intake", "/api/v1/requests", '{"question": @}', "question"),
    ("intake", "/api/v1/requests", f'{{"question": "{QUESTION}", "category": @}}', "category"),
    (
        "intake",
        "/api/v1/requests",
        f'{{"question": "{QUESTION}", "citizen_ref": @}}',
        "citizen_ref",
    ),
    ("intake", "/api/v1/requests", f'{{"question": "{QUESTION}", "tags": ["ok", @]}}', "tags.1"),
    ("intake", "/api/v1/requests/{id}/cancel", '{"reason": @}', "reason"),
    ("intake", "/api/v1/requests/{id}/clarification", '{"text": @}', "text"),
    ("intake", "/api/v1/requests/{id}/rating", '{"score": 2, "comment": @}', "comment"),
    ("backoffice", "/api/v1/items/{id}/answer", '{"text": @}', "text"),
    ("backoffice", "/api/v1/items/{id}/clarification-request", '{"text": @}', "text"),
    ("backoffice", "/api/v1/items/{id}/forward", '{"reason": @}', "reason"),
    (
        "backoffice",
        "/api/v1/items/{id}/forward",
        '{"reason": "Niet van ons", "to_department": @}',
        "to_department",
    ),
]
ENDPOINTS = sorted({(service, path) for service, path, _, _ in TEXT_FIELDS})


def _apps(intake_url: str, backoffice_url: str) -> Iterator[dict[str, tuple[FlaskClient, str]]]:
    # Each service owns its database (their migration histories name the same tables), and
    # both read the API tokens from the intake's.
    config = Config(
        database_url=intake_url,
        broker_url="memory://",
        outbox_relay=False,
        secret_key=SECRET,
        session_cookie_secure=False,
    )
    intake = create_intake(config)
    backoffice = create_backoffice(
        dataclasses.replace(config, database_url=backoffice_url, auth_database_url=intake_url)
    )
    agent, _ = intake.extensions[TOKENS_EXTENSION].create(
        role="agent", user_id="agent-anna", team="kcc-noord"
    )
    staff, _ = backoffice.extensions[TOKENS_EXTENSION].create(
        role="staff", user_id="staff-eva", departments=["burgerzaken"]
    )
    yield {"intake": (intake.test_client(), agent), "backoffice": (backoffice.test_client(), staff)}
    for app, key in ((intake, "kcc.intake"), (backoffice, "kcc.backoffice")):
        app.extensions[key].store.engine.dispose()
        app.extensions[TOKENS_EXTENSION].engine.dispose()


@pytest.fixture
def apps(sqlite_url: str) -> Iterator[dict[str, tuple[FlaskClient, str]]]:
    yield from _apps(sqlite_url, sqlite_url.replace("kcc.db", "backoffice.db"))


@pytest.fixture
def stores(database_url: str) -> Iterator[dict[str, tuple[FlaskClient, str]]]:
    """On SQLite and on PostgreSQL, which refuses a NUL in text (a 500 if one got through)."""
    if database_url.startswith("sqlite"):
        yield from _apps(database_url, database_url.replace("kcc.db", "backoffice.db"))
        return
    prefix, name = database_url.rsplit("/", 1)
    second = f"{name}_backoffice"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{second}"')
    try:
        yield from _apps(database_url, f"{prefix}/{second}")
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{second}" WITH (FORCE)')


def _post(apps: dict[str, tuple[FlaskClient, str]], service: str, path: str, body: str) -> Any:
    client, token = apps[service]
    return client.post(
        path.replace("{id}", str(uuid.uuid4())),
        data=body.encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def _assert_problem(response: Any, *, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    text = response.get_data(as_text=True)
    assert BSN not in text
    assert "udc41" not in text
    body: dict[str, Any] = response.json
    if field is not None:
        assert field in body["errors"], body
    return body


def _stored(apps: dict[str, tuple[FlaskClient, str]]) -> int:
    client, token = apps["intake"]
    listing = client.get("/api/v1/requests", headers={"Authorization": f"Bearer {token}"})
    return int(listing.get_json()["total"])


@pytest.mark.parametrize(("service", "path", "template", "field"), TEXT_FIELDS)
@pytest.mark.parametrize("bad", [SURROGATE, NUL], ids=["lone-surrogate", "nul"])
def test_a_text_field_with_a_lone_surrogate_or_nul_is_400(
    stores: dict[str, tuple[FlaskClient, str]],
    service: str,
    path: str,
    template: str,
    field: str,
    bad: str,
) -> None:
    value = f'"Dit is tekst {BSN} {bad} met een fout"'
    body = _assert_problem(_post(stores, service, path, template.replace("@", value)), field=field)
    assert ("NUL" if bad == NUL else "Unicode") in body["detail"]
    assert _stored(stores) == 0


@pytest.mark.parametrize(("service", "path"), ENDPOINTS)
def test_a_lone_surrogate_in_a_field_name_is_400(
    apps: dict[str, tuple[FlaskClient, str]], service: str, path: str
) -> None:
    body = _assert_problem(_post(apps, service, path, f'{{"{BSN}{SURROGATE}": 1}}'))
    assert "field name" in body["detail"]
    # The made-up key is not repeated in `errors` either.
    assert list(body["errors"]) == ["<field>"]


@pytest.mark.parametrize(("service", "path"), ENDPOINTS)
@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"text": ' + "[" * 1000 + "]" * 1000 + "}", "nested more than"),
        ('{"score": ' + "9" * 5000 + "}", "more than 20 digits"),
        ('{"score": -' + "1" * 4301 + "}", "more than 20 digits"),
        ('{"score": NaN}', "not a JSON number"),
        ('{"score": Infinity}', "not a JSON number"),
        ('{"text": "Dit is tekst"', "not valid JSON"),
    ],
    ids=["1000-levels", "5000-digits", "negative-4301-digits", "nan", "infinity", "truncated"],
)
def test_json_that_cannot_be_taken_is_400_with_its_reason(
    apps: dict[str, tuple[FlaskClient, str]], service: str, path: str, body: str, reason: str
) -> None:
    problem = _assert_problem(_post(apps, service, path, body))
    assert reason in problem["detail"]


def test_the_body_must_be_utf8(apps: dict[str, tuple[FlaskClient, str]]) -> None:
    client, token = apps["intake"]
    response = client.post(
        "/api/v1/requests",
        data=b'{"question": "Caf\xe9 ' + QUESTION.encode() + b'"}',
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    assert "UTF-8" in _assert_problem(response)["detail"]


@pytest.mark.parametrize("tag", ["   ", "\\t\\n", "\\u00a0"])
def test_a_blank_tag_is_400(apps: dict[str, tuple[FlaskClient, str]], tag: str) -> None:
    body = f'{{"question": "{QUESTION}", "tags": ["paspoort", "{tag}"]}}'
    problem = _assert_problem(_post(apps, "intake", "/api/v1/requests", body), field="tags")
    assert problem["errors"]["tags"] == ["A tag may not be empty or only spaces."]
    assert _stored(apps) == 0


def test_a_full_pair_of_surrogates_is_a_normal_character(
    apps: dict[str, tuple[FlaskClient, str]],
) -> None:
    body = f'{{"question": "{QUESTION} \\ud83d\\ude00"}}'
    response = _post(apps, "intake", "/api/v1/requests", body)
    assert response.status_code == 202
    assert response.json["question"].endswith("\N{GRINNING FACE}")


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def test_a_nul_in_a_page_form_is_refused_before_the_store(
    stores: dict[str, tuple[FlaskClient, str]],
) -> None:
    client, token = stores["intake"]
    login = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"token": token, "csrf_token": _csrf(login)})
    desk = client.get("/balie").get_data(as_text=True)

    response = client.post(
        "/balie/vragen",
        data={"csrf_token": _csrf(desk), "question": f"{QUESTION} {BSN}\x00", "priority": "normal"},
    )

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert BSN not in response.get_data(as_text=True)
    assert _stored(stores) == 0
