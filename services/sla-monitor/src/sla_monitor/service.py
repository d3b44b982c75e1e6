"""What the SLA monitor's HTTP side needs: the store, the organisation and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from kcc_shared.organisation import Organisation

from sla_monitor.store import SlaStore

CONTEXT_EXTENSION: Final = "kcc.sla_monitor"
# Where the drill-down links a question to: the back office's item page, `<base>/items/<id>`.
# `kcc dev` (and a reverse proxy that serves the pages under one host) mounts the back office at
# /backoffice; create_app takes another base.
DEFAULT_BACKOFFICE_URL: Final = "/backoffice"


class UnknownDepartment(LookupError):
    """A drill-down for a department the organisation does not have."""


@dataclass(frozen=True)
class SlaContext:
    store: SlaStore
    organisation: Organisation
    clock: Callable[[], datetime]
    backoffice_url: str = DEFAULT_BACKOFFICE_URL

    def summary(self, window: str) -> dict[str, Any]:
        now = self.clock()
        departments, totals = self.store.summary_and_totals(window, now)
        return {
            "window": window,
            "generated_at": now,
            "departments": departments,
            "totals": totals,
            "handoff_times": self.store.handoff_times(window, now),
            "teams": self.store.team_figures(window, now),
        }

    def late_questions(self, department: str) -> dict[str, Any]:
        """The drill-down of one department: its late and at-risk open questions."""
        known = self.organisation.departments.get(department)
        if known is None:
            raise UnknownDepartment(department)
        now = self.clock()
        questions = self.store.late_questions(department, now)
        for question in questions:
            question["item_url"] = f"{self.backoffice_url}/items/{question['request_id']}"
        return {
            "department": department,
            "name": known.name,
            "generated_at": now,
            "questions": questions,
        }
