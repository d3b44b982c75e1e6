"""What staff send and get back: the back-office API's schemas."""

from __future__ import annotations

from kcc_shared.events import PRIORITIES, REASON_MAX_LENGTH, TEXT_MAX_LENGTH
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates

from backoffice.inbox import LISTABLE_STATES, SLA_STATES

TEXT_MIN_LENGTH = 2


class _Strict(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("The text is empty.")


def _text(max_length: int, description: str) -> fields.String:
    """Free text from staff, not blank (BSNs are redacted before anything is stored)."""
    return fields.String(
        required=True,
        validate=[validate.Length(min=TEXT_MIN_LENGTH, max=max_length), _not_blank],
        metadata={"description": description},
    )


class InboxQueryArgsSchema(_Strict):
    state = fields.List(
        fields.String(validate=validate.OneOf(LISTABLE_STATES)),
        load_default=list,
        metadata={
            "description": "Repeatable; default: the open states (waiting, claimed, "
            "awaiting_clarification)."
        },
    )
    priority = fields.String(load_default=None, validate=validate.OneOf(PRIORITIES))
    overdue = fields.Boolean(
        load_default=False, metadata={"description": "Only items past their deadline."}
    )
    mine = fields.Boolean(load_default=False, metadata={"description": "Only items I hold."})


class SlaSchema(Schema):
    state = fields.String(validate=validate.OneOf(SLA_STATES))
    due = fields.AwareDateTime(
        metadata={"description": "The deadline that matters now, moved by clarification pauses."}
    )
    clock = fields.String(validate=validate.OneOf(("first_response", "resolution")))


class TimelineEntrySchema(Schema):
    event_id = fields.String()
    type = fields.String()
    occurred_at = fields.AwareDateTime()
    actor = fields.Dict(keys=fields.String(), values=fields.String())
    details = fields.Dict(
        keys=fields.String(),
        metadata={
            "description": "What of the event staff need. For request.routed: department, "
            "from_department, priority, handoff_count, reason (a code for programs; show "
            "explanation instead), explanation (why it came here, a Dutch sentence for people; "
            "absent in older events), similar (up to 3 earlier questions of the department "
            "that resemble this one), decider (rule, category, model, fallback or staff) and "
            "confidence (the model's certainty, 0-1, when it was asked)."
        },
    )


class ItemSchema(Schema):
    class Meta:
        ordered = True

    request_id = fields.String()
    state = fields.String()
    department = fields.String()
    question = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    channel = fields.String(allow_none=True)
    agent_id = fields.String(allow_none=True)
    team = fields.String(allow_none=True)
    priority = fields.String()
    handoff_count = fields.Integer()
    from_department = fields.String(allow_none=True)
    routed_at = fields.AwareDateTime(allow_none=True)
    first_response_due = fields.AwareDateTime(allow_none=True)
    resolution_due = fields.AwareDateTime(allow_none=True)
    claimed_by = fields.String(allow_none=True)
    claimed_at = fields.AwareDateTime(allow_none=True)
    clarification_question = fields.String(allow_none=True)
    answer = fields.String(allow_none=True)
    answered_by = fields.String(allow_none=True)
    answered_at = fields.AwareDateTime(allow_none=True)
    rating = fields.Integer(allow_none=True)
    reusable = fields.Boolean(
        metadata={
            "description": "The answer is offered to KCC-medewerkers as a suggestion for "
            "similar questions (general answers only, never about one citizen)."
        }
    )
    sla = fields.Nested(SlaSchema, allow_none=True)
    links = fields.Dict(keys=fields.String(), values=fields.String())


class ItemDetailSchema(ItemSchema):
    timeline = fields.List(fields.Nested(TimelineEntrySchema))
    group = fields.List(
        fields.String(),
        metadata={
            "description": "The suggested group of similar open questions this one is in "
            "(request ids in order of arrival, itself included; empty when in none). Answer "
            "them together with `also_answer`; take one out with POST .../ungroup."
        },
    )


class InboxSchema(Schema):
    department = fields.String()
    total = fields.Integer()
    items = fields.List(fields.Nested(ItemSchema))


class AnswerSchema(_Strict):
    text = _text(TEXT_MAX_LENGTH, "The answer the agent will read.")
    reusable = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Offer the answer to KCC-medewerkers as a suggestion for similar "
            "questions. Only for a general answer, never about one citizen; default false."
        },
    )
    also_answer = fields.List(
        fields.UUID(),
        load_default=list,
        validate=validate.Length(max=50),
        metadata={
            "description": "Other questions of this one's group (see `group`) to answer with "
            "the same text: each gets its own answer event, clock and rating. All or none: "
            "409 when one is not in the group now or cannot be answered by you."
        },
    )


class ReuseSchema(_Strict):
    reusable = fields.Boolean(
        required=True,
        metadata={"description": "true: offer the answer for reuse; false: withdraw it."},
    )


class SimilarAnswerSchema(Schema):
    class Meta:
        ordered = True

    request_id = fields.String()
    department = fields.String()
    question = fields.String()
    answer = fields.String()
    answered_by = fields.String(allow_none=True)
    answered_at = fields.AwareDateTime(allow_none=True)
    reusable = fields.Boolean()
    score = fields.Float(metadata={"description": "Closeness of meaning, 0-1."})


class SimilarAnswersSchema(Schema):
    items = fields.List(fields.Nested(SimilarAnswerSchema))


class ClarificationRequestSchema(_Strict):
    text = _text(TEXT_MAX_LENGTH, "The question back to the agent.")


class ForwardSchema(_Strict):
    to_department = fields.String(
        load_default=None,
        allow_none=True,
        metadata={
            "description": "The department to hand it to; null lets the routing rules "
            "choose (never this department)."
        },
    )
    reason = _text(REASON_MAX_LENGTH, "Why it is not ours.")

    @validates("to_department")
    def _shape(self, value: str | None, **_: object) -> None:
        if value is not None and not value.strip():
            raise ValidationError("Name a department or send null.")
