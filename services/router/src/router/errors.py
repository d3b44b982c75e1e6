"""The router's exceptions, in one place: what refuses an event, a model file or a batch."""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "DispatchRefused",
    "ModelError",
    "NoForwardTarget",
    "NotReady",
    "NotRoutable",
    "PublishRefused",
    "UnknownDepartment",
]


class DispatchRefused(Exception):
    """A valid event the router will not route; `code` is stable, `detail` says why in words."""

    code: ClassVar[str] = "refused"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def reason(self) -> str:
        """The dead-letter reason: the code, then the detail (ids only, never request text)."""
        return f"{self.code}: {self.detail}"


class NotRoutable(DispatchRefused):
    """An event type the router does not route (only submitted and reroute_requested)."""

    code = "not_routable"


class UnknownDepartment(DispatchRefused):
    """A forward names a department the organisation file does not have."""

    code = "unknown_department"


class NoForwardTarget(DispatchRefused):
    """A forward without a target from the fallback department, and no rule names another."""

    code = "no_forward_target"


class ModelError(Exception):
    """A model file that cannot be used: unreadable, corrupt, of another format or mismatched."""


class NotReady(Exception):
    """A readiness check failed."""


class PublishRefused(Exception):
    """The broker confirmed the batch but refused this message (e.g. no queue bound)."""
