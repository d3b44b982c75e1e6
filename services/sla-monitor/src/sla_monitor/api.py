"""The SLA summary API: per department compliance, percentiles, open work and satisfaction;
and per department the questions that are late or at risk now."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from kcc_shared.api import BEARER, Blueprint, errors, requires
from kcc_shared.problems import NotFound

from sla_monitor.errors import UnknownDepartment
from sla_monitor.schemas import LateQuestionsSchema, SummaryQueryArgsSchema, SummarySchema
from sla_monitor.summary import current

summary_blp = Blueprint(
    "sla",
    __name__,
    url_prefix="/api/v1/sla",
    description="SLA figures per department, for operations.",
)


@summary_blp.route("/summary")
class SummaryView(MethodView):
    @summary_blp.doc(security=BEARER)
    @requires("ops", "admin")
    @summary_blp.arguments(SummaryQueryArgsSchema, location="query")
    @summary_blp.response(200, SummarySchema)
    @errors(summary_blp, 400, 401, 403)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Per department and in total: compliance per clock (an open clock past its target
        counts as breached), at-risk clocks, median and p90, open, late and at-risk questions,
        oldest, breaches, handoffs in and out, average rating and thanks; per pair of
        departments the time questions sat before a forward; per KCC team questions filed,
        clarifications asked back and ratings given; over `window`."""
        return current().summary(args["window"])


@summary_blp.route("/departments/<string:department>/late")
class LateQuestionsView(MethodView):
    @summary_blp.doc(security=BEARER)
    @requires("ops", "admin")
    @summary_blp.response(200, LateQuestionsSchema)
    @errors(summary_blp, 401, 403, 404)
    def get(self, department: str) -> dict[str, Any]:
        """The department's open questions past their norm (late) or past the warning
        threshold (at_risk) now, late first, with who has each since when and its back-office
        link."""
        try:
            return current().late_questions(department)
        except UnknownDepartment:
            raise NotFound(f"unknown department: {department[:64]!r}") from None
