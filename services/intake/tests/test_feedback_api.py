"""Agents answer clarification questions and rate answers; bad input and wrong states change
nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.store import outbox
from sqlalchemy import select

QUESTION = "Mevrouw wil bezwaar maken tegen de WOZ-waarde van haar woning. Welke termijn geldt?"
ANSWER = "Bezwaar kan binnen zes weken na de dagtekening van de aanslag, digitaal of per brief."

Deliver = Callable[..., Any]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def outbox_events(app: Flask) -> list[dict[str, Any]]:
    engine = app.extensions["kcc.intake"].store.engine
    with engine.connect() as connection:
        rows = connection.execute(select(outbox.c.body).order_by(outbox.c.seq)).scalars().all()
    return [json.loads(r) for r in rows]


@pytest.fixture
def file(client: FlaskClient, agent_token: str) -> Callable[[], str]:
    def make() -> str:
        response = client.post(
            "/api/v1/requests", json={"question": QUESTION}, headers=bearer(agent_token)
        )
        assert response.status_code == 202
        return str(response.get_json()["id"])

    return make


@pytest.fixture
def asking(
    file: Callable[[], str], deliver: Deliver, routed_data: Callable[..., dict[str, Any]]
) -> str:
    """A request whose department asked the agent a question."""
    request_id = file()
    deliver(request_id, "routed", **routed_data("belastingen"))
    deliver(request_id, "claimed", department="belastingen", staff_id="staff-eva")
    deliver(
        request_id,
        "clarification_requested",
        department="belastingen",
        text="Gaat het om de aanslag van 2025?",
    )
    return request_id


@pytest.fixture
def answered(
    file: Callable[[], str], deliver: Deliver, routed_data: Callable[..., dict[str, Any]]
) -> str:
    request_id = file()
    deliver(request_id, "routed", **routed_data("belastingen"))
    deliver(request_id, "claimed", department="belastingen", staff_id="staff-eva")
    deliver(request_id, "answered", department="belastingen", staff_id="staff-eva", answer=ANSWER)
    return request_id


# -- the view the agent reads ---------------------------------------------------------------


def test_the_agent_reads_department_question_and_answer(
    client: FlaskClient, agent_token: str, answered: str
) -> None:
    body = client.get(f"/api/v1/requests/{answered}", headers=bearer(agent_token)).get_json()
    assert (body["status"], body["department"], body["answer"]) == (
        "answered",
        "belastingen",
        ANSWER,
    )
    timeline = body["timeline"]
    assert [e["type"] for e in timeline] == [
        "request.submitted",
        "request.routed",
        "request.claimed",
        "request.answered",
    ]
    assert timeline[1]["details"]["department"] == "belastingen"
    assert set(timeline[1]["details"]) <= {
        "department",
        "priority",
        "from_department",
        "handoff_count",
        "reason",
        "first_response_due",
        "resolution_due",
        "explanation",
        "similar",
        "decider",
        "confidence",
    }
    assert timeline[3]["details"] == {
        "department": "belastingen",
        "staff_id": "staff-eva",
        "answer": ANSWER,
    }
    assert body["links"]["rating"] == f"/api/v1/requests/{answered}/rating"


def test_text_from_other_services_is_redacted_again(
    client: FlaskClient, agent_token: str, asking: str, deliver: Deliver
) -> None:
    deliver(asking, "answered", department="belastingen", staff_id="s", answer="BSN 123456782 ok")
    body = client.get(f"/api/v1/requests/{asking}", headers=bearer(agent_token)).get_json()
    assert "123456782" not in json.dumps(body)
    assert body["answer"] == "[BSN] ok"


# -- clarification ----------------------------------------------------------------------------


def test_answering_the_clarification_publishes_and_returns_to_the_asker(
    app: Flask, client: FlaskClient, agent_token: str, asking: str
) -> None:
    response = client.post(
        f"/api/v1/requests/{asking}/clarification",
        json={"text": "  Ja, de aanslag 2025; bsn 123456782.  "},
        headers=bearer(agent_token),
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "claimed"
    assert body["timeline"][-1]["type"] == "request.clarified"
    assert body["timeline"][-1]["details"] == {"text": "Ja, de aanslag 2025; [BSN]."}
    event = outbox_events(app)[-1]
    assert event["type"] == "request.clarified"
    assert event["data"] == {"text": "Ja, de aanslag 2025; [BSN]."}
    assert event["actor"] == {"kind": "agent", "id": "agent-anna"}


BAD_CLARIFICATIONS = [
    pytest.param({}, "text", id="missing"),
    pytest.param({"text": ""}, "text", id="empty"),
    pytest.param({"text": "   \n "}, "text", id="blank"),
    pytest.param({"text": 42}, "text", id="not-text"),
    pytest.param({"text": "x" * 8001}, "text", id="too-long"),
    pytest.param({"text": "ok", "extra": 1}, "extra", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CLARIFICATIONS)
def test_bad_clarifications_are_400_and_store_nothing(
    client: FlaskClient,
    agent_token: str,
    asking: str,
    row_counts: Callable[[], dict[str, int]],
    body: dict[str, Any],
    field: str,
) -> None:
    before = row_counts()
    response = client.post(
        f"/api/v1/requests/{asking}/clarification", json=body, headers=bearer(agent_token)
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert row_counts() == before


def test_a_clarification_nobody_asked_for_is_409(
    client: FlaskClient,
    agent_token: str,
    answered: str,
    row_counts: Callable[[], dict[str, int]],
) -> None:
    before = row_counts()
    response = client.post(
        f"/api/v1/requests/{answered}/clarification",
        json={"text": "Nog iets"},
        headers=bearer(agent_token),
    )
    assert response.status_code == 409
    assert response.get_json()["type"].endswith("/not-awaiting-clarification")
    assert row_counts() == before


def test_answering_twice_is_409(client: FlaskClient, agent_token: str, asking: str) -> None:
    url = f"/api/v1/requests/{asking}/clarification"
    assert client.post(url, json={"text": "Ja"}, headers=bearer(agent_token)).status_code == 200
    assert client.post(url, json={"text": "Ja"}, headers=bearer(agent_token)).status_code == 409


# -- rating -----------------------------------------------------------------------------------


def test_rating_closes_and_publishes_with_the_department(
    app: Flask, client: FlaskClient, agent_token: str, answered: str
) -> None:
    response = client.post(
        f"/api/v1/requests/{answered}/rating",
        json={"score": 5, "thanks": True, "comment": "Top, dank!"},
        headers=bearer(agent_token),
    )
    assert response.status_code == 200
    assert response.get_json()["status"] == "closed"
    assert response.get_json()["timeline"][-1]["details"] == {
        "score": 5,
        "thanks": True,
        "comment": "Top, dank!",
        "department": "belastingen",
    }
    [event] = [e for e in outbox_events(app) if e["type"] == "request.rated"]
    assert event["data"] == {
        "score": 5,
        "thanks": True,
        "comment": "Top, dank!",
        "department": "belastingen",
    }
    assert not [e for e in outbox_events(app) if e["type"] == "request.reopened"]


def test_a_rating_needs_only_a_score(client: FlaskClient, agent_token: str, answered: str) -> None:
    response = client.post(
        f"/api/v1/requests/{answered}/rating", json={"score": 3}, headers=bearer(agent_token)
    )
    assert response.status_code == 200
    assert response.get_json()["timeline"][-1]["details"] == {
        "score": 3,
        "thanks": False,
        "department": "belastingen",
    }


def test_a_low_score_with_reopen_sends_it_back_to_the_same_department(
    app: Flask, client: FlaskClient, agent_token: str, answered: str, deliver: Deliver
) -> None:
    response = client.post(
        f"/api/v1/requests/{answered}/rating",
        json={"score": 1, "reopen": True, "comment": "Termijn klopt niet, bsn 123456782"},
        headers=bearer(agent_token),
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["department"]) == ("routed", "belastingen")
    assert [e["type"] for e in body["timeline"]][-2:] == ["request.rated", "request.reopened"]
    rated, reopened = outbox_events(app)[-2:]
    assert rated["type"] == "request.rated"
    assert reopened["type"] == "request.reopened"
    assert reopened["data"] == {
        "reason": "Termijn klopt niet, [BSN]",
        "department": "belastingen",
    }
    # The department answers again: the new answer may be rated (once per answer).
    deliver(answered, "claimed", department="belastingen", staff_id="staff-eva")
    deliver(answered, "answered", department="belastingen", staff_id="staff-eva", answer="Nieuw")
    again = client.post(
        f"/api/v1/requests/{answered}/rating", json={"score": 4}, headers=bearer(agent_token)
    )
    assert again.status_code == 200
    assert again.get_json()["status"] == "closed"


def test_a_low_score_without_reopen_just_closes(
    client: FlaskClient, agent_token: str, answered: str
) -> None:
    response = client.post(
        f"/api/v1/requests/{answered}/rating",
        json={"score": 1, "comment": "Niet blij mee"},
        headers=bearer(agent_token),
    )
    assert response.get_json()["status"] == "closed"


BAD_RATINGS = [
    pytest.param({}, "score", id="score-missing"),
    pytest.param({"score": 0}, "score", id="score-zero"),
    pytest.param({"score": 6}, "score", id="score-six"),
    pytest.param({"score": "5"}, "score", id="score-as-text"),
    pytest.param({"score": 4.5}, "score", id="score-fraction"),
    pytest.param({"score": None}, "score", id="score-null"),
    pytest.param({"score": 5, "thanks": "yes"}, "thanks", id="thanks-not-boolean"),
    pytest.param({"score": 5, "thanks": 1}, "thanks", id="thanks-number"),
    pytest.param({"score": 5, "comment": ""}, "comment", id="comment-empty"),
    pytest.param({"score": 5, "comment": "  "}, "comment", id="comment-blank"),
    pytest.param({"score": 5, "comment": "x" * 1001}, "comment", id="comment-too-long"),
    pytest.param({"score": 3, "reopen": True, "comment": "mis"}, "reopen", id="reopen-score-3"),
    pytest.param({"score": 1, "reopen": True}, "comment", id="reopen-without-comment"),
    pytest.param({"score": 1, "reopen": "true", "comment": "x"}, "reopen", id="reopen-text"),
    pytest.param({"score": 5, "department": "x"}, "department", id="unknown-field"),
]


@pytest.mark.parametrize(("body", "field"), BAD_RATINGS)
def test_bad_ratings_are_400_and_store_nothing(
    client: FlaskClient,
    agent_token: str,
    answered: str,
    row_counts: Callable[[], dict[str, int]],
    body: dict[str, Any],
    field: str,
) -> None:
    before = row_counts()
    response = client.post(
        f"/api/v1/requests/{answered}/rating", json=body, headers=bearer(agent_token)
    )
    assert response.status_code == 400, response.json
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert row_counts() == before


def test_rating_twice_is_409_and_stores_nothing(
    client: FlaskClient,
    agent_token: str,
    answered: str,
    row_counts: Callable[[], dict[str, int]],
) -> None:
    url = f"/api/v1/requests/{answered}/rating"
    assert client.post(url, json={"score": 4}, headers=bearer(agent_token)).status_code == 200
    before = row_counts()
    again = client.post(url, json={"score": 5}, headers=bearer(agent_token))
    assert again.status_code == 409
    assert "already been rated" in again.get_json()["detail"]
    assert row_counts() == before


def test_rating_before_the_answer_is_409(
    client: FlaskClient, agent_token: str, asking: str, row_counts: Callable[[], dict[str, int]]
) -> None:
    before = row_counts()
    response = client.post(
        f"/api/v1/requests/{asking}/rating", json={"score": 4}, headers=bearer(agent_token)
    )
    assert response.status_code == 409
    assert "not been answered" in response.get_json()["detail"]
    assert row_counts() == before


# -- who may ----------------------------------------------------------------------------------


def test_a_teammate_answers_the_clarification_and_is_recorded_as_who_answered(
    client: FlaskClient, asking: str, teammate_token: str
) -> None:
    # The colleague who filed it went home: a teammate answers for them.
    response = client.post(
        f"/api/v1/requests/{asking}/clarification",
        json={"text": "Ja, mevrouw heeft bijstand."},
        headers=bearer(teammate_token),
    )
    assert response.status_code == 200
    assert response.json is not None
    assert response.get_json()["agent_id"] == "agent-anna"
    clarified = response.get_json()["timeline"][-1]
    assert clarified["type"] == "request.clarified"
    assert clarified["actor"] == {"kind": "agent", "id": "agent-bram"}


@pytest.mark.parametrize(
    ("action", "body"),
    [("clarification", {"text": "Ja"}), ("rating", {"score": 5})],
)
def test_only_the_owner_or_team_acts_and_others_learn_nothing(
    client: FlaskClient,
    asking: str,
    answered: str,
    teammate_token: str,
    other_agent_token: str,
    ops_token: str,
    staff_token: str,
    row_counts: Callable[[], dict[str, int]],
    action: str,
    body: dict[str, Any],
) -> None:
    request_id = asking if action == "clarification" else answered
    url = f"/api/v1/requests/{request_id}/{action}"
    before = row_counts()
    other = client.post(url, json=body, headers=bearer(other_agent_token))
    assert other.status_code == 404
    unknown = client.post(
        f"/api/v1/requests/{uuid.uuid4()}/{action}", json=body, headers=bearer(other_agent_token)
    )
    assert unknown.json == other.get_json()
    if action == "rating":
        # A clarification a teammate may answer (see above); a rating is the filer's own.
        assert client.post(url, json=body, headers=bearer(teammate_token)).status_code == 403
    assert client.post(url, json=body, headers=bearer(ops_token)).status_code == 403
    assert client.post(url, json=body, headers=bearer(staff_token)).status_code == 403
    assert client.post(url, json=body).status_code == 401
    assert row_counts() == before
