"""The desk's "Eerder beantwoord" without script: search from the new-question form, confirm
"Hiermee is de vraag beantwoord", counted once; bad input and withdrawn answers change
nothing. (desk.js asks the same page while the KCC-medewerker types: tests/browser.)"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.app import create_app
from intake.store import outbox, requests_table
from intake.view import NewRequest
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.auth import Principal
from kcc_shared.config import Config
from kcc_shared.db import write
from kcc_shared.events import Actor, new_event
from sqlalchemy import func, select

CONTAINER_Q = "Meneer zegt dat zijn grijze container vanochtend niet is geleegd in de Dorpsstraat."
CONTAINER_A = (
    "Is de container niet geleegd op de ophaaldag? Meld het via de afvalapp of het "
    "webformulier; de inzamelaar komt binnen twee werkdagen alsnog langs."
)
TYPED = "Inwoner belt: de vuilcontainer is vandaag niet geleegd, wat moet hij doen?"


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


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture
def csrf(app: Flask, client: FlaskClient) -> str:
    token, _ = app.extensions[TOKENS_EXTENSION].create(
        role="agent", user_id="agent-anna", team="kcc-noord"
    )
    csrf = csrf_of(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"token": token, "csrf_token": csrf, "next": "/balie"})
    assert response.status_code == 302
    return csrf_of(client.get("/balie/nieuw").get_data(as_text=True))


@pytest.fixture
def reusable(app: Flask) -> str:
    """A question another KCC-medewerker filed, answered by Afvalinzameling as reusable."""
    store = app.extensions["kcc.intake"].store
    filed = store.submit(
        Principal("agent-bram", "agent", team="kcc-zuid"),
        NewRequest(CONTAINER_Q, "afval", "normal", "phone", None),
    )
    event = new_event(
        "request.answered",
        request_id=filed.request.id,
        actor=Actor("staff", "staff-eva"),
        data={
            "department": "afval",
            "staff_id": "staff-eva",
            "answer": CONTAINER_A,
            "reusable": True,
        },
    )
    with write(store.engine) as connection:
        store.apply_events(connection, [event])
    return str(filed.request.id)


def counts(app: Flask) -> tuple[int, int]:
    """Requests filed, and uses of an answer published."""
    with app.extensions["kcc.intake"].store.engine.connect() as connection:
        filed = connection.execute(select(func.count()).select_from(requests_table)).scalar_one()
        bodies = connection.execute(select(outbox.c.body)).scalars().all()
    used = sum(1 for b in bodies if json.loads(b)["type"] == "request.answer_reused")
    return int(filed), used


def form(csrf: str, question: str = TYPED, **extra: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "question": question,
        "category": "",
        "priority": "normal",
        "channel": "phone",
        "citizen_ref": "",
        "idempotency_key": "6f1c7a52-3c59-4d1e-9d7e-0a4a8e1f2b33",
        **extra,
    }


def test_the_form_has_a_search_button_for_use_without_script(
    client: FlaskClient, csrf: str
) -> None:
    page = client.get("/balie/nieuw").get_data(as_text=True)

    assert "Zoek eerdere antwoorden" in page
    assert 'formaction="/balie/nieuw/eerdere-antwoorden"' in page
    assert 'id="eerder-aantal"' in page
    assert 'aria-live="polite"' in page


def test_search_shows_the_similar_answer_with_department_and_date(
    client: FlaskClient, csrf: str, reusable: str
) -> None:
    response = client.post("/balie/nieuw/eerdere-antwoorden", data=form(csrf))
    page = response.get_data(as_text=True)

    assert response.status_code == 200
    assert "Eerder beantwoord" in page
    assert "Lijkt op:" in page
    assert CONTAINER_Q in page
    assert CONTAINER_A in page
    assert "Antwoord van Afvalinzameling" in page
    assert "1 eerder beantwoorde vraag gevonden die hierop lijkt." in page
    assert f'name="antwoord" value="{reusable}"' in page
    # What was typed stays in the form.
    assert TYPED in page


def test_nothing_similar_says_so(client: FlaskClient, csrf: str) -> None:
    page = client.post("/balie/nieuw/eerdere-antwoorden", data=form(csrf)).get_data(as_text=True)

    assert "Geen eerder beantwoorde vraag gevonden die hierop lijkt." in page


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("container", "Typ minstens 10 tekens van de vraag om eerdere antwoorden te zoeken."),
        ("x" * 4001, "Een vraag heeft hoogstens 4000 tekens; kort hem in om te zoeken."),
    ],
)
def test_a_search_with_too_little_or_too_much_text_says_why(
    client: FlaskClient, csrf: str, question: str, message: str
) -> None:
    response = client.post("/balie/nieuw/eerdere-antwoorden", data=form(csrf, question))

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Er is niet gezocht" in page
    assert message in page


def test_confirm_then_counted_once_and_the_form_is_empty(
    app: Flask, client: FlaskClient, csrf: str, reusable: str
) -> None:
    before = counts(app)

    confirm = client.post("/balie/nieuw/beantwoord", data=form(csrf, antwoord=reusable))
    page = confirm.get_data(as_text=True)
    assert confirm.status_code == 200
    assert "Is de vraag hiermee beantwoord?" in page
    assert TYPED in page
    assert CONTAINER_A in page
    assert counts(app) == before  # nothing counted before the confirmation

    done = client.post(
        "/balie/nieuw/beantwoord", data=form(csrf, antwoord=reusable, bevestigd="ja")
    )
    assert done.status_code == 303
    assert done.headers["Location"].endswith("/balie/nieuw")
    fresh = client.get("/balie/nieuw").get_data(as_text=True)
    assert "Geteld: beantwoord zonder doorzetten, met het antwoord van Afvalinzameling." in fresh
    assert TYPED not in fresh
    # A second click (the same form) counts nothing more, and no question was filed.
    client.post("/balie/nieuw/beantwoord", data=form(csrf, antwoord=reusable, bevestigd="ja"))
    assert counts(app) == (before[0], before[1] + 1)


def test_a_withdrawn_answer_counts_nothing_and_keeps_the_question(
    app: Flask, client: FlaskClient, csrf: str, reusable: str
) -> None:
    store = app.extensions["kcc.intake"].store
    event = new_event(
        "request.reuse_changed",
        request_id=reusable,
        actor=Actor("staff", "staff-eva"),
        data={"department": "afval", "staff_id": "staff-eva", "reusable": False},
    )
    with write(store.engine) as connection:
        store.apply_events(connection, [event])
    before = counts(app)

    for answer in (reusable, str(uuid.uuid4()), "geen-id"):
        response = client.post(
            "/balie/nieuw/beantwoord", data=form(csrf, antwoord=answer, bevestigd="ja")
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 404
        assert "Er is niets geteld; je vraag staat er nog." in page
        assert TYPED in page
    assert counts(app) == before


def test_the_search_needs_the_forms_csrf_token(
    client: FlaskClient, csrf: str, reusable: str
) -> None:
    response = client.post(
        "/balie/nieuw/eerdere-antwoorden", data={**form(csrf), "csrf_token": "fout"}
    )

    assert response.status_code in (400, 403)
    assert CONTAINER_A not in response.get_data(as_text=True)
