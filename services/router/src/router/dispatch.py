"""Dispatch: one submitted or reroute event in, the one routed event it causes out (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from kcc_shared.events import SYSTEM, Event, derived_event_id

from router.rules import Decision, RuleSet

__all__ = [
    "DEFAULT_PRIORITY",
    "ROUTED_PURPOSE",
    "DispatchRefused",
    "NoForwardTarget",
    "NotRoutable",
    "UnknownDepartment",
    "dispatch",
]

# The purpose string of derived_event_id: the routed event's id is uuid5(input id, this), so a
# redelivered input yields the same routed id and downstream consumers can dedupe on it.
ROUTED_PURPOSE: Final = "routed"
# A reroute event from an older backoffice may lack the request's priority.
DEFAULT_PRIORITY: Final = "normal"


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


def dispatch(event: Event, ruleset: RuleSet, *, now: datetime) -> Event:
    """The request.routed event for a request.submitted or request.reroute_requested event.

    The ruleset carries the organisation it was compiled from, so rules, departments and
    calendars always agree. `now` becomes the routed event's occurred_at; its id is derived
    from the input's, and the due times run from the input's occurred_at in the target
    department's business calendar. Raises a DispatchRefused subclass when it cannot route.
    """
    if event.type == "request.submitted":
        data = _submitted(event.data, ruleset)
    elif event.type == "request.reroute_requested":
        data = _rerouted(event.data, ruleset)
    else:
        raise NotRoutable(f"the router does not route {event.type} events")
    organisation = ruleset.organisation
    department = data["department"]
    target = organisation.sla_for(department, data["priority"])
    calendar = organisation.calendar_for(department)
    data["first_response_due"] = calendar.add_business_seconds(
        event.occurred_at, target.first_response_s
    )
    data["resolution_due"] = calendar.add_business_seconds(event.occurred_at, target.resolution_s)
    # Note: built directly, not with new_event(), whose schema round trip (load of a dump)
    # took 135 us of the router's ~400 us per message. The values are valid by construction
    # (departments and priorities checked above, times aware); the unit tests hold every path
    # to the contract with parse_event(routed.to_json()).
    return Event(
        id=derived_event_id(event.id, ROUTED_PURPOSE),
        type="request.routed",
        occurred_at=now.astimezone(UTC),
        request_id=event.request_id,
        correlation_id=event.correlation_id,
        actor=SYSTEM,
        data=data,
    )


def _submitted(data: Mapping[str, Any], ruleset: RuleSet) -> dict[str, Any]:
    decision = ruleset.route(data["question"], data.get("category"))
    _check_known(decision.department, ruleset)
    return _from_decision(decision, data["priority"], handoff_count=0, from_department=None)


def _rerouted(data: Mapping[str, Any], ruleset: RuleSet) -> dict[str, Any]:
    departments = ruleset.organisation.departments
    from_department: str = data["from_department"]
    to_department: str | None = data.get("to_department")
    priority: str = data.get("priority") or DEFAULT_PRIORITY
    handoff_count = (data.get("handoff_count") or 0) + 1

    if to_department is not None and to_department != from_department:
        if to_department not in departments:
            raise UnknownDepartment(
                f"forward from {from_department} to unknown department {to_department!r}"
            )
        return {
            "department": to_department,
            "from_department": from_department,
            "rule_id": None,
            "rules_version": ruleset.version,
            "reason": "forward",
            "priority": priority,
            "handoff_count": handoff_count,
            "matched": [],
        }

    # No usable target: let the rules pick, skipping the department that gave it away.
    question = data.get("question")
    if question:
        decision = ruleset.route(question, data.get("category"), frozenset({from_department}))
        department = decision.department
    else:
        decision, department = None, ruleset.organisation.fallback_department
    if department == from_department:
        # Only the fallback department can come back here (the rules never exclude it).
        raise NoForwardTarget(
            f"forward from {from_department} names no other department and no rule matches "
            "another one; forward with a to_department"
        )
    _check_known(department, ruleset)
    if decision is None:
        return {
            "department": department,
            "from_department": from_department,
            "rule_id": None,
            "rules_version": ruleset.version,
            "reason": "forward",
            "priority": priority,
            "handoff_count": handoff_count,
            "matched": [],
        }
    routed = _from_decision(
        decision, priority, handoff_count=handoff_count, from_department=from_department
    )
    routed["reason"] = "forward"
    return routed


def _from_decision(
    decision: Decision, priority: str, *, handoff_count: int, from_department: str | None
) -> dict[str, Any]:
    return {
        "department": decision.department,
        "from_department": from_department,
        "rule_id": decision.rule_id,
        "rules_version": decision.rules_version,
        "reason": decision.reason,
        "priority": decision.apply_priority(priority),
        "handoff_count": handoff_count,
        "matched": list(decision.matched),
    }


def _check_known(department: str, ruleset: RuleSet) -> None:
    if department not in ruleset.organisation.departments:
        raise UnknownDepartment(f"the rules chose unknown department {department!r}")
