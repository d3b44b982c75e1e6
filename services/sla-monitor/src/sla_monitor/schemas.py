"""Schemas of the SLA summary API."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from sla_monitor.store import WINDOWS


class SummaryQueryArgsSchema(Schema):
    window = fields.String(
        load_default="1d",
        validate=validate.OneOf(tuple(WINDOWS)),
        metadata={"description": "How far back closed clocks, breaches, handoffs and ratings go."},
    )


class ClockSummarySchema(Schema):
    met = fields.Integer(metadata={"description": "Clocks closed within target in the window."})
    breached = fields.Integer(metadata={"description": "Closed clocks past their target."})
    compliance = fields.Float(
        allow_none=True, metadata={"description": "met / (met + breached); null without data."}
    )
    median_seconds = fields.Float(allow_none=True, metadata={"description": "Business seconds."})
    p90_seconds = fields.Float(allow_none=True, metadata={"description": "Business seconds."})


class ClocksSchema(Schema):
    first_response = fields.Nested(ClockSummarySchema)
    resolution = fields.Nested(ClockSummarySchema)


class OpenSchema(Schema):
    waiting = fields.Integer()
    claimed = fields.Integer()
    awaiting_clarification = fields.Integer()


class DepartmentSummarySchema(Schema):
    department = fields.String()
    name = fields.String()
    clocks = fields.Nested(ClocksSchema)
    open = fields.Nested(OpenSchema, metadata={"description": "Open now, by state."})
    open_total = fields.Integer()
    oldest_open_seconds = fields.Float(
        metadata={"description": "Business seconds the oldest open request has been here."}
    )
    breaches = fields.Integer(metadata={"description": "Targets passed in the window."})
    handoffs_in = fields.Integer()
    handoffs_out = fields.Integer()
    ratings = fields.Integer()
    average_rating = fields.Float(allow_none=True)
    thanks = fields.Integer()


class SummarySchema(Schema):
    window = fields.String()
    generated_at = fields.AwareDateTime()
    departments = fields.List(fields.Nested(DepartmentSummarySchema))
