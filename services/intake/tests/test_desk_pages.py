"""The agent desk (/balie): log in, file, follow, answer a question, rate; CSRF on every form."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.app import create_app
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config

QUESTION = "Mevrouw wil weten of ze kwijtschelding van de afvalstoffenheffing kan krijgen."


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Flask]:
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


def login(
    client: FlaskClient, app: Flask, user: str = "agent-anna", team: str = "kcc-noord"
) -> str:
    token, _ = app.extensions[TOKENS_EXTENSION].create(role="agent", user_id=user, team=team)
    page = client.get("/login").get_data(as_text=True)
    csrf = csrf_of(page)
    response = client.post("/login", data={"token": token, "csrf_token": csrf, "next": "/balie"})
    assert response.status_code == 302, response.get_data(as_text=True)
    return csrf_of(client.get("/balie").get_data(as_text=True))


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def test_the_desk_needs_a_login(client: FlaskClient) -> None:
    response = client.get("/balie")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_staff_cannot_use_the_agent_desk(app: Flask, client: FlaskClient) -> None:
    token, _ = app.extensions[TOKENS_EXTENSION].create(
        role="staff", user_id="staff-eva", departments=["belastingen"]
    )
    csrf = csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"token": token, "csrf_token": csrf})
    assert response.status_code == 403


def test_file_follow_clarify_and_rate_on_the_page(
    app: Flask,
    client: FlaskClient,
    deliver: Callable[..., Any],
    routed_data: Callable[..., dict[str, Any]],
) -> None:
    csrf = login(client, app)
    desk = client.get("/balie").get_data(as_text=True)
    assert "Mijn vragen" in desk
    assert 'lang="nl"' in desk
    # "Nieuwe vraag" on every desk page: the form is one step away.
    assert 'href="/balie/nieuw"' in desk
    form_page = client.get("/balie/nieuw").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', form_page)
    assert key

    form = {
        "csrf_token": csrf,
        "idempotency_key": key.group(1),
        "question": QUESTION,
        "priority": "normal",
        "channel": "phone",
        "category": "",
    }
    filed = client.post("/balie/vragen", data=form)
    assert filed.status_code == 302
    detail_url = filed.headers["Location"]
    # A resent form (double click) files once.
    assert client.post("/balie/vragen", data=form).headers["Location"] == detail_url
    request_id = detail_url.rsplit("/", 1)[1]
    assert QUESTION in client.get("/balie").get_data(as_text=True)

    deliver(request_id, "routed", **routed_data("belastingen"))
    deliver(request_id, "claimed", department="belastingen", staff_id="staff-eva")
    deliver(
        request_id,
        "clarification_requested",
        department="belastingen",
        text="Heeft mevrouw een uitkering?",
    )
    page = client.get(detail_url).get_data(as_text=True)
    assert "De afdeling wacht op het KCC" in page
    assert "Heeft mevrouw een uitkering?" in page

    answered = client.post(
        f"{detail_url}/verduidelijking", data={"csrf_token": csrf, "text": "Ja, bijstand."}
    )
    assert answered.status_code == 303
    assert "Je antwoord is naar de afdeling gestuurd." in client.get(detail_url).get_data(
        as_text=True
    )

    deliver(
        request_id,
        "answered",
        department="belastingen",
        staff_id="staff-eva",
        answer="Ja, vraag kwijtschelding aan via het formulier.",
    )
    page = client.get(detail_url).get_data(as_text=True)
    assert "Beoordeel het antwoord" in page
    assert "Ja, vraag kwijtschelding aan via het formulier." in page

    rated = client.post(
        f"{detail_url}/beoordeling", data={"csrf_token": csrf, "score": "5", "thanks": "ja"}
    )
    assert rated.status_code == 303
    page = client.get(detail_url).get_data(as_text=True)
    assert "Dank voor je beoordeling en je bedankje!" in page
    assert "Afgesloten" in page
    again = client.post(f"{detail_url}/beoordeling", data={"csrf_token": csrf, "score": "4"})
    assert "Deze vraag is al beoordeeld." in client.get(again.headers["Location"]).get_data(
        as_text=True
    )


def test_a_bad_question_shows_dutch_field_errors_and_files_nothing(
    app: Flask, client: FlaskClient
) -> None:
    csrf = login(client, app)
    response = client.post(
        "/balie/vragen", data={"csrf_token": csrf, "question": "kort", "citizen_ref": "123456782"}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Beschrijf de vraag in 10 tot 4000 tekens." in page
    assert "Je hebt nog geen vragen gesteld." in client.get("/balie").get_data(as_text=True)


def test_forms_without_csrf_are_refused(app: Flask, client: FlaskClient) -> None:
    login(client, app)
    response = client.post("/balie/vragen", data={"question": QUESTION})
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_another_agents_request_is_404_on_the_page(app: Flask, client: FlaskClient) -> None:
    csrf = login(client, app)
    filed = client.post("/balie/vragen", data={"csrf_token": csrf, "question": QUESTION})
    url = filed.headers["Location"]
    other = app.test_client()
    login(other, app, user="agent-chris", team="kcc-zuid")
    response = other.get(url)
    assert response.status_code == 404
    # A page in Dutch with a way back, not the API's problem+json; nothing of the question,
    # and nothing that tells it exists.
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Niet gevonden" in page
    assert "Naar Mijn vragen" in page
    assert QUESTION not in page


def test_the_page_stream_uses_the_session(app: Flask, client: FlaskClient) -> None:
    assert client.get("/balie/stream").status_code == 302
    login(client, app)
    feed = app.extensions["kcc.intake"].feed
    feed.max_seconds = 0.2
    response = client.get("/balie/stream", buffered=False)
    assert response.mimetype == "text/event-stream"
    assert response.get_data().startswith(b"retry: ")
    response.close()
