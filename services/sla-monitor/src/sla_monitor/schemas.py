"""Schemas of the SLA summary API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from sla_monitor.summary import WINDOWS


class SummaryQueryArgsSchema(Schema):
    window = fields.String(
        load_default="1d",
        validate=validate.OneOf(tuple(WINDOWS)),
        metadata={"description": "How far back closed clocks, breaches, handoffs and ratings go."},
    )


class ClockSummarySchema(Schema):
    met = fields.Integer(metadata={"description": "Clocks closed within target in the window."})
    breached = fields.Integer(metadata={"description": "Closed clocks past their target."})
    open_breached = fields.Integer(
        metadata={
            "description": "Clocks still open now and already past their target: breached, "
            "whatever happens next (not limited to the window)."
        }
    )
    at_risk = fields.Integer(
        metadata={
            "description": "Clocks open now past the department's warning threshold "
            "(warning_ratio * target) and not yet past the target."
        }
    )
    compliance = fields.Float(
        allow_none=True,
        metadata={
            "description": "met / (met + breached + open_breached): a question still open past "
            "its deadline counts as breached. null without data."
        },
    )
    median_seconds = fields.Float(
        allow_none=True, metadata={"description": "Business seconds, clocks closed in the window."}
    )
    p90_seconds = fields.Float(
        allow_none=True, metadata={"description": "Business seconds, clocks closed in the window."}
    )


class ClocksSchema(Schema):
    first_response = fields.Nested(ClockSummarySchema)
    resolution = fields.Nested(ClockSummarySchema)


class OpenSchema(Schema):
    waiting = fields.Integer()
    claimed = fields.Integer()
    awaiting_clarification = fields.Integer()


class FiguresSchema(Schema):
    clocks = fields.Nested(ClocksSchema)
    open = fields.Nested(OpenSchema, metadata={"description": "Open now, by state."})
    open_total = fields.Integer()
    oldest_open_seconds = fields.Float(
        metadata={"description": "Business seconds the oldest open request has been here."}
    )
    late = fields.Integer(
        metadata={"description": "Open questions now with a clock past its target."}
    )
    at_risk = fields.Integer(
        metadata={"description": "Open questions now past a warning threshold, none past a target."}
    )
    breaches = fields.Integer(metadata={"description": "Targets passed in the window."})
    handoffs_in = fields.Integer()
    handoffs_out = fields.Integer()
    ratings = fields.Integer()
    average_rating = fields.Float(allow_none=True)
    thanks = fields.Integer()
    answered_without_handoff = fields.Integer(
        metadata={
            "description": "Citizens a KCC-medewerker answered in the window with one of the "
            "department's reusable answers, without filing a question "
            "(request.answer_reused; 'beantwoord zonder doorzetten')."
        }
    )


class DepartmentSummarySchema(FiguresSchema):
    department = fields.String()
    name = fields.String()


class HandoffTimeSchema(Schema):
    from_department = fields.String()
    from_name = fields.String()
    to_department = fields.String()
    to_name = fields.String()
    handoffs = fields.Integer(metadata={"description": "Forwards in the window."})
    median_seconds = fields.Float(
        allow_none=True,
        metadata={
            "description": "Business seconds the questions sat at from_department (pauses "
            "excluded) before it forwarded them."
        },
    )
    p90_seconds = fields.Float(allow_none=True)


class TeamSchema(Schema):
    team = fields.String(allow_none=True, metadata={"description": "null: no team known."})
    filed = fields.Integer(metadata={"description": "Questions submitted in the window."})
    clarifications = fields.Integer(
        metadata={"description": "Clarifications departments asked back, in the window."}
    )
    ratings = fields.Integer(metadata={"description": "Ratings the team gave, in the window."})


class SummarySchema(Schema):
    window = fields.String()
    generated_at = fields.AwareDateTime()
    departments = fields.List(fields.Nested(DepartmentSummarySchema))
    totals = fields.Nested(FiguresSchema, metadata={"description": "All departments together."})
    handoff_times = fields.List(
        fields.Nested(HandoffTimeSchema), metadata={"description": "Slowest (p90) first."}
    )
    teams = fields.List(fields.Nested(TeamSchema))


class LateClockSchema(Schema):
    clock = fields.String(metadata={"description": "first_response or resolution."})
    level = fields.String(metadata={"description": "late or at_risk."})
    elapsed_seconds = fields.Float(metadata={"description": "Business seconds now."})
    target_seconds = fields.Integer()


class LateQuestionSchema(Schema):
    request_id = fields.String()
    level = fields.String(metadata={"description": "late (a clock past its target) or at_risk."})
    priority = fields.String()
    state = fields.String()
    arrived_at = fields.AwareDateTime(
        allow_none=True, metadata={"description": "Since when it is at this department."}
    )
    claimed_by = fields.String(
        allow_none=True, metadata={"description": "Staff id of who has it; null: nobody."}
    )
    claimed_at = fields.AwareDateTime(allow_none=True)
    item_url = fields.String(metadata={"description": "The back office's page of the item."})
    clocks = fields.List(fields.Nested(LateClockSchema))


class LateQuestionsSchema(Schema):
    department = fields.String()
    name = fields.String()
    generated_at = fields.AwareDateTime()
    questions = fields.List(fields.Nested(LateQuestionSchema))
