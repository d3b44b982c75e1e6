"""The event envelope and a schema for every event type on the wire."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

__all__ = [
    "CHANNELS",
    "CLOCKS",
    "DATA_SCHEMAS",
    "OPEN_STATES",
    "PRIORITIES",
    "QUESTION_MAX_LENGTH",
    "REASON_MAX_LENGTH",
    "SYSTEM",
    "TAGS_MAX",
    "TAG_MAX_LENGTH",
    "TEXT_MAX_LENGTH",
    "Actor",
    "Event",
    "InvalidEvent",
    "Priority",
    "TimelineEntry",
    "UnknownEventType",
    "UnknownSchemaVersion",
    "derived_event_id",
    "new_event",
    "parse_event",
]

SCHEMA_VERSION: Final = 1

Priority = Literal["urgent", "high", "normal", "low"]
# Most urgent first: a lower index is more urgent.
PRIORITIES: Final[tuple[Priority, ...]] = ("urgent", "high", "normal", "low")
# The states of a request that is not closed, as the contract's kcc_requests_open names them.
OPEN_STATES: Final = ("waiting", "claimed", "awaiting_clarification")
CHANNELS: Final = ("phone", "email", "chat", "counter", "app", "letter", "social")
ACTOR_KINDS: Final = ("agent", "staff", "system")
CLOCKS: Final = ("first_response", "resolution")
ROUTE_REASONS: Final = ("category", "rule", "model", "fallback", "forward")
# Who chose the department of a routed event: the rules, the agent's category, the model, nobody
# (fallback: triage chooses), or staff who named the target of a forward.
DECIDERS: Final = ("rule", "category", "model", "fallback", "staff")
EXPLANATION_MAX_LENGTH: Final = 1000
SIMILAR_MAX: Final = 3

QUESTION_MAX_LENGTH: Final = 4000
TEXT_MAX_LENGTH: Final = 8000
REASON_MAX_LENGTH: Final = 1000
ID_MAX_LENGTH: Final = 64
TAG_MAX_LENGTH: Final = 40
TAGS_MAX: Final = 10

ActorKind = Literal["agent", "staff", "system"]


class InvalidEvent(ValueError):
    """A message that is not a valid event; `reason` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownEventType(InvalidEvent):
    """A `request.*` event of a type this release does not know, in the schema version it
    reads: a newer release added it. A reader that is not bound to it by name ignores it."""


class UnknownSchemaVersion(InvalidEvent):
    """An envelope with a schema_version this code does not understand."""


def _ident() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=ID_MAX_LENGTH))


def _department() -> fields.String:
    return fields.String(
        required=True,
        validate=[validate.Length(min=1, max=ID_MAX_LENGTH), validate.Regexp(r"^[a-z0-9-]+$")],
    )


def _text(max_length: int, *, required: bool = True) -> fields.String:
    if required:
        return fields.String(required=True, validate=validate.Length(min=1, max=max_length))
    return fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=max_length)
    )


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ActorSchema(_Strict):
    kind = fields.String(required=True, validate=validate.OneOf(ACTOR_KINDS))
    id = _ident()


class SubmittedSchema(_Strict):
    question = _text(QUESTION_MAX_LENGTH)
    category = fields.String(load_default=None, allow_none=True)
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    agent_id = _ident()
    team = fields.String(load_default=None, allow_none=True)
    citizen_ref = fields.String(load_default=None, allow_none=True)
    tags = fields.List(fields.String(validate=validate.Length(min=1, max=TAG_MAX_LENGTH)))


class RoutedSchema(_Strict):
    department = _department()
    from_department = fields.String(load_default=None, allow_none=True)
    rule_id = fields.String(required=True, allow_none=True)
    rules_version = fields.String(required=True)
    reason = fields.String(required=True, validate=validate.OneOf(ROUTE_REASONS))
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    handoff_count = fields.Integer(required=True, validate=validate.Range(min=0))
    matched = fields.List(fields.String(), load_default=list)
    # Why, for people (Dutch), and with what certainty; absent in events of older routers.
    decider = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(DECIDERS))
    model_version = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=ID_MAX_LENGTH)
    )
    confidence = fields.Float(
        load_default=None, allow_none=True, validate=validate.Range(min=0.0, max=1.0)
    )
    explanation = _text(EXPLANATION_MAX_LENGTH, required=False)
    similar = fields.List(
        fields.String(validate=validate.Length(min=1, max=QUESTION_MAX_LENGTH)),
        load_default=list,
        validate=validate.Length(max=SIMILAR_MAX),
    )
    first_response_due = fields.AwareDateTime(required=True, default_timezone=UTC)
    resolution_due = fields.AwareDateTime(required=True, default_timezone=UTC)


class StaffActionSchema(_Strict):
    department = _department()
    staff_id = _ident()


class ClarificationRequestedSchema(_Strict):
    department = _department()
    text = _text(TEXT_MAX_LENGTH)


class ClarifiedSchema(_Strict):
    text = _text(TEXT_MAX_LENGTH)


class AnsweredSchema(_Strict):
    department = _department()
    staff_id = _ident()
    answer = _text(TEXT_MAX_LENGTH)
    # A general answer (never about one citizen) the department offers for reuse: the desk
    # suggests it to KCC-medewerkers typing a similar question. Absent from older producers.
    reusable = fields.Boolean(load_default=False)


class ReuseChangedSchema(_Strict):
    """A department marks an earlier answer as reusable, or withdraws it."""

    department = _department()
    staff_id = _ident()
    reusable = fields.Boolean(required=True)


class AnswerReusedSchema(_Strict):
    """A KCC-medewerker answered a citizen with this request's reusable answer, without filing
    a new question (the event's request is the earlier, answered one)."""

    department = _department()
    agent_id = _ident()
    team = fields.String(load_default=None, allow_none=True)


class RerouteRequestedSchema(_Strict):
    from_department = _department()
    to_department = fields.String(load_default=None, allow_none=True)
    reason = _text(REASON_MAX_LENGTH)
    # The router keeps no store: to re-run the rules on a forward without a target it needs the
    # request's (redacted) question, category and priority, and the handoff count so far.
    question = _text(QUESTION_MAX_LENGTH, required=False)
    category = fields.String(load_default=None, allow_none=True)
    priority = fields.String(
        load_default=None, allow_none=True, validate=validate.OneOf(PRIORITIES)
    )
    handoff_count = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=0)
    )


class ReasonSchema(_Strict):
    reason = _text(REASON_MAX_LENGTH, required=False)


class ReopenedSchema(_Strict):
    reason = _text(REASON_MAX_LENGTH, required=False)
    department = fields.String(load_default=None, allow_none=True)


class RatedSchema(_Strict):
    score = fields.Integer(required=True, validate=validate.Range(min=1, max=5))
    thanks = fields.Boolean(required=True)
    comment = _text(TEXT_MAX_LENGTH, required=False)
    department = fields.String(load_default=None, allow_none=True)


class SlaSchema(_Strict):
    department = _department()
    priority = fields.String(required=True, validate=validate.OneOf(PRIORITIES))
    clock = fields.String(required=True, validate=validate.OneOf(CLOCKS))
    target_seconds = fields.Integer(required=True, validate=validate.Range(min=1))
    elapsed_seconds = fields.Integer(required=True, validate=validate.Range(min=0))


# The contract: every event type and the schema of its `data`.
DATA_SCHEMAS: Final[Mapping[str, Schema]] = {
    "request.submitted": SubmittedSchema(),
    "request.routed": RoutedSchema(),
    "request.claimed": StaffActionSchema(),
    "request.released": StaffActionSchema(),
    "request.clarification_requested": ClarificationRequestedSchema(),
    "request.clarified": ClarifiedSchema(),
    "request.answered": AnsweredSchema(),
    "request.reuse_changed": ReuseChangedSchema(),
    "request.answer_reused": AnswerReusedSchema(),
    "request.reroute_requested": RerouteRequestedSchema(),
    "request.reopened": ReopenedSchema(),
    "request.cancelled": ReasonSchema(),
    "request.rated": RatedSchema(),
    "request.sla_warning": SlaSchema(),
    "request.sla_breached": SlaSchema(),
}
EVENT_TYPES: Final = tuple(DATA_SCHEMAS)


ENVELOPE_FIELDS: Final = frozenset(
    {"id", "type", "occurred_at", "request_id", "schema_version", "correlation_id", "actor", "data"}
)


def _not_a_bool(value: Any) -> bool:
    # JSON types are part of the contract: true is no version number (Python counts it as 1).
    return not isinstance(value, bool)


class EnvelopeSchema(_Strict):
    id = fields.UUID(required=True)
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    occurred_at = fields.AwareDateTime(required=True)
    request_id = fields.UUID(required=True)
    schema_version = fields.Integer(required=True, strict=True, validate=_not_a_bool)
    correlation_id = fields.UUID(required=True)
    actor = fields.Nested(ActorSchema, required=True)
    data = fields.Dict(required=True)


ENVELOPE: Final = EnvelopeSchema()


@dataclass(frozen=True)
class TimelineEntry:
    """One event of a request as its timeline shows it (in the intake and the back office)."""

    event_id: str
    type: str
    occurred_at: datetime
    actor: Mapping[str, str]
    details: Mapping[str, Any]


@dataclass(frozen=True)
class Actor:
    kind: ActorKind
    id: str


SYSTEM: Final = Actor("system", "kcc")


@dataclass(frozen=True)
class Event:
    """One validated event; `data` holds the loaded (typed) values of its data schema."""

    id: str
    type: str
    occurred_at: datetime
    request_id: str
    correlation_id: str
    actor: Actor
    data: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def routing_key(self) -> str:
        """The topic routing key: the type, except that routed events name their target."""
        if self.type == "request.routed":
            return f"request.routed.{self.data['department']}"
        return self.type

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": _rfc3339(self.occurred_at),
            "request_id": self.request_id,
            "schema_version": self.schema_version,
            "correlation_id": self.correlation_id,
            "actor": {"kind": self.actor.kind, "id": self.actor.id},
            # `data` was loaded through its schema, so it holds exactly the schema's fields:
            # plain JSON values and datetimes, written the same way as occurred_at.
            "data": {
                k: _rfc3339(v) if isinstance(v, datetime) else v for k, v in self.data.items()
            },
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_event(
    type_: str,
    *,
    request_id: str,
    actor: Actor,
    data: Mapping[str, Any],
    correlation_id: str | None = None,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Build an event, validating `data` against the contract (a bug raises InvalidEvent)."""
    schema = DATA_SCHEMAS.get(type_)
    if schema is None:
        raise InvalidEvent(f"unknown event type {type_!r}")
    unknown = sorted(set(data) - set(schema.fields))
    if unknown:
        # Readers ignore what they do not know, so a misspelt field would vanish silently:
        # producers name only fields of the contract.
        raise InvalidEvent(f"{type_} data invalid: {', '.join(unknown)}: Unknown field.")
    try:
        loaded = schema.load(schema.dump(data))
    except ValidationError as exc:
        raise InvalidEvent(f"{type_} data invalid: {_flatten(exc.messages)}") from exc
    # The envelope too: an event this builds must be one every consumer's parse_event accepts.
    for name, value in (
        ("id", event_id),
        ("request_id", request_id),
        ("correlation_id", correlation_id),
    ):
        if value is not None and not _is_uuid(value):
            raise InvalidEvent(f"{name}: not a valid UUID")
    if actor.kind not in ACTOR_KINDS:
        raise InvalidEvent(f"actor.kind: must be one of {', '.join(ACTOR_KINDS)}")
    if not 1 <= len(actor.id) <= ID_MAX_LENGTH:
        raise InvalidEvent(f"actor.id: must be 1-{ID_MAX_LENGTH} characters")
    if occurred_at is not None and occurred_at.utcoffset() is None:
        raise InvalidEvent("occurred_at: must be timezone-aware (UTC on the wire)")
    return Event(
        id=event_id or str(uuid.uuid4()),
        type=type_,
        occurred_at=(occurred_at or datetime.now(UTC)).astimezone(UTC),
        request_id=request_id,
        correlation_id=correlation_id or request_id,
        actor=actor,
        data=loaded,
    )


def parse_event(body: bytes | str | Mapping[str, Any]) -> Event:
    """Validate a message body against the envelope and its type's schema, as a tolerant
    reader: within the schema version it reads, fields it does not know (a newer release
    added them) are ignored, and a `request.*` type it does not know raises
    UnknownEventType. Producers stay strict (new_event)."""
    if isinstance(body, bytes | str):
        try:
            raw = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidEvent(f"body is not JSON: {exc}") from exc
    else:
        raw = dict(body)
    if not isinstance(raw, dict):
        raise InvalidEvent("body is not a JSON object")
    version = raw.get("schema_version")
    if isinstance(version, int) and version != SCHEMA_VERSION:
        raise UnknownSchemaVersion(
            f"schema_version {version} is not supported (this service reads {SCHEMA_VERSION})"
        )
    type_ = raw.get("type")
    if (
        isinstance(type_, str)
        and type_.startswith("request.")
        and type_ not in DATA_SCHEMAS
        and version == SCHEMA_VERSION
    ):
        raise UnknownEventType(f"event type {type_!r} is not known to this release")
    try:
        envelope = ENVELOPE.load(raw, unknown=EXCLUDE)
    except ValidationError as exc:
        raise InvalidEvent(f"envelope invalid: {_flatten(exc.messages)}") from exc
    try:
        data = DATA_SCHEMAS[envelope["type"]].load(envelope["data"], unknown=EXCLUDE)
    except ValidationError as exc:
        raise InvalidEvent(f"{envelope['type']} data invalid: {_flatten(exc.messages)}") from exc
    return Event(
        id=str(envelope["id"]),
        type=envelope["type"],
        occurred_at=envelope["occurred_at"].astimezone(UTC),
        request_id=str(envelope["request_id"]),
        correlation_id=str(envelope["correlation_id"]),
        actor=Actor(envelope["actor"]["kind"], envelope["actor"]["id"]),
        data=data,
        schema_version=SCHEMA_VERSION,
    )


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def derived_event_id(source_event_id: str, purpose: str) -> str:
    """A deterministic id for an event caused by another, so a redelivery yields the same id."""
    return str(uuid.uuid5(uuid.UUID(source_event_id), purpose))


def _flatten(messages: Any, prefix: str = "") -> str:
    """Field errors as 'a.b: message; c: message' (the field names, never the values)."""
    if isinstance(messages, dict):
        parts = [_flatten(v, f"{prefix}{k}.") for k, v in messages.items()]
        return "; ".join(p for p in parts if p)
    if isinstance(messages, list):
        return f"{prefix.rstrip('.')}: {' '.join(str(m) for m in messages)}"
    return f"{prefix.rstrip('.')}: {messages}"
