"""The SLA monitor's exceptions, in one place: what its API and overview pages refuse."""

from __future__ import annotations

from kcc_shared.problems import Problem

__all__ = ["PageError", "PageUnavailable", "UnknownDepartment"]


class UnknownDepartment(LookupError):
    """A drill-down for a department the organisation does not have."""


class PageUnavailable(Problem):
    status, title, slug = 503, "SLA overview not configured", "sla-page-unavailable"


class PageError(Exception):
    """A page request the overview refuses: shown as a Dutch page with this status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message
