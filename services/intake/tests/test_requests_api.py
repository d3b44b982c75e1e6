"""Agents file, follow and cancel questions; bad input changes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.store import outbox, requests_table
from sqlalchemy import select

QUESTION = (
    "Paspoort verlopen, meneer vertrekt over tien dagen naar Turkije. Kan er een spoedaanvraag?"
)


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def submit(
    client: FlaskClient, token: str, headers: dict[str, str] | None = None, **body: Any
) -> Any:
    payload = {"question": QUESTION, **body}
    return client.post(
        "/api/v1/requests", json=payload, headers={**bearer(token), **(headers or {})}
    )


def outbox_events(app: Flask) -> list[dict[str, Any]]:
    engine = app.extensions["kcc.intake"].store.engine
    with engine.connect() as connection:
        rows = connection.execute(select(outbox.c.body).order_by(outbox.c.seq)).scalars().all()
    return [json.loads(r) for r in rows]


# -- filing -------------------------------------------------------------------------------


def test_filing_a_question_answers_202_with_id_and_link(
    app: Flask, client: FlaskClient, agent_token: str
) -> None:
    response = submit(client, agent_token, priority="high", channel="chat", tags=["spoed"])

    assert response.status_code == 202
    body = response.get_json()
    uuid.UUID(body["id"])
    assert body["status"] == "submitted"
    assert body["priority"] == "high"
    assert body["channel"] == "chat"
    assert body["agent_id"] == "agent-anna"
    assert body["team"] == "kcc-noord"
    assert body["links"]["self"] == f"/api/v1/requests/{body['id']}"
    assert response.headers["Location"] == body["links"]["self"]
    assert [e["type"] for e in body["timeline"]] == ["request.submitted"]


def test_filing_stores_the_submitted_event_in_the_outbox(
    app: Flask, client: FlaskClient, agent_token: str
) -> None:
    body = submit(client, agent_token, category="documenten").get_json()

    [event] = outbox_events(app)
    assert event["type"] == "request.submitted"
    assert event["request_id"] == body["id"]
    assert event["schema_version"] == 1
    assert event["actor"] == {"kind": "agent", "id": "agent-anna"}
    assert event["data"]["question"] == QUESTION
    assert event["data"]["category"] == "documenten"
    assert event["data"]["priority"] == "normal"
    assert event["data"]["channel"] == "phone"
    assert event["data"]["team"] == "kcc-noord"


def test_defaults_are_normal_priority_by_phone(client: FlaskClient, agent_token: str) -> None:
    body = submit(client, agent_token).get_json()
    assert (body["priority"], body["channel"], body["category"], body["tags"]) == (
        "normal",
        "phone",
        None,
        [],
    )


# -- validation: a clear 400 per field, and nothing stored ---------------------------------

BAD_BODIES = [
    pytest.param({"question": None}, "question", id="question-null"),
    pytest.param({"question": "kort"}, "question", id="question-too-short"),
    pytest.param({"question": "x" * 4001}, "question", id="question-too-long"),
    pytest.param({"question": "          \n\t   "}, "question", id="question-blank"),
    pytest.param({"question": 42}, "question", id="question-not-text"),
    pytest.param({"priority": "asap"}, "priority", id="priority-unknown"),
    pytest.param({"channel": "fax"}, "channel", id="channel-unknown"),
    pytest.param({"category": "no-such-category"}, "category", id="category-unknown"),
    pytest.param({"tags": "spoed"}, "tags", id="tags-not-a-list"),
    pytest.param({"tags": ["t"] * 11}, "tags", id="tags-too-many"),
    pytest.param({"tags": ["x" * 41]}, "tags.0", id="tag-too-long"),
    pytest.param({"citizen_ref": "123456782"}, "citizen_ref", id="citizen-ref-is-a-bsn"),
    pytest.param({"citizen_ref": "BSN 111222333"}, "citizen_ref", id="citizen-ref-labelled-bsn"),
    pytest.param({"citizen_ref": "x" * 65}, "citizen_ref", id="citizen-ref-too-long"),
    pytest.param({"tags": ["bsn 123456782"]}, "tags", id="tag-with-bsn"),
    pytest.param({"department": "burgerzaken"}, "department", id="unknown-field"),
]


@pytest.mark.parametrize(("change", "field"), BAD_BODIES)
def test_bad_input_is_400_naming_the_field_and_stores_nothing(
    client: FlaskClient,
    agent_token: str,
    row_counts: Callable[[], dict[str, int]],
    change: dict[str, Any],
    field: str,
) -> None:
    before = row_counts()
    payload = {"question": QUESTION, **change}
    response = client.post("/api/v1/requests", json=payload, headers=bearer(agent_token))

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"], response.json
    assert response.get_json()["detail"]
    assert row_counts() == before


def test_missing_question_is_reported(client: FlaskClient, agent_token: str) -> None:
    response = client.post("/api/v1/requests", json={}, headers=bearer(agent_token))
    assert response.status_code == 400
    assert response.get_json()["errors"]["question"] == ["Missing data for required field."]


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        pytest.param("{not json", "application/json", id="broken-json"),
        pytest.param("[1, 2]", "application/json", id="json-array"),
        pytest.param("question=hallo", "application/x-www-form-urlencoded", id="form"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(
    client: FlaskClient,
    agent_token: str,
    row_counts: Callable[[], dict[str, int]],
    data: str,
    content_type: str,
) -> None:
    before = row_counts()
    response = client.post(
        "/api/v1/requests", data=data, content_type=content_type, headers=bearer(agent_token)
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert row_counts() == before


def test_an_oversized_body_is_413(client: FlaskClient, agent_token: str) -> None:
    response = client.post(
        "/api/v1/requests", json={"question": "x" * 70_000}, headers=bearer(agent_token)
    )
    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"


# -- idempotency ------------------------------------------------------------------------


def test_a_retried_post_with_the_same_key_returns_the_original(
    client: FlaskClient, agent_token: str, row_counts: Callable[[], dict[str, int]]
) -> None:
    key = str(uuid.uuid4())
    first = submit(client, agent_token, headers={"Idempotency-Key": key})
    counts = row_counts()
    again = submit(client, agent_token, headers={"Idempotency-Key": key})

    assert again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert row_counts() == counts


def test_the_same_key_with_a_different_question_is_refused(
    client: FlaskClient, agent_token: str, row_counts: Callable[[], dict[str, int]]
) -> None:
    key = str(uuid.uuid4())
    submit(client, agent_token, headers={"Idempotency-Key": key})
    counts = row_counts()
    response = submit(
        client,
        agent_token,
        headers={"Idempotency-Key": key},
        question="Een heel andere vraag over de afvalkalender van volgend jaar.",
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["detail"]
    assert row_counts() == counts


def test_keys_are_per_agent(client: FlaskClient, agent_token: str, other_agent_token: str) -> None:
    key = "shared-key-1"
    mine = submit(client, agent_token, headers={"Idempotency-Key": key}).get_json()
    theirs = submit(client, other_agent_token, headers={"Idempotency-Key": key}).get_json()
    assert mine["id"] != theirs["id"]


@pytest.mark.parametrize("key", ["", "with space", "x" * 201, "ünïcode"])
def test_a_malformed_idempotency_key_is_400(
    client: FlaskClient, agent_token: str, row_counts: Callable[[], dict[str, int]], key: str
) -> None:
    before = row_counts()
    response = submit(client, agent_token, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert row_counts() == before


# -- privacy ------------------------------------------------------------------------------


def test_citizen_service_numbers_are_redacted_before_storing(
    app: Flask, client: FlaskClient, agent_token: str, dev_rows: list[dict[str, Any]]
) -> None:
    private = [r for r in dev_rows if str(r["id"]).startswith("priv-")]
    assert private, "the dev set has priv-* rows with citizen service numbers"
    for row in private:
        body = submit(client, agent_token, question=row["question"]).get_json()
        assert "[BSN]" in body["question"]

    engine = app.extensions["kcc.intake"].store.engine
    with engine.connect() as connection:
        stored = " ".join(connection.execute(select(requests_table.c.question)).scalars())
    wire = json.dumps(outbox_events(app))
    for number in ("111222333", "123456782", "999993653"):
        assert number not in stored
        assert number not in wire
    # A phone number next to a BSN is not a BSN and stays.
    assert "06-12345678" in stored

    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'kcc_bsn_redactions_total{field="question",service="intake"}' in metrics


def test_logs_never_contain_the_question(
    client: FlaskClient, agent_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    submit(client, agent_token, question="Meneer met BSN 111222333 vraagt naar zijn paspoort.")
    logged = " ".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert "111222333" not in logged
    assert "paspoort" not in logged


# -- reading ------------------------------------------------------------------------------


def test_the_owner_reads_status_and_timeline(client: FlaskClient, agent_token: str) -> None:
    created = submit(client, agent_token).get_json()
    response = client.get(created["links"]["self"], headers=bearer(agent_token))
    assert response.status_code == 200
    assert response.get_json()["id"] == created["id"]
    assert response.get_json()["status"] == "submitted"
    assert response.get_json()["timeline"][0]["actor"] == {"kind": "agent", "id": "agent-anna"}


def test_a_teammate_and_ops_may_read_it(
    client: FlaskClient, agent_token: str, teammate_token: str, ops_token: str
) -> None:
    url = submit(client, agent_token).get_json()["links"]["self"]
    assert client.get(url, headers=bearer(teammate_token)).status_code == 200
    assert client.get(url, headers=bearer(ops_token)).status_code == 200


def test_another_agents_request_is_404(
    client: FlaskClient, agent_token: str, other_agent_token: str
) -> None:
    url = submit(client, agent_token).get_json()["links"]["self"]
    response = client.get(url, headers=bearer(other_agent_token))
    assert response.status_code == 404
    assert response.get_json()["title"] == "Request not found"
    # The same answer as for an id that does not exist at all: nothing is revealed.
    missing = client.get(f"/api/v1/requests/{uuid.uuid4()}", headers=bearer(other_agent_token))
    assert missing.json == response.get_json()


def test_a_malformed_id_is_404(client: FlaskClient, agent_token: str) -> None:
    assert client.get("/api/v1/requests/not-a-uuid", headers=bearer(agent_token)).status_code == 404


def test_listing_shows_my_requests_newest_first_with_paging(
    client: FlaskClient, agent_token: str, teammate_token: str
) -> None:
    mine = [submit(client, agent_token).get_json()["id"] for _ in range(3)]
    submit(client, teammate_token)

    url = "/api/v1/requests?page_size=2"
    page1 = client.get(url, headers=bearer(agent_token)).get_json()
    page2 = client.get(f"{url}&page=2", headers=bearer(agent_token)).get_json()

    assert page1["total"] == 3
    assert [r["id"] for r in page1["items"] + page2["items"]] == list(reversed(mine))
    team = client.get("/api/v1/requests?scope=team", headers=bearer(agent_token)).get_json()
    assert team["total"] == 4


def test_listing_filters_on_status_and_priority(client: FlaskClient, agent_token: str) -> None:
    urgent = submit(client, agent_token, priority="urgent").get_json()
    normal = submit(client, agent_token).get_json()
    client.post(normal["links"]["cancel"], json={}, headers=bearer(agent_token))

    def ids(query: str) -> list[str]:
        body = client.get(f"/api/v1/requests?{query}", headers=bearer(agent_token)).get_json()
        return [r["id"] for r in body["items"]]

    assert ids("status=cancelled") == [normal["id"]]
    assert ids("status=submitted&status=routed") == [urgent["id"]]
    assert ids("priority=urgent") == [urgent["id"]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=lost", "status.0"),
        ("priority=asap", "priority"),
        ("page=0", "page"),
        ("page_size=1000", "page_size"),
        ("scope=all", "scope"),
        ("colour=red", "colour"),
    ],
)
def test_bad_list_queries_are_400(
    client: FlaskClient, agent_token: str, query: str, field: str
) -> None:
    response = client.get(f"/api/v1/requests?{query}", headers=bearer(agent_token))
    assert response.status_code == 400
    assert field in response.get_json()["errors"], response.json


def test_ops_may_list_everything(
    client: FlaskClient, agent_token: str, other_agent_token: str, ops_token: str
) -> None:
    submit(client, agent_token)
    submit(client, other_agent_token)
    body = client.get("/api/v1/requests?scope=all", headers=bearer(ops_token)).get_json()
    assert body["total"] == 2


# -- cancelling ---------------------------------------------------------------------------


def test_cancelling_publishes_and_shows_in_the_timeline(
    app: Flask, client: FlaskClient, agent_token: str
) -> None:
    created = submit(client, agent_token).get_json()
    response = client.post(
        created["links"]["cancel"],
        json={"reason": "Burger heeft zelf al gebeld"},
        headers=bearer(agent_token),
    )
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    assert [e["type"] for e in response.get_json()["timeline"]] == [
        "request.submitted",
        "request.cancelled",
    ]
    assert [e["type"] for e in outbox_events(app)] == ["request.submitted", "request.cancelled"]


def test_cancelling_twice_is_a_conflict_and_changes_nothing(
    client: FlaskClient, agent_token: str, row_counts: Callable[[], dict[str, int]]
) -> None:
    created = submit(client, agent_token).get_json()
    client.post(created["links"]["cancel"], json={}, headers=bearer(agent_token))
    counts = row_counts()
    again = client.post(created["links"]["cancel"], json={}, headers=bearer(agent_token))
    assert again.status_code == 409
    assert "cancelled" in again.get_json()["detail"]
    assert row_counts() == counts


def test_only_the_owner_may_cancel(
    client: FlaskClient, agent_token: str, teammate_token: str, other_agent_token: str
) -> None:
    url = submit(client, agent_token).get_json()["links"]["cancel"]
    assert client.post(url, json={}, headers=bearer(teammate_token)).status_code == 403
    assert client.post(url, json={}, headers=bearer(other_agent_token)).status_code == 404


# -- authentication and roles --------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer kcc_not-a-real-token"},
        {"Authorization": "Basic YWdlbnQ6c2VjcmV0"},
        {"Authorization": "Bearer "},
    ],
)
def test_no_or_a_bad_token_is_401(
    client: FlaskClient, headers: dict[str, str], row_counts: Callable[[], dict[str, int]]
) -> None:
    before = row_counts()
    for method, url in (
        ("POST", "/api/v1/requests"),
        ("GET", "/api/v1/requests"),
        ("GET", f"/api/v1/requests/{uuid.uuid4()}"),
        ("POST", f"/api/v1/requests/{uuid.uuid4()}/cancel"),
        ("GET", "/api/v1/catalog"),
    ):
        response = client.open(url, method=method, json={"question": QUESTION}, headers=headers)
        assert response.status_code == 401, (method, url)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert row_counts() == before


def test_a_revoked_token_stops_working(app: Flask, client: FlaskClient) -> None:
    store = app.extensions["kcc.tokens"]
    token, info = store.create(role="agent", user_id="agent-fenna")
    assert client.get("/api/v1/requests", headers=bearer(token)).status_code == 200
    store.revoke(info.id)
    assert client.get("/api/v1/requests", headers=bearer(token)).status_code == 401


def test_staff_cannot_file_or_read_requests(client: FlaskClient, staff_token: str) -> None:
    assert submit(client, staff_token).status_code == 403
    assert client.get("/api/v1/requests", headers=bearer(staff_token)).status_code == 403


def test_ops_cannot_file_requests(client: FlaskClient, ops_token: str) -> None:
    assert submit(client, ops_token).status_code == 403


# -- catalog ------------------------------------------------------------------------------


def test_the_catalog_lists_categories_priorities_and_channels(
    client: FlaskClient, agent_token: str
) -> None:
    body = client.get("/api/v1/catalog", headers=bearer(agent_token)).get_json()
    assert body["priorities"] == ["urgent", "high", "normal", "low"]
    assert "phone" in body["channels"]
    categories = {c["id"]: c for c in body["categories"]}
    assert categories["documenten"]["department"] == "burgerzaken"
    assert {d["id"] for d in body["departments"]} >= {"burgerzaken", "kcc-triage"}
