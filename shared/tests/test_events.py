"""The event contract: every type round-trips, and every bad message is refused with a reason."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kcc_shared.events import (
    DATA_SCHEMAS,
    SYSTEM,
    Actor,
    Event,
    InvalidEvent,
    UnknownEventType,
    UnknownSchemaVersion,
    derived_event_id,
    new_event,
    parse_event,
)

AMS = ZoneInfo("Europe/Amsterdam")
REQUEST_ID = "5ea9b18e-ae35-455e-92a2-f7d60ce7ed68"
EVENT_ID = "ccd195da-32c0-4e6b-8acf-77c695af7972"
AGENT = Actor("agent", "agent-anna")
STAFF = Actor("staff", "staff-bert")
DUE = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)

# One valid `data` for every event type of the contract, with the actor that sends it.
EXAMPLES: dict[str, tuple[Actor, dict[str, Any]]] = {
    "request.submitted": (
        AGENT,
        {
            "question": "Hoe vraag ik een parkeervergunning aan voor mijn tweede auto?",
            "category": "parkeren",
            "priority": "normal",
            "channel": "phone",
            "agent_id": "agent-anna",
            "team": "kcc-noord",
            "citizen_ref": "zaak-2026-0042",
            "tags": ["parkeren", "vergunning"],
        },
    ),
    "request.routed": (
        SYSTEM,
        {
            "department": "vergunningen",
            "from_department": None,
            "rule_id": "parkeren-vergunning",
            "rules_version": "2026-03-01",
            "reason": "rule",
            "priority": "normal",
            "handoff_count": 0,
            "matched": ["parkeervergunning"],
            "first_response_due": DUE,
            "resolution_due": DUE + timedelta(days=3),
        },
    ),
    "request.claimed": (STAFF, {"department": "vergunningen", "staff_id": "staff-bert"}),
    "request.released": (STAFF, {"department": "vergunningen", "staff_id": "staff-bert"}),
    "request.clarification_requested": (
        STAFF,
        {"department": "vergunningen", "text": "Om welk kenteken gaat het?"},
    ),
    "request.clarified": (AGENT, {"text": "Het tweede kenteken staat op naam van de partner."}),
    "request.answered": (
        STAFF,
        {
            "department": "vergunningen",
            "staff_id": "staff-bert",
            "answer": "Een tweede vergunning kan in zone B, via het digitale loket.",
            "reusable": True,
        },
    ),
    "request.reuse_changed": (
        STAFF,
        {"department": "vergunningen", "staff_id": "staff-bert", "reusable": False},
    ),
    "request.answer_reused": (
        AGENT,
        {"department": "vergunningen", "agent_id": "agent-anna", "team": "team-noord"},
    ),
    "request.reroute_requested": (
        STAFF,
        {
            "from_department": "vergunningen",
            "to_department": "belastingen",
            "reason": "Gaat over de naheffingsaanslag, niet over de vergunning.",
        },
    ),
    "request.reopened": (
        AGENT,
        {"reason": "Het antwoord gaat over zone A.", "department": "vergunningen"},
    ),
    "request.cancelled": (AGENT, {"reason": "Burger heeft het zelf online geregeld."}),
    "request.rated": (
        AGENT,
        {"score": 4, "thanks": True, "comment": "Snel en duidelijk.", "department": "vergunningen"},
    ),
    "request.sla_warning": (
        SYSTEM,
        {
            "department": "vergunningen",
            "priority": "high",
            "clock": "first_response",
            "target_seconds": 14400,
            "elapsed_seconds": 11520,
        },
    ),
    "request.sla_breached": (
        SYSTEM,
        {
            "department": "vergunningen",
            "priority": "high",
            "clock": "resolution",
            "target_seconds": 86400,
            "elapsed_seconds": 86401,
        },
    ),
}


def example(type_: str, **data_changes: Any) -> Event:
    actor, data = EXAMPLES[type_]
    return new_event(
        type_,
        request_id=REQUEST_ID,
        actor=actor,
        data={**data, **data_changes},
        event_id=EVENT_ID,
        occurred_at=datetime(2026, 3, 9, 10, 15, 30, 123456, tzinfo=AMS),
    )


def test_every_event_type_of_the_contract_has_an_example_here() -> None:
    assert set(EXAMPLES) == set(DATA_SCHEMAS)


@pytest.mark.parametrize("type_", list(DATA_SCHEMAS))
@pytest.mark.parametrize("form", ["str", "bytes", "mapping"])
def test_every_event_type_round_trips_unchanged(type_: str, form: str) -> None:
    event = example(type_)
    wire = event.to_json()
    body: str | bytes | dict[str, Any] = {
        "str": wire,
        "bytes": wire.encode(),
        "mapping": json.loads(wire),
    }[form]

    parsed = parse_event(body)

    assert parsed == event
    assert parsed.to_json() == wire
    assert set(json.loads(wire)) == {
        "id",
        "type",
        "occurred_at",
        "request_id",
        "schema_version",
        "correlation_id",
        "actor",
        "data",
    }


def test_new_event_fills_in_id_correlation_and_time() -> None:
    before = datetime.now(UTC)
    event = new_event("request.cancelled", request_id=REQUEST_ID, actor=AGENT, data={})
    after = datetime.now(UTC)

    assert uuid.UUID(event.id).version == 4
    assert event.correlation_id == REQUEST_ID
    assert before <= event.occurred_at <= after
    assert event.schema_version == 1
    assert parse_event(event.to_json()) == event


def test_new_event_refuses_data_that_breaks_the_contract() -> None:
    with pytest.raises(InvalidEvent) as caught:
        example("request.rated", score=0)

    assert "score" in caught.value.reason


def _body(type_: str = "request.submitted") -> dict[str, Any]:
    return dict(json.loads(example(type_).to_json()))


def changed(**changes: Any) -> dict[str, Any]:
    return {**_body(), **changes}


def without(key: str) -> dict[str, Any]:
    body = _body()
    del body[key]
    return body


def with_data(type_: str = "request.submitted", **changes: Any) -> dict[str, Any]:
    body = _body(type_)
    return {**body, "data": {**body["data"], **changes}}


def without_data(key: str, type_: str = "request.submitted") -> dict[str, Any]:
    body = _body(type_)
    del body["data"][key]
    return body


INVALID: list[Any] = [
    pytest.param("hallo", InvalidEvent, "JSON", id="not JSON"),
    pytest.param(b"\xff\xfe\x00", InvalidEvent, "JSON", id="not UTF-8"),
    pytest.param("[1, 2]", InvalidEvent, "object", id="a list, not an object"),
    pytest.param('"request.submitted"', InvalidEvent, "object", id="a string, not an object"),
    pytest.param(without("id"), InvalidEvent, "id:", id="missing id"),
    pytest.param(without("actor"), InvalidEvent, "actor:", id="missing actor"),
    pytest.param(without("occurred_at"), InvalidEvent, "occurred_at:", id="missing occurred_at"),
    pytest.param(without("data"), InvalidEvent, "data:", id="missing data"),
    pytest.param(without("schema_version"), InvalidEvent, "schema_version:", id="no version"),
    pytest.param(changed(id="not-a-uuid"), InvalidEvent, "id:", id="bad event id"),
    pytest.param(changed(request_id="42"), InvalidEvent, "request_id:", id="bad request id"),
    pytest.param(
        changed(correlation_id="x"), InvalidEvent, "correlation_id:", id="bad correlation id"
    ),
    pytest.param(
        changed(occurred_at="2026-03-09T10:15:30"), InvalidEvent, "occurred_at:", id="naive time"
    ),
    pytest.param(changed(occurred_at="gisteren"), InvalidEvent, "occurred_at:", id="not a time"),
    pytest.param(changed(type="kcc.exploded"), InvalidEvent, "type:", id="unknown type"),
    pytest.param(
        changed(type="request.exploded"), UnknownEventType, "not known", id="newer request type"
    ),
    pytest.param(changed(type=None), InvalidEvent, "type:", id="null type"),
    pytest.param(changed(schema_version=2), UnknownSchemaVersion, "schema_version", id="v2"),
    # JSON types are part of the contract: a version written as text is malformed.
    pytest.param(changed(schema_version="2"), InvalidEvent, "schema_version:", id="v2 as text"),
    pytest.param(changed(schema_version=True), InvalidEvent, "schema_version:", id="v as bool"),
    pytest.param(changed(schema_version=0), UnknownSchemaVersion, "schema_version", id="v0"),
    pytest.param(
        changed(schema_version="one"), InvalidEvent, "schema_version:", id="version not a number"
    ),
    pytest.param(
        changed(actor={"kind": "robot", "id": "r2"}), InvalidEvent, "actor.kind:", id="bad actor"
    ),
    pytest.param(changed(actor={"kind": "agent", "id": ""}), InvalidEvent, "actor.id:", id="no id"),
    pytest.param(changed(data=None), InvalidEvent, "data:", id="null data"),
    pytest.param(changed(data=[]), InvalidEvent, "data:", id="data a list"),
    pytest.param(with_data(priority="asap"), InvalidEvent, "priority:", id="bad priority"),
    pytest.param(with_data(channel="pigeon"), InvalidEvent, "channel:", id="bad channel"),
    pytest.param(with_data(question=""), InvalidEvent, "question:", id="empty question"),
    pytest.param(with_data(question="x" * 4001), InvalidEvent, "question:", id="long question"),
    pytest.param(without_data("question"), InvalidEvent, "question:", id="no question"),
    pytest.param(with_data(tags=["x" * 41]), InvalidEvent, "tags.0:", id="overlong tag"),
    pytest.param(with_data("request.rated", score=6), InvalidEvent, "score:", id="score 6"),
    pytest.param(with_data("request.rated", score=0), InvalidEvent, "score:", id="score 0"),
    pytest.param(with_data("request.rated", score="vijf"), InvalidEvent, "score:", id="score text"),
    pytest.param(without_data("thanks", "request.rated"), InvalidEvent, "thanks:", id="no thanks"),
    pytest.param(
        with_data("request.routed", department="Burger Zaken"),
        InvalidEvent,
        "department:",
        id="department not an id",
    ),
    pytest.param(
        with_data("request.routed", department="a.b"),
        InvalidEvent,
        "department:",
        id="department with a dot (would change the routing key)",
    ),
    pytest.param(
        with_data("request.routed", reason="gut feeling"), InvalidEvent, "reason:", id="bad reason"
    ),
    pytest.param(
        with_data("request.routed", handoff_count=-1),
        InvalidEvent,
        "handoff_count:",
        id="negative handoffs",
    ),
    pytest.param(
        with_data("request.routed", first_response_due="morgen"),
        InvalidEvent,
        "first_response_due:",
        id="bad due time",
    ),
    pytest.param(
        with_data("request.sla_breached", clock="wall"), InvalidEvent, "clock:", id="bad clock"
    ),
    pytest.param(
        with_data("request.sla_warning", target_seconds=0),
        InvalidEvent,
        "target_seconds:",
        id="zero target",
    ),
    pytest.param(
        with_data("request.answered", reusable="ja"), InvalidEvent, "reusable:", id="reusable text"
    ),
    pytest.param(
        without_data("reusable", "request.reuse_changed"),
        InvalidEvent,
        "reusable:",
        id="reuse change without its choice",
    ),
    pytest.param(
        with_data("request.answered", answer=""), InvalidEvent, "answer:", id="empty answer"
    ),
    pytest.param(
        without_data("staff_id", "request.claimed"), InvalidEvent, "staff_id:", id="no staff id"
    ),
]


@pytest.mark.parametrize(("body", "error", "field"), INVALID)
def test_an_invalid_message_is_refused_with_a_reason_naming_the_field(
    body: Any, error: type[InvalidEvent], field: str
) -> None:
    wire = json.dumps(body) if isinstance(body, dict) else body

    with pytest.raises(InvalidEvent) as caught:
        parse_event(wire)

    assert type(caught.value) is error
    # The field as a name ("request_id:" must not pass for "id:", nor "invalid" for "id").
    assert re.search(rf"(?<![\w.]){re.escape(field)}", caught.value.reason), caught.value.reason
    assert str(caught.value) == caught.value.reason


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(with_data(priority="123456782"), id="as a bad priority"),
        pytest.param(with_data(question="BSN 123456782 " + "x" * 4000), id="in an overlong text"),
        pytest.param(with_data("request.claimed", staff_id="123456782" * 8), id="in a long id"),
    ],
)
def test_a_reason_names_the_field_but_never_quotes_the_value(body: dict[str, Any]) -> None:
    # Reasons go into dead-letter headers and logs: a value could be personal data.
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(body))

    assert "123456782" not in caught.value.reason


@pytest.mark.parametrize("type_", list(DATA_SCHEMAS))
def test_routing_key_is_the_type_except_for_routed_events(type_: str) -> None:
    event = example(type_)

    if type_ == "request.routed":
        assert event.routing_key == "request.routed.vergunningen"
    else:
        assert event.routing_key == type_


def test_routed_events_name_their_target_department_in_the_routing_key() -> None:
    assert example("request.routed", department="burgerzaken").routing_key == (
        "request.routed.burgerzaken"
    )
    assert example("request.routed", department="sociaal-domein").routing_key == (
        "request.routed.sociaal-domein"
    )


def test_derived_event_id_is_the_same_on_redelivery() -> None:
    assert derived_event_id(EVENT_ID, "routed") == derived_event_id(EVENT_ID, "routed")
    assert uuid.UUID(derived_event_id(EVENT_ID, "routed")).version == 5


def test_derived_event_id_differs_per_purpose_and_per_source() -> None:
    other_source = "0b4b7f4c-1b8e-4a51-9c3e-2f7d9a1e6c55"
    ids = {
        derived_event_id(EVENT_ID, "routed"),
        derived_event_id(EVENT_ID, "sla_warning:first_response"),
        derived_event_id(EVENT_ID, "sla_breached:first_response"),
        derived_event_id(other_source, "routed"),
    }

    assert len(ids) == 4
    assert EVENT_ID not in ids


@pytest.mark.parametrize(
    ("occurred_at", "wire"),
    [
        pytest.param(
            datetime(2026, 3, 9, 10, 15, tzinfo=AMS), "2026-03-09T09:15:00Z", id="winter time"
        ),
        pytest.param(
            datetime(2026, 7, 1, 10, 15, tzinfo=AMS), "2026-07-01T08:15:00Z", id="summer time"
        ),
        pytest.param(
            datetime(2026, 7, 1, 8, 15, 0, 250000, tzinfo=UTC),
            "2026-07-01T08:15:00.250000Z",
            id="UTC with microseconds",
        ),
    ],
)
def test_occurred_at_is_serialised_as_utc_with_z(occurred_at: datetime, wire: str) -> None:
    event = new_event(
        "request.cancelled", request_id=REQUEST_ID, actor=AGENT, data={}, occurred_at=occurred_at
    )

    assert json.loads(event.to_json())["occurred_at"] == wire
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at == occurred_at


def test_an_offset_on_the_wire_is_read_as_the_same_instant_in_utc() -> None:
    body = changed(occurred_at="2026-03-09T10:15:00+01:00")

    event = parse_event(json.dumps(body))

    assert event.occurred_at == datetime(2026, 3, 9, 9, 15, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert json.loads(event.to_json())["occurred_at"] == "2026-03-09T09:15:00Z"


# new_event validates `data` only. An envelope it builds but every consumer refuses becomes a
# poison message, found only once it is on the wire and dead-lettered: the producer must fail.
INVALID_ENVELOPES: list[Any] = [
    pytest.param({"request_id": "42"}, id="request id not a uuid"),
    pytest.param({"event_id": "evt-1"}, id="event id not a uuid"),
    pytest.param({"actor": Actor("robot", "r2")}, id="unknown actor kind"),  # type: ignore[arg-type]
    pytest.param({"actor": Actor("agent", "")}, id="empty actor id"),
    # A naive time is silently read as the server's local time, shifting it by the UTC offset.
    pytest.param({"occurred_at": datetime(2026, 3, 9, 10, 15)}, id="naive occurred_at"),
]


@pytest.mark.parametrize("changes", INVALID_ENVELOPES)
def test_new_event_refuses_an_envelope_that_parse_event_would_refuse(
    changes: dict[str, Any],
) -> None:
    arguments: dict[str, Any] = {
        "request_id": REQUEST_ID,
        "actor": AGENT,
        "data": {},
        "occurred_at": datetime(2026, 3, 9, 10, 15, tzinfo=UTC),
        **changes,
    }

    with pytest.raises(InvalidEvent):
        new_event("request.cancelled", **arguments)


def test_an_answer_from_a_back_office_before_reuse_existed_is_not_offered_for_reuse() -> None:
    body = without_data("reusable", "request.answered")
    assert parse_event(json.dumps(body)).data["reusable"] is False


def test_a_reader_ignores_fields_a_newer_release_added_within_its_schema_version() -> None:
    # A rolling upgrade: the new back office adds a field before every reader knows it.
    body = with_data("request.claimed", note="x")
    body["priority"] = "high"
    event = parse_event(json.dumps(body))
    assert event.type == "request.claimed"
    assert "note" not in event.data
    assert event.to_dict()["data"] == EXAMPLES["request.claimed"][1]


def test_a_producer_stays_strict_about_fields_the_contract_does_not_have() -> None:
    actor, data = EXAMPLES["request.claimed"]
    with pytest.raises(InvalidEvent, match="note"):
        new_event("request.claimed", request_id=REQUEST_ID, actor=actor, data={**data, "note": "x"})
