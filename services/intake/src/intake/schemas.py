"""What agents send and get back: the intake API's schemas."""

from __future__ import annotations

from kcc_shared.events import (
    CHANNELS,
    PRIORITIES,
    QUESTION_MAX_LENGTH,
    REASON_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TAGS_MAX,
)
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

STATUSES = (
    "submitted",
    "routed",
    "claimed",
    "awaiting_clarification",
    "answered",
    "closed",
    "cancelled",
)
QUESTION_MIN_LENGTH = 10
PAGE_SIZE_MAX = 100


class _Strict(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


class RequestCreateSchema(_Strict):
    question = fields.String(
        required=True,
        validate=validate.Length(min=QUESTION_MIN_LENGTH, max=QUESTION_MAX_LENGTH),
        metadata={
            "description": "The citizen's question in the agent's words. Citizen service "
            "numbers (BSN) are replaced with [BSN] before anything is stored.",
            "example": "Paspoort verlopen, vertrekt over 10 dagen naar Turkije. Spoedaanvraag?",
        },
    )
    category = fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "A category id from GET /api/v1/catalog."},
    )
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    channel = fields.String(
        load_default="phone",
        validate=validate.OneOf(CHANNELS),
        metadata={"description": "How the citizen reached the KCC."},
    )
    citizen_ref = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "An opaque reference to the citizen in the KCC's own system "
            "(never a citizen service number)."
        },
    )
    tags = fields.List(
        fields.String(validate=validate.Length(min=1, max=TAG_MAX_LENGTH)),
        load_default=list,
        validate=validate.Length(max=TAGS_MAX),
    )

    @validates("question")
    def _not_blank(self, value: str, **_: object) -> None:
        if not value.strip():
            raise ValidationError("The question is empty.")


class CancelSchema(_Strict):
    reason = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(min=1, max=REASON_MAX_LENGTH)
    )


class RequestQueryArgsSchema(_Strict):
    status = fields.List(
        fields.String(validate=validate.OneOf(STATUSES)),
        load_default=list,
        metadata={"description": "Only requests in these states (repeat the parameter)."},
    )
    priority = fields.String(load_default=None, validate=validate.OneOf(PRIORITIES))
    scope = fields.String(
        load_default="mine",
        validate=validate.OneOf(("mine", "team", "all")),
        metadata={"description": "mine (default), team (the agent's team), all (ops/admin)."},
    )
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=25, validate=validate.Range(min=1, max=PAGE_SIZE_MAX))


class ActorSchema(Schema):
    kind = fields.String()
    id = fields.String()


class TimelineEntrySchema(Schema):
    event_id = fields.String()
    type = fields.String()
    occurred_at = fields.AwareDateTime()
    actor = fields.Nested(ActorSchema)
    details = fields.Dict()


class LinksSchema(Schema):
    self = fields.String()
    cancel = fields.String()


class RequestSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    status = fields.String(metadata={"enum": list(STATUSES)})
    question = fields.String()
    category = fields.String(allow_none=True)
    priority = fields.String()
    channel = fields.String()
    citizen_ref = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    agent_id = fields.String()
    team = fields.String(allow_none=True)
    department = fields.String(allow_none=True)
    answer = fields.String(allow_none=True)
    created_at = fields.AwareDateTime()
    updated_at = fields.AwareDateTime()
    links = fields.Nested(LinksSchema)


class RequestDetailSchema(RequestSchema):
    timeline = fields.List(fields.Nested(TimelineEntrySchema))


class RequestPageSchema(Schema):
    items = fields.List(fields.Nested(RequestSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class CategorySchema(Schema):
    id = fields.String()
    label = fields.String()
    department = fields.String()


class DepartmentSchema(Schema):
    id = fields.String()
    name = fields.String()


class CatalogSchema(Schema):
    categories = fields.List(fields.Nested(CategorySchema))
    departments = fields.List(fields.Nested(DepartmentSchema))
    priorities = fields.List(fields.String())
    channels = fields.List(fields.String())
