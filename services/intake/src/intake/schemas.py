"""What agents send and get back: the intake API's schemas."""

from __future__ import annotations

from typing import Any

from kcc_shared.events import (
    CHANNELS,
    PRIORITIES,
    QUESTION_MAX_LENGTH,
    REASON_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TAGS_MAX,
    TEXT_MAX_LENGTH,
)
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates,
    validates_schema,
)

from intake.reference import MalformedReference, looks_like_reference
from intake.reference import parse as parse_reference

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
SEARCH_MAX_LENGTH = 200
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


class ClarificationSchema(_Strict):
    text = fields.String(
        required=True,
        validate=validate.Length(min=1, max=TEXT_MAX_LENGTH),
        metadata={
            "description": "The agent's answer to the department's question. Citizen service "
            "numbers (BSN) are replaced with [BSN].",
            "example": "Meneer heeft de aanvraag op 3 maart digitaal ingediend.",
        },
    )

    @validates("text")
    def _not_blank(self, value: str, **_: object) -> None:
        if not value.strip():
            raise ValidationError("The answer is empty.")


class StrictBoolean(fields.Boolean):
    """JSON true/false only (marshmallow's Boolean also takes "yes", 1 and "on")."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class RatingSchema(_Strict):
    score = fields.Integer(
        required=True,
        strict=True,
        validate=validate.Range(min=1, max=5),
        metadata={"description": "1 (poor) to 5 (excellent)."},
    )
    thanks = StrictBoolean(
        load_default=False, metadata={"description": "Say thank you to the department."}
    )
    comment = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=REASON_MAX_LENGTH),
        metadata={
            "description": "Optional; required with reopen (the department reads it). Citizen "
            "service numbers are replaced with [BSN]."
        },
    )
    reopen = StrictBoolean(
        load_default=False,
        metadata={
            "description": "Send the request back to the department that answered it. Only "
            "with a score of 1 or 2, and with a comment saying what is missing."
        },
    )

    @validates("comment")
    def _comment_not_blank(self, value: str | None, **_: object) -> None:
        if value is not None and not value.strip():
            raise ValidationError("The comment is empty; leave it out or write something.")

    @validates_schema
    def _reopen_rules(self, data: dict[str, object], **_: object) -> None:
        if not data.get("reopen"):
            return
        errors: dict[str, list[str]] = {}
        score = data.get("score")
        if isinstance(score, int) and score > 2:
            errors["reopen"] = ["Only a score of 1 or 2 can reopen the request."]
        comment = data.get("comment")
        if not (isinstance(comment, str) and comment.strip()):
            errors["comment"] = ["Say what is missing: the department reads this comment."]
        if errors:
            raise ValidationError(errors)


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
    q = fields.String(
        load_default=None,
        validate=validate.Length(min=2, max=SEARCH_MAX_LENGTH),
        metadata={
            "description": "Words in the question or the citizen reference (any case). Text "
            "that starts like a reference (KV-2026-...) must be a whole one, else 400."
        },
    )
    reference = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=SEARCH_MAX_LENGTH),
        metadata={
            "description": "One request by its reference, e.g. KV-2026-004217 (any case, "
            "leading zeros optional); a malformed reference is 400.",
            "example": "KV-2026-004217",
        },
    )
    citizen_ref = fields.String(
        load_default=None,
        validate=validate.Length(min=1, max=64),
        metadata={"description": "Requests with exactly this citizen reference."},
    )
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    page_size = fields.Integer(load_default=25, validate=validate.Range(min=1, max=PAGE_SIZE_MAX))

    @validates("reference")
    def _a_reference(self, value: str | None, **_: object) -> None:
        if value is None:
            return
        try:
            parse_reference(value)
        except MalformedReference as exc:
            raise ValidationError(str(exc).capitalize() + ".") from None

    @validates("q")
    def _whole_reference(self, value: str | None, **_: object) -> None:
        if value is not None and looks_like_reference(value):
            try:
                parse_reference(value)
            except MalformedReference as exc:
                raise ValidationError(str(exc).capitalize() + ".") from None


class ActorSchema(Schema):
    kind = fields.String()
    id = fields.String()


class TimelineEntrySchema(Schema):
    event_id = fields.String()
    type = fields.String()
    occurred_at = fields.AwareDateTime()
    actor = fields.Nested(ActorSchema)
    details = fields.Dict(
        metadata={
            "description": "What of the event the agent needs. For request.routed: "
            "department, from_department, handoff_count, due times, reason (a code for "
            "programs; show explanation instead), explanation (why, a Dutch sentence for "
            "people; absent in older events), similar (up to 3 earlier questions of that "
            "department that resemble this one), decider (rule, category, model, fallback "
            "or staff) and confidence (the model's certainty, 0-1, when it was asked)."
        }
    )


class LinksSchema(Schema):
    self = fields.String()
    cancel = fields.String()
    clarification = fields.String()
    rating = fields.String()


class ExpectedAnswerSchema(Schema):
    class Meta:
        ordered = True

    state = fields.String(
        metadata={
            "enum": ["pending", "on_time", "late", "paused", "no_norm", "answered", "cancelled"],
            "description": "pending: not routed yet; on_time/late: the department's clock "
            "runs; paused: it stands still until the clarification is answered; no_norm: the "
            "department has no target; answered/cancelled: when that happened is in text.",
        }
    )
    text = fields.String(
        metadata={
            "description": "In Dutch, to read out to the citizen.",
            "example": "Uiterlijk donderdag 3 december vóór 12:00",
        }
    )
    due = fields.AwareDateTime(
        allow_none=True, metadata={"description": "When the answer is due (clock running)."}
    )
    business_seconds_left = fields.Integer(
        allow_none=True,
        metadata={"description": "Business seconds left on the clock (negative: late)."},
    )


class RequestSchema(Schema):
    class Meta:
        ordered = True

    id = fields.String()
    reference = fields.String(
        allow_none=True,
        metadata={
            "description": "Short reference to read out (prefix, year, number per year), "
            "given at filing.",
            "example": "KV-2026-004217",
        },
    )
    expected_answer = fields.Nested(
        ExpectedAnswerSchema,
        metadata={
            "description": "When the citizen can expect an answer, from the department's "
            "SLA clock in its business time."
        },
    )
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


class SuggestionQueryArgsSchema(_Strict):
    q = fields.String(
        required=True,
        validate=validate.Length(
            min=QUESTION_MIN_LENGTH,
            max=QUESTION_MAX_LENGTH,
            error="Send the question as typed so far, {min} to {max} characters: shorter "
            "says too little to find a similar one, longer is not a question.",
        ),
        error_messages={"required": "Send the question as typed so far in q."},
        metadata={
            "description": "The question as typed so far (10 to 4000 characters; a citizen "
            "service number is ignored). Nothing of it is stored or logged.",
            "example": "Mijn container is vanochtend niet geleegd, wanneer komen ze terug?",
        },
    )


class SuggestionSchema(Schema):
    request_id = fields.String(
        metadata={"description": "The earlier, answered request: POST .../{request_id}/used."}
    )
    question = fields.String(metadata={"description": "The earlier question (redacted)."})
    answer = fields.String(metadata={"description": "The department's reusable answer."})
    department = fields.Nested(DepartmentSchema)
    answered_on = fields.Date(metadata={"description": "The day it was answered (Dutch time)."})
    score = fields.Float(
        metadata={
            "description": "How alike the questions are (cosine of their meanings, 0.82-1): "
            "it ranks, it does not prove; the reader judges whether the answer fits."
        }
    )


class SuggestionListSchema(Schema):
    suggestions = fields.List(
        fields.Nested(SuggestionSchema),
        metadata={"description": "At most 3, most alike first; empty when none is close."},
    )


class ReuseSchema(Schema):
    request_id = fields.String(metadata={"description": "The answer's request."})
    department = fields.Nested(DepartmentSchema)
    recorded_at = fields.AwareDateTime(
        metadata={"description": "When the use was counted (UTC); a replay gives the first."}
    )
