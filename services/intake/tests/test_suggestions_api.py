"""Reusable answers for desktop clients: what is suggested (and what never is), counting a use
once, bad input, roles and privacy.

The back office's "herbruikbaar" tick is built later; these tests feed the events it will
publish (`request.answered` with `reusable`, `request.reuse_changed`) to the intake exactly as
its consumer applies them (the `deliver` pattern of conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.knowledge import reusable_answers
from intake.store import outbox
from intake.suggestions import Suggestions
from kcc_shared.db import write
from kcc_shared.dutch_time import LOCAL
from kcc_shared.events import Actor, Event, new_event, parse_event
from kcc_shared.organisation import load_organisation
from prometheus_client import REGISTRY
from sqlalchemy import select
from werkzeug.test import TestResponse

CONTAINER_Q = "Meneer zegt dat zijn grijze container vanochtend niet is geleegd in de Dorpsstraat."
CONTAINER_A = (
    "Is de container niet geleegd op de ophaaldag? Meld het via de afvalapp of het "
    "webformulier; de inzamelaar komt binnen twee werkdagen alsnog langs."
)
WOZ_Q = "Mevrouw wil bezwaar maken tegen de WOZ-waarde van haar woning. Welke termijn geldt?"
WOZ_A = "Bezwaar kan binnen zes weken na de dagtekening van de aanslag, digitaal of per brief."
TYPED = "Inwoner belt: de vuilcontainer is vandaag niet geleegd, wat moet hij doen?"

Deliver = Callable[..., Event]


def js(response: TestResponse) -> Any:
    """The JSON body (mypy: a response without one fails here, plainly)."""
    assert response.json is not None, response.get_data(as_text=True)
    return response.json


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def file(client: FlaskClient, agent_token: str) -> Callable[..., str]:
    def make(question: str, category: str | None = None) -> str:
        body: dict[str, Any] = {"question": question}
        if category:
            body["category"] = category
        response = client.post("/api/v1/requests", json=body, headers=bearer(agent_token))
        assert response.status_code == 202, response.json
        return str(js(response)["id"])

    return make


@pytest.fixture
def event_to(app: Flask) -> Deliver:
    """Apply one event as the consumer does, at a chosen moment (default: now)."""
    store = app.extensions["kcc.intake"].store

    def apply(request_id: str, type_: str, *, at: datetime | None = None, **data: Any) -> Event:
        event = new_event(
            f"request.{type_}",
            request_id=request_id,
            actor=Actor("staff", "staff-eva"),
            occurred_at=at,
            data=data,
        )
        with write(store.engine) as connection:
            store.apply_events(connection, [event])
        return event

    return apply


@pytest.fixture
def answered(file: Callable[..., str], event_to: Deliver) -> Callable[..., str]:
    """A filed question answered by a department, reusable or not."""

    def make(
        question: str,
        answer: str,
        *,
        department: str = "afval",
        category: str | None = "afval",
        reusable: bool = True,
        at: datetime | None = None,
    ) -> str:
        request_id = file(question, category)
        event_to(
            request_id,
            "answered",
            at=at,
            department=department,
            staff_id="staff-eva",
            answer=answer,
            reusable=reusable,
        )
        return request_id

    return make


def suggest(client: FlaskClient, token: str, q: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/suggestions", query_string={"q": q}, headers=bearer(token))
    assert response.status_code == 200, response.json
    return list(js(response)["suggestions"])


def outbox_events(app: Flask, type_: str) -> list[dict[str, Any]]:
    engine = app.extensions["kcc.intake"].store.engine
    with engine.connect() as connection:
        rows = connection.execute(select(outbox.c.body).order_by(outbox.c.seq)).scalars().all()
    return [b for b in (json.loads(r) for r in rows) if b["type"] == type_]


# -- what is suggested ----------------------------------------------------------------------


def test_a_reusable_answer_is_suggested_for_a_similar_question(
    client: FlaskClient, agent_token: str, answered: Callable[..., str]
) -> None:
    container = answered(CONTAINER_Q, CONTAINER_A)
    answered(WOZ_Q, WOZ_A, department="belastingen", category="belastingen")

    found = suggest(client, agent_token, TYPED)

    assert found[0]["request_id"] == container
    assert found[0]["question"] == CONTAINER_Q
    assert found[0]["answer"] == CONTAINER_A
    assert found[0]["department"] == {"id": "afval", "name": "Afvalinzameling"}
    assert found[0]["answered_on"] == datetime.now(LOCAL).date().isoformat()
    assert 0.82 <= found[0]["score"] <= 1
    assert len(found) <= 3
    assert [s["score"] for s in found] == sorted((s["score"] for s in found), reverse=True)


def test_an_answer_not_marked_reusable_is_never_suggested(
    client: FlaskClient, agent_token: str, answered: Callable[..., str], app: Flask
) -> None:
    answered(CONTAINER_Q, CONTAINER_A, reusable=False)

    assert suggest(client, agent_token, TYPED) == []
    with app.extensions["kcc.intake"].store.engine.connect() as connection:
        assert connection.execute(select(reusable_answers)).all() == []


def test_withdrawn_answer_disappears_and_marking_it_again_brings_it_back(
    client: FlaskClient, agent_token: str, answered: Callable[..., str], event_to: Deliver
) -> None:
    container = answered(CONTAINER_Q, CONTAINER_A)
    assert [s["request_id"] for s in suggest(client, agent_token, TYPED)] == [container]

    event_to(container, "reuse_changed", department="afval", staff_id="staff-eva", reusable=False)
    assert suggest(client, agent_token, TYPED) == []

    event_to(container, "reuse_changed", department="afval", staff_id="staff-eva", reusable=True)
    assert [s["request_id"] for s in suggest(client, agent_token, TYPED)] == [container]


def test_an_answer_marked_reusable_afterwards_is_suggested(
    client: FlaskClient, agent_token: str, answered: Callable[..., str], event_to: Deliver
) -> None:
    container = answered(CONTAINER_Q, CONTAINER_A, reusable=False)
    event_to(container, "reuse_changed", department="afval", staff_id="staff-eva", reusable=True)

    found = suggest(client, agent_token, TYPED)

    assert [s["request_id"] for s in found] == [container]
    assert found[0]["answer"] == CONTAINER_A


def test_a_late_older_event_does_not_undo_a_withdrawal(
    client: FlaskClient,
    agent_token: str,
    file: Callable[..., str],
    event_to: Deliver,
) -> None:
    now = datetime.now(UTC)
    container = file(CONTAINER_Q, "afval")
    event_to(
        container,
        "reuse_changed",
        at=now,
        department="afval",
        staff_id="staff-eva",
        reusable=False,
    )
    # The answer it withdrew arrives after the withdrawal (another queue, a redelivery).
    event_to(
        container,
        "answered",
        at=now - timedelta(minutes=5),
        department="afval",
        staff_id="staff-eva",
        answer=CONTAINER_A,
        reusable=True,
    )

    assert suggest(client, agent_token, TYPED) == []


def test_a_redelivered_answer_is_kept_once(
    client: FlaskClient, agent_token: str, app: Flask, file: Callable[..., str]
) -> None:
    store = app.extensions["kcc.intake"].store
    container = file(CONTAINER_Q, "afval")
    event = new_event(
        "request.answered",
        request_id=container,
        actor=Actor("staff", "staff-eva"),
        data={
            "department": "afval",
            "staff_id": "staff-eva",
            "answer": CONTAINER_A,
            "reusable": True,
        },
    )
    for _ in range(2):
        with write(store.engine) as connection:
            store.apply_events(connection, [event])

    assert [s["request_id"] for s in suggest(client, agent_token, TYPED)] == [container]
    with store.engine.connect() as connection:
        assert len(connection.execute(select(reusable_answers)).all()) == 1


def test_an_answer_past_its_departments_shelf_life_is_not_suggested(
    client: FlaskClient, agent_token: str, answered: Callable[..., str]
) -> None:
    # Afvalinzameling keeps the default shelf life of 365 days.
    answered(CONTAINER_Q, CONTAINER_A, at=datetime.now(UTC) - timedelta(days=366))
    recent = answered(
        CONTAINER_Q + " Nu de oranje.", CONTAINER_A, at=datetime.now(UTC) - timedelta(days=300)
    )

    assert [s["request_id"] for s in suggest(client, agent_token, TYPED)] == [recent]


def test_an_indexed_answer_leaves_when_its_shelf_life_ends(
    app: Flask, answered: Callable[..., str]
) -> None:
    context = app.extensions["kcc.intake"]
    container = answered(CONTAINER_Q, CONTAINER_A, at=datetime.now(UTC) - timedelta(days=360))
    now = [datetime.now(UTC)]
    suggestions = Suggestions(
        context.store.engine, load_organisation(), context.store.outbox, lambda: now[0]
    )

    assert [s.request_id for s in suggestions.search(TYPED)] == [container]
    assert len(suggestions) == 1

    now[0] += timedelta(days=6)
    assert suggestions.search(TYPED) == []
    assert len(suggestions) == 0


# -- counting a use -------------------------------------------------------------------------


def reused_count(department: str, category: str) -> float:
    value = REGISTRY.get_sample_value(
        "kcc_answers_reused_total", {"department": department, "category": category}
    )
    return value or 0.0


def test_using_an_answer_is_counted_and_published_once_per_key(
    client: FlaskClient, agent_token: str, app: Flask, answered: Callable[..., str]
) -> None:
    container = answered(CONTAINER_Q, CONTAINER_A)
    before = reused_count("afval", "afval")
    headers = {**bearer(agent_token), "Idempotency-Key": "9b1f0c2e-use-1"}

    first = client.post(f"/api/v1/suggestions/{container}/used", headers=headers)
    again = client.post(f"/api/v1/suggestions/{container}/used", headers=headers)

    assert first.status_code == 201, first.json
    assert js(first)["request_id"] == container
    assert js(first)["department"] == {"id": "afval", "name": "Afvalinzameling"}
    assert "Idempotent-Replayed" not in first.headers
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    assert reused_count("afval", "afval") == before + 1
    [event] = outbox_events(app, "request.answer_reused")
    assert event["request_id"] == container
    assert event["actor"] == {"kind": "agent", "id": "agent-anna"}
    assert event["data"] == {"department": "afval", "agent_id": "agent-anna", "team": "kcc-noord"}


def test_the_use_coming_back_changes_no_timeline(
    client: FlaskClient, agent_token: str, app: Flask, answered: Callable[..., str]
) -> None:
    store = app.extensions["kcc.intake"].store
    container = answered(CONTAINER_Q, CONTAINER_A)
    client.post(f"/api/v1/suggestions/{container}/used", headers=bearer(agent_token))
    [body] = outbox_events(app, "request.answer_reused")
    before = js(client.get(f"/api/v1/requests/{container}", headers=bearer(agent_token)))

    event = parse_event(body)
    with write(store.engine) as connection:
        outcomes = store.apply_events(connection, [event])

    after = js(client.get(f"/api/v1/requests/{container}", headers=bearer(agent_token)))
    assert outcomes == {event.id: "recorded"}
    assert after["timeline"] == before["timeline"]


def test_a_key_used_for_another_answer_is_refused(
    client: FlaskClient, agent_token: str, app: Flask, answered: Callable[..., str]
) -> None:
    container = answered(CONTAINER_Q, CONTAINER_A)
    woz = answered(WOZ_Q, WOZ_A, department="belastingen", category="belastingen")
    headers = {**bearer(agent_token), "Idempotency-Key": "same-key-twice"}
    assert client.post(f"/api/v1/suggestions/{container}/used", headers=headers).status_code == 201

    response = client.post(f"/api/v1/suggestions/{woz}/used", headers=headers)

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert len(outbox_events(app, "request.answer_reused")) == 1


def test_an_unknown_withdrawn_or_unreusable_answer_cannot_be_used(
    client: FlaskClient,
    agent_token: str,
    app: Flask,
    answered: Callable[..., str],
    event_to: Deliver,
) -> None:
    withdrawn = answered(CONTAINER_Q, CONTAINER_A)
    event_to(withdrawn, "reuse_changed", department="afval", staff_id="staff-eva", reusable=False)
    private = answered(WOZ_Q, WOZ_A, department="belastingen", reusable=False)
    unknown = "0b6c3f0e-8a8e-4a57-9d53-5f6f2b7c1d11"

    for request_id in (withdrawn, private, unknown):
        response = client.post(
            f"/api/v1/suggestions/{request_id}/used", headers=bearer(agent_token)
        )
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"
        assert "reuse" in js(response)["detail"]
    assert outbox_events(app, "request.answer_reused") == []


# -- who may ask, and bad input -------------------------------------------------------------


def test_staff_and_anonymous_callers_are_refused(
    client: FlaskClient, staff_token: str, ops_token: str, answered: Callable[..., str]
) -> None:
    container = answered(CONTAINER_Q, CONTAINER_A)
    for token in (staff_token, ops_token):
        assert (
            client.get(
                "/api/v1/suggestions", query_string={"q": TYPED}, headers=bearer(token)
            ).status_code
            == 403
        )
        assert (
            client.post(f"/api/v1/suggestions/{container}/used", headers=bearer(token)).status_code
            == 403
        )
    assert client.get("/api/v1/suggestions", query_string={"q": TYPED}).status_code == 401


TOO_SHORT_OR_LONG = (
    "Send the question as typed so far, 10 to 4000 characters: shorter says too little to "
    "find a similar one, longer is not a question."
)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param({}, "Send the question as typed so far in q.", id="missing"),
        pytest.param({"q": "container"}, TOO_SHORT_OR_LONG, id="short"),
        pytest.param({"q": "x" * 4001}, TOO_SHORT_OR_LONG, id="long"),
        pytest.param({"q": TYPED, "limit": "9"}, "Unknown field.", id="unknown-parameter"),
    ],
)
def test_a_bad_query_is_a_clear_problem(
    client: FlaskClient, agent_token: str, query: dict[str, str], message: str
) -> None:
    response = client.get("/api/v1/suggestions", query_string=query, headers=bearer(agent_token))

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    field = "limit" if "limit" in query else "q"
    assert js(response)["errors"][field] == [message]


def test_a_bad_idempotency_key_is_refused_and_counts_nothing(
    client: FlaskClient, agent_token: str, app: Flask, answered: Callable[..., str]
) -> None:
    container = answered(CONTAINER_Q, CONTAINER_A)

    response = client.post(
        f"/api/v1/suggestions/{container}/used",
        headers={**bearer(agent_token), "Idempotency-Key": "BSN 123456782"},
    )

    assert response.status_code == 400
    assert "Idempotency-Key" in js(response)["errors"]
    assert outbox_events(app, "request.answer_reused") == []


# -- privacy --------------------------------------------------------------------------------


def test_no_citizen_service_number_is_kept_or_suggested(
    client: FlaskClient, agent_token: str, app: Flask, answered: Callable[..., str]
) -> None:
    # The question is redacted when filed; an answer from a careless department is redacted
    # when it arrives.
    answered(
        CONTAINER_Q + " BSN 123456782.",
        CONTAINER_A + " Voor de burger met BSN 111222333 is een nieuwe bak besteld.",
    )

    found = suggest(client, agent_token, TYPED + " Zijn BSN is 999993653.")

    assert "[BSN]" in found[0]["question"]
    assert "[BSN]" in found[0]["answer"]
    text = json.dumps(found)
    with app.extensions["kcc.intake"].store.engine.connect() as connection:
        row = connection.execute(select(reusable_answers)).one()
    stored = " ".join(str(v) for k, v in row._mapping.items() if k != "vector")
    for digits in ("123456782", "111222333", "999993653"):
        assert digits not in text
        assert digits not in stored
