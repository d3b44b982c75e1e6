"""The staff API: who may do what, the actions and their events, and the inbox order."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from kcc_shared.events import parse_event

ACTIONS = ("claim", "release", "answer", "clarification-request", "forward")
BODIES: dict[str, dict[str, Any] | None] = {
    "claim": None,
    "release": None,
    "answer": {"text": "U kunt een noodpaspoort aanvragen bij de balie."},
    "clarification-request": {"text": "Heeft de burger aangifte gedaan?"},
    "forward": {"to_department": "belastingen", "reason": "Gaat over de WOZ-aanslag."},
}


def post(client: FlaskClient, token: str | None, item: str, action: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    payload = BODIES[action] if body is None else body
    return client.post(f"/api/v1/items/{item}/{action}", headers=headers, json=payload)


def get(client: FlaskClient, token: str | None, path: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(path, headers=headers)


# -- authorization ----------------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_no_token_is_401(client: FlaskClient, item_id: str, action: str) -> None:
    response = post(client, None, item_id, action)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("who", ["agent_token", "ops_token", "admin_token"])
def test_only_staff_act(
    client: FlaskClient, item_id: str, action: str, who: str, request: pytest.FixtureRequest
) -> None:
    response = post(client, request.getfixturevalue(who), item_id, action)
    assert response.status_code == 403
    assert item_id not in response.get_data(as_text=True)


@pytest.mark.parametrize("action", ACTIONS)
def test_staff_of_another_department_get_403_revealing_nothing(
    client: FlaskClient, item_id: str, other_staff_token: str, action: str
) -> None:
    response = post(client, other_staff_token, item_id, action)
    unknown = post(client, other_staff_token, str(uuid.uuid4()), action)
    assert response.status_code == unknown.status_code == 403
    assert response.json["detail"] == unknown.json["detail"]
    assert "Paspoort" not in response.get_data(as_text=True)


def test_item_detail_visibility(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    other_staff_token: str,
    agent_token: str,
    ops_token: str,
    admin_token: str,
) -> None:
    path = f"/api/v1/items/{item_id}"
    assert get(client, None, path).status_code == 401
    assert get(client, agent_token, path).status_code == 403
    assert get(client, other_staff_token, path).status_code == 403
    assert get(client, other_staff_token, f"/api/v1/items/{uuid.uuid4()}").status_code == 403
    assert get(client, ops_token, f"/api/v1/items/{uuid.uuid4()}").status_code == 404
    for token in (staff_token, ops_token, admin_token):
        response = get(client, token, path)
        assert response.status_code == 200
        assert response.json["question"] == "Paspoort kwijt, wat nu?"


def test_inbox_visibility(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    other_staff_token: str,
    agent_token: str,
    ops_token: str,
    admin_token: str,
) -> None:
    path = "/api/v1/departments/burgerzaken/inbox"
    assert get(client, None, path).status_code == 401
    assert get(client, agent_token, path).status_code == 403
    assert get(client, other_staff_token, path).status_code == 403
    assert get(client, ops_token, "/api/v1/departments/nergens/inbox").status_code == 404
    for token in (staff_token, ops_token, admin_token):
        response = get(client, token, path)
        assert response.status_code == 200
        assert [i["request_id"] for i in response.json["items"]] == [item_id]


# -- the actions ------------------------------------------------------------------------------


def test_claim_answer_publishes_events_through_the_outbox(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    outbox_events: Callable[[], list[tuple[str, str]]],
) -> None:
    claimed = post(client, staff_token, item_id, "claim")
    assert claimed.status_code == 200
    assert (claimed.json["state"], claimed.json["claimed_by"]) == ("claimed", "staff-eva")
    answered = post(client, staff_token, item_id, "answer")
    assert answered.status_code == 200
    assert answered.json["state"] == "answered"
    assert answered.json["sla"] is None

    events = [parse_event(body) for _, body in outbox_events()]
    assert [e.type for e in events] == ["request.claimed", "request.answered"]
    assert [key for key, _ in outbox_events()] == ["request.claimed", "request.answered"]
    assert dict(events[0].data) == {"department": "burgerzaken", "staff_id": "staff-eva"}
    assert events[1].data["answer"] == BODIES["answer"]["text"]  # type: ignore[index]
    assert events[1].actor.kind == "staff"
    assert {e.request_id for e in events} == {item_id}
    types = [entry["type"] for entry in answered.json["timeline"]]
    assert types == [
        "request.submitted",
        "request.routed",
        "request.claimed",
        "request.answered",
    ]


def test_clarification_pauses_and_the_agents_reply_resumes(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    deliver: Callable[..., None],
    make: Any,
    outbox_events: Callable[[], list[tuple[str, str]]],
) -> None:
    post(client, staff_token, item_id, "claim")
    asked = post(client, staff_token, item_id, "clarification-request")
    assert asked.json["state"] == "awaiting_clarification"
    assert parse_event(outbox_events()[-1][1]).data["text"] == "Heeft de burger aangifte gedaan?"
    assert post(client, staff_token, item_id, "release").status_code == 409
    deliver(make.agent_event("request.clarified", item_id, text="Ja, gisteren."))
    detail = get(client, staff_token, f"/api/v1/items/{item_id}").json
    assert detail["state"] == "claimed"
    assert detail["timeline"][-1]["details"] == {"text": "Ja, gisteren."}


def test_forward_leaves_the_inbox_and_asks_the_router_with_what_it_needs(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    other_staff_token: str,
    deliver: Callable[..., None],
    make: Any,
    outbox_events: Callable[[], list[tuple[str, str]]],
) -> None:
    response = post(client, staff_token, item_id, "forward")
    assert response.status_code == 200
    assert response.json["state"] == "forwarded"
    event = parse_event(outbox_events()[-1][1])
    assert event.type == "request.reroute_requested"
    assert dict(event.data) == {
        "from_department": "burgerzaken",
        "to_department": "belastingen",
        "reason": "Gaat over de WOZ-aanslag.",
        "question": "Paspoort kwijt, wat nu?",
        "category": None,
        "priority": "normal",
        "handoff_count": 0,
    }
    inbox = "/api/v1/departments/burgerzaken/inbox"
    assert get(client, staff_token, inbox).json["items"] == []

    deliver(make.routed(item_id, "belastingen", handoff_count=1, from_department="burgerzaken"))
    moved = get(client, other_staff_token, "/api/v1/departments/belastingen/inbox").json
    assert [(i["request_id"], i["from_department"]) for i in moved["items"]] == [
        (item_id, "burgerzaken")
    ]
    assert get(client, staff_token, f"/api/v1/items/{item_id}").status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to_department": "nergens", "reason": "weg ermee"}, "to_department"),
        ({"to_department": "burgerzaken", "reason": "weg ermee"}, "to_department"),
        ({"to_department": "belastingen"}, "reason"),
        ({"to_department": "belastingen", "reason": "   "}, "reason"),
        ({"to_department": "belastingen", "reason": "ok!", "extra": 1}, "extra"),
    ],
)
def test_invalid_forward_is_400_and_changes_nothing(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    body: dict[str, Any],
    field: str,
    outbox_count: Callable[[], int],
) -> None:
    response = post(client, staff_token, item_id, "forward", body)
    assert response.status_code == 400
    assert field in response.json["errors"]
    assert outbox_count() == 0


def test_forward_without_target_lets_the_rules_choose(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    outbox_events: Callable[[], list[tuple[str, str]]],
) -> None:
    response = post(client, staff_token, item_id, "forward", {"reason": "Niet voor ons."})
    assert response.status_code == 200
    assert parse_event(outbox_events()[-1][1]).data["to_department"] is None


@pytest.mark.parametrize(
    ("setup", "action", "words"),
    [
        ((), "answer", "claim the request first"),
        (("claim",), "claim", None),  # claiming what you hold: 200, nothing new
        (("claim", "answer"), "answer", "already been answered"),
        (("claim", "clarification-request"), "forward", "clarification"),
    ],
)
def test_invalid_transitions_are_409_with_a_clear_detail(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    setup: tuple[str, ...],
    action: str,
    words: str | None,
    outbox_count: Callable[[], int],
) -> None:
    for step in setup:
        assert post(client, staff_token, item_id, step).status_code == 200
    before = outbox_count()
    response = post(client, staff_token, item_id, action)
    assert outbox_count() == before
    if words is None:
        assert response.status_code == 200
        return
    assert response.status_code == 409
    assert response.mimetype == "application/problem+json"
    assert words in response.json["detail"]


def test_claiming_what_a_colleague_holds_is_409(
    client: FlaskClient, item_id: str, staff_token: str, colleague_token: str
) -> None:
    post(client, staff_token, item_id, "claim")
    for action in ACTIONS:
        response = post(client, colleague_token, item_id, action)
        assert response.status_code == 409, action
        assert "staff-eva is working on this request" in response.json["detail"]


def test_acting_on_a_cancelled_request_is_409(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    deliver: Callable[..., None],
    make: Any,
) -> None:
    deliver(make.agent_event("request.cancelled", item_id, reason="Opgelost"))
    response = post(client, staff_token, item_id, "claim")
    assert response.status_code == 409
    assert "cancelled" in response.json["detail"]


def test_bsn_in_answer_is_redacted_before_storing_and_publishing(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    outbox_events: Callable[[], list[tuple[str, str]]],
) -> None:
    post(client, staff_token, item_id, "claim")
    response = post(
        client, staff_token, item_id, "answer", {"text": "Voor BSN 111222333 is alles klaar."}
    )
    assert response.json["answer"] == "Voor [BSN] is alles klaar."
    assert "111222333" not in json.dumps(outbox_events())


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": " \n "}, {"text": 5}, {"x": "y"}])
def test_answer_validation(
    client: FlaskClient, item_id: str, staff_token: str, body: dict[str, Any]
) -> None:
    post(client, staff_token, item_id, "claim")
    response = post(client, staff_token, item_id, "answer", body)
    assert response.status_code == 400
    assert response.json["errors"]


# -- the inbox --------------------------------------------------------------------------------


def test_inbox_is_earliest_deadline_first_with_filters(
    client: FlaskClient,
    staff_token: str,
    deliver: Callable[..., None],
    make: Any,
    clock: Any,
) -> None:
    now = make.now
    ids = {name: str(uuid.uuid4()) for name in ("late", "soon", "later", "urgent")}
    deliver(
        make.routed(ids["later"], first_response_due=now + timedelta(hours=3)),
        make.routed(
            ids["late"],
            first_response_due=now - timedelta(hours=1),
            resolution_due=now + timedelta(hours=5),
        ),
        make.routed(ids["soon"], first_response_due=now + timedelta(hours=1)),
        make.routed(ids["urgent"], priority="urgent", first_response_due=now + timedelta(hours=2)),
    )
    path = "/api/v1/departments/burgerzaken/inbox"
    listed = get(client, staff_token, path).json["items"]
    assert [i["request_id"] for i in listed] == [
        ids["late"],
        ids["soon"],
        ids["urgent"],
        ids["later"],
    ]
    assert listed[0]["sla"]["state"] == "overdue"
    overdue = get(client, staff_token, path + "?overdue=true").json["items"]
    assert [i["request_id"] for i in overdue] == [ids["late"]]
    urgent = get(client, staff_token, path + "?priority=urgent").json["items"]
    assert [i["request_id"] for i in urgent] == [ids["urgent"]]
    post(client, staff_token, ids["soon"], "claim")
    claimed = get(client, staff_token, path + "?state=claimed").json["items"]
    assert [i["request_id"] for i in claimed] == [ids["soon"]]
    mine = get(client, staff_token, path + "?mine=true").json["items"]
    assert [i["request_id"] for i in mine] == [ids["soon"]]


@pytest.mark.parametrize("query", ["?state=nonsense", "?priority=asap", "?overdue=maybe", "?x=1"])
def test_inbox_query_validation(client: FlaskClient, staff_token: str, query: str) -> None:
    response = get(client, staff_token, "/api/v1/departments/burgerzaken/inbox" + query)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_duplicate_events_change_nothing(
    client: FlaskClient, staff_token: str, deliver: Callable[..., None], make: Any
) -> None:
    rid = str(uuid.uuid4())
    routed = make.routed(rid)
    deliver(routed, routed, make.submitted(rid), routed)
    detail = get(client, staff_token, f"/api/v1/items/{rid}").json
    assert [e["type"] for e in detail["timeline"]] == ["request.submitted", "request.routed"]
