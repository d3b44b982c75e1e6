"""No citizen service number gets into the intake, in any format, through any field: free text
is redacted, a reference or tag holding one is refused (without repeating it), the
Idempotency-Key is stored as a hash, and the desk shows a refused form again without it."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.app import create_app
from intake.store import outbox, requests_table, timeline_table
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from sqlalchemy import select, update
from werkzeug.test import TestResponse

QUESTION = "Mevrouw vraagt hoe ze een uittreksel uit de BRP aanvraagt voor haar werkgever."
# The formats that used to get through, each with the digits that must not come out again.
# 123456782, 111222333 and 999993653 pass the 11-check, 12345611 with a leading zero; the
# labelled 12345678 does not (a label is enough).
WRITTEN: list[tuple[str, str, str]] = [
    ("BSN.", "BSN.123456782", "123456782"),
    ("BSN nr.", "BSN nr.111222333", "111222333"),
    ("klant nr.", "klant nr.999993653", "999993653"),
    ("url path", "https://x.nl/personen/123456782/1", "123456782"),
    ("dossier code", "dossier-111222333", "111222333"),
    ("e-mail", "abc123456782@x.nl", "123456782"),
    ("double spaces", "123  456  782", "123456782"),
    ("en dash", "123\u2013456\u2013782", "123456782"),
    ("slash", "123/456/782", "123456782"),
    ("underscore", "123_456_782", "123456782"),
    ("comma", "123,456,782", "123456782"),
    ("zero-width space", "1234\u200b56782", "123456782"),
    ("no-break space", "123\u00a0456\u00a0782", "123456782"),
    ("narrow no-break space", "123\u202f456\u202f782", "123456782"),
    ("eight digits", "12345611", "12345611"),
    ("eight digits after BSN", "BSN 12345678", "12345678"),
]
FORMATS = [pytest.param(written, digits, id=name) for name, written, digits in WRITTEN]
ALL_FORMATS = " ; ".join(written for _, written, _ in WRITTEN)
ALL_DIGITS = [digits for _, _, digits in WRITTEN]
_SEPARATORS = re.compile(r"[\s.,/_\-\u2010-\u2015\u200b-\u200f\u2060\ufeff\u00ad]")


def leaks(text: str, digits: str) -> bool:
    """The digits stand in the text, whatever separators or invisible characters split them."""
    return digits in _SEPARATORS.sub("", text)


def leaked(text: str) -> list[str]:
    return [d for d in ALL_DIGITS if leaks(text, d)]


def body(response: TestResponse) -> Any:
    return response.get_json()


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def stored_text(app: Flask) -> str:
    """Everything the intake stored that holds text: requests, timeline and outbox."""
    engine = app.extensions["kcc.intake"].store.engine
    with engine.connect() as connection:
        rows = [
            *connection.execute(select(requests_table)).all(),
            *connection.execute(select(timeline_table)).all(),
            *connection.execute(select(outbox)).all(),
        ]
    return json.dumps([[str(v) for v in row] for row in rows], ensure_ascii=False)


# -- refused fields ----------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "digits"), FORMATS)
def test_a_citizen_ref_holding_a_bsn_is_refused_without_repeating_it(
    app: Flask,
    client: FlaskClient,
    agent_token: str,
    row_counts: Callable[[], dict[str, int]],
    written: str,
    digits: str,
) -> None:
    before = row_counts()
    response = client.post(
        "/api/v1/requests",
        json={"question": QUESTION, "citizen_ref": written},
        headers=bearer(agent_token),
    )

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert list(body(response)["errors"]) == ["citizen_ref"]
    assert not leaks(response.get_data(as_text=True), digits)
    assert row_counts() == before


@pytest.mark.parametrize(("written", "digits"), FORMATS)
def test_a_tag_holding_a_bsn_is_refused_without_repeating_it(
    client: FlaskClient,
    agent_token: str,
    row_counts: Callable[[], dict[str, int]],
    written: str,
    digits: str,
) -> None:
    before = row_counts()
    response = client.post(
        "/api/v1/requests",
        json={"question": QUESTION, "tags": ["spoed", written]},
        headers=bearer(agent_token),
    )

    assert response.status_code == 400
    assert list(body(response)["errors"]) == ["tags"]
    assert not leaks(response.get_data(as_text=True), digits)
    assert row_counts() == before


def test_an_ordinary_reference_and_tags_are_accepted(client: FlaskClient, agent_token: str) -> None:
    response = client.post(
        "/api/v1/requests",
        json={
            "question": QUESTION,
            "citizen_ref": "KCC-2026-000123",
            "tags": ["spoed", "06-12345678", "1234 AB"],
        },
        headers=bearer(agent_token),
    )

    assert response.status_code == 202, body(response)
    assert body(response)["citizen_ref"] == "KCC-2026-000123"


def test_a_refused_field_name_is_not_repeated(client: FlaskClient, agent_token: str) -> None:
    # An unknown field is named in the answer; a field named by a BSN is named as [BSN].
    response = client.post(
        "/api/v1/requests",
        json={"question": QUESTION, "bsn 123456782": "x", "111.222.333": 1},
        headers=bearer(agent_token),
    )

    assert response.status_code == 400
    assert leaked(response.get_data(as_text=True)) == []
    assert "[BSN]" in body(response)["errors"]


# -- redacted free text -----------------------------------------------------------------------


@pytest.mark.parametrize(("written", "digits"), FORMATS)
def test_the_question_is_redacted_in_every_format(
    app: Flask, client: FlaskClient, agent_token: str, written: str, digits: str
) -> None:
    response = client.post(
        "/api/v1/requests",
        json={"question": f"{QUESTION} Gegevens: {written}, graag snel."},
        headers=bearer(agent_token),
    )

    assert response.status_code == 202
    assert "[BSN]" in body(response)["question"]
    assert not leaks(response.get_data(as_text=True), digits)
    assert not leaks(stored_text(app), digits)


def test_cancel_reason_clarification_and_rating_comment_are_redacted(
    app: Flask,
    client: FlaskClient,
    agent_token: str,
    deliver: Callable[..., Any],
    routed_data: Callable[..., dict[str, Any]],
) -> None:
    def file() -> str:
        response = client.post(
            "/api/v1/requests", json={"question": QUESTION}, headers=bearer(agent_token)
        )
        return str(body(response)["id"])

    seen: list[str] = []
    cancelled = file()
    response = client.post(
        f"/api/v1/requests/{cancelled}/cancel",
        json={"reason": ALL_FORMATS},
        headers=bearer(agent_token),
    )
    assert response.status_code == 200
    seen.append(response.get_data(as_text=True))

    clarified = file()
    deliver(clarified, "routed", **routed_data("burgerzaken"))
    deliver(clarified, "clarification_requested", department="burgerzaken", text="Welk nummer?")
    response = client.post(
        f"/api/v1/requests/{clarified}/clarification",
        json={"text": ALL_FORMATS},
        headers=bearer(agent_token),
    )
    assert response.status_code == 200
    seen.append(response.get_data(as_text=True))

    rated = file()
    deliver(rated, "routed", **routed_data("burgerzaken"))
    deliver(rated, "answered", department="burgerzaken", staff_id="staff-eva", answer="Klaar.")
    response = client.post(
        f"/api/v1/requests/{rated}/rating",
        json={"score": 1, "comment": ALL_FORMATS, "reopen": True},
        headers=bearer(agent_token),
    )
    assert response.status_code == 200
    seen.append(response.get_data(as_text=True))

    assert all(text.count("[BSN]") >= len(FORMATS) for text in seen)
    assert leaked("".join(seen)) == []
    assert leaked(stored_text(app)) == []


def test_text_from_other_services_is_redacted_on_the_way_in(
    app: Flask,
    client: FlaskClient,
    agent_token: str,
    deliver: Callable[..., Any],
    routed_data: Callable[..., dict[str, Any]],
) -> None:
    request_id = body(
        client.post("/api/v1/requests", json={"question": QUESTION}, headers=bearer(agent_token))
    )["id"]
    deliver(request_id, "routed", **routed_data("burgerzaken"))
    deliver(request_id, "clarification_requested", department="burgerzaken", text=ALL_FORMATS)
    deliver(request_id, "answered", department="burgerzaken", staff_id="s", answer=ALL_FORMATS)

    seen = client.get(f"/api/v1/requests/{request_id}", headers=bearer(agent_token))

    assert leaked(seen.get_data(as_text=True)) == []
    assert leaked(stored_text(app)) == []


# -- the Idempotency-Key ----------------------------------------------------------------------


def stored_keys(app: Flask) -> list[str | None]:
    engine = app.extensions["kcc.intake"].store.engine
    with engine.connect() as connection:
        return list(connection.execute(select(requests_table.c.idempotency_key)).scalars())


def test_the_idempotency_key_is_stored_as_its_sha256(
    app: Flask, client: FlaskClient, agent_token: str
) -> None:
    key = f"retry-{uuid.uuid4()}"
    first = client.post(
        "/api/v1/requests",
        json={"question": QUESTION},
        headers=bearer(agent_token, **{"Idempotency-Key": key}),
    )
    again = client.post(
        "/api/v1/requests",
        json={"question": QUESTION},
        headers=bearer(agent_token, **{"Idempotency-Key": key}),
    )

    assert stored_keys(app) == [hashlib.sha256(key.encode()).hexdigest()]
    assert key not in stored_text(app)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert body(again)["id"] == body(first)["id"]
    assert key not in again.get_data(as_text=True) + str(again.headers)


def test_a_key_stored_before_hashing_still_finds_its_request(
    app: Flask, client: FlaskClient, agent_token: str
) -> None:
    key = str(uuid.uuid4())
    headers = bearer(agent_token, **{"Idempotency-Key": key})
    first = client.post("/api/v1/requests", json={"question": QUESTION}, headers=headers)
    engine = app.extensions["kcc.intake"].store.engine
    with engine.begin() as connection:  # as an older version stored it
        connection.execute(update(requests_table).values(idempotency_key=key))

    again = client.post("/api/v1/requests", json={"question": QUESTION}, headers=headers)

    assert again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert body(again)["id"] == body(first)["id"]


@pytest.mark.parametrize("key", ["bsn-123456782", "klant.111222333.1", "req_12345611"])
def test_an_idempotency_key_holding_a_bsn_is_refused(
    client: FlaskClient,
    agent_token: str,
    row_counts: Callable[[], dict[str, int]],
    key: str,
) -> None:
    before = row_counts()
    response = client.post(
        "/api/v1/requests",
        json={"question": QUESTION},
        headers=bearer(agent_token, **{"Idempotency-Key": key}),
    )

    assert response.status_code == 400
    assert list(body(response)["errors"]) == ["Idempotency-Key"]
    assert leaked(response.get_data(as_text=True)) == []
    assert row_counts() == before


# -- the desk page ------------------------------------------------------------------------------


@pytest.fixture
def desk_app(sqlite_url: str) -> Iterator[Flask]:
    app = create_app(
        Config(
            database_url=sqlite_url,
            broker_url="memory://",
            outbox_relay=False,
            secret_key="test-secret-key-of-enough-length",
            session_cookie_secure=False,
        )
    )
    yield app
    app.extensions["kcc.intake"].feed.stop()
    app.extensions["kcc.intake"].store.engine.dispose()


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def test_a_refused_form_is_shown_again_without_the_bsn(desk_app: Flask) -> None:
    client = desk_app.test_client()
    token, _ = desk_app.extensions[TOKENS_EXTENSION].create(
        role="agent", user_id="agent-anna", team="kcc-noord"
    )
    csrf = _csrf(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"token": token, "csrf_token": csrf, "next": "/balie"})
    csrf = _csrf(client.get("/balie").get_data(as_text=True))

    response = client.post(
        "/balie/vragen",
        data={
            "csrf_token": csrf,
            "question": f"{QUESTION} {ALL_FORMATS}",
            "citizen_ref": "123.456.782",
            "idempotency_key": "BSN 999993653",
        },
    )

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "nooit een BSN" in page  # the citizen_ref hint
    assert "[BSN]" in page
    assert leaked(page) == []
    assert leaked(str(response.headers)) == []
