"""The SLA summary API: per department compliance, percentiles, open work and satisfaction."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from kcc_shared.api import BEARER, Blueprint, errors, requires

from sla_monitor.schemas import SummaryQueryArgsSchema, SummarySchema
from sla_monitor.service import CONTEXT_EXTENSION, SlaContext

summary_blp = Blueprint(
    "sla",
    __name__,
    url_prefix="/api/v1/sla",
    description="SLA figures per department, for operations.",
)


def _context() -> SlaContext:
    context: SlaContext = current_app.extensions[CONTEXT_EXTENSION]
    return context


@summary_blp.route("/summary")
class SummaryView(MethodView):
    @summary_blp.doc(security=BEARER)
    @requires("ops", "admin")
    @summary_blp.arguments(SummaryQueryArgsSchema, location="query")
    @summary_blp.response(200, SummarySchema)
    @errors(summary_blp, 400, 401, 403)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Per department: compliance per clock, median and p90, open, oldest, breaches,
        handoffs in and out, average rating and thanks, over `window`."""
        return _context().summary(args["window"])
