"""Dispatch: one submitted or reroute event in, the one routed event it causes out (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from kcc_shared.events import SYSTEM, Event, derived_event_id

from router.decision import Decider, Query, RoutingDecision
from router.errors import NoForwardTarget, NotRoutable, UnknownDepartment

__all__ = [
    "DEFAULT_PRIORITY",
    "ROUTED_PURPOSE",
    "dispatch",
    "query_for",
]

# The purpose string of derived_event_id: the routed event's id is uuid5(input id, this), so a
# redelivered input yields the same routed id and downstream consumers can dedupe on it.
ROUTED_PURPOSE: Final = "routed"
# A reroute event from an older backoffice may lack the request's priority.
DEFAULT_PRIORITY: Final = "normal"


def query_for(event: Event) -> Query | None:
    """What the deciders must decide for this event, or None when nothing is to decide (a
    forward that names its target or carries no question; another event type)."""
    data = event.data
    if event.type == "request.submitted":
        return Query(data["question"], data.get("category"))
    if event.type == "request.reroute_requested":
        target = data.get("to_department")
        if target is not None and target != data["from_department"]:
            return None
        question = data.get("question")
        if question:
            return Query(question, data.get("category"), frozenset({data["from_department"]}))
    return None


def dispatch(
    event: Event,
    decider: Decider,
    *,
    now: datetime,
    decision: RoutingDecision | None = None,
) -> Event:
    """The request.routed event for a request.submitted or request.reroute_requested event.

    The decider carries the organisation its rules were compiled from, so rules, departments
    and calendars always agree. ``decision`` is the decider's answer to ``query_for(event)``
    when the caller decided a whole batch at once; without it the decider is asked here.
    ``now`` becomes the routed event's occurred_at; its id is derived from the input's, and the
    due times run from the input's occurred_at in the target department's business calendar.
    Raises a DispatchRefused subclass when it cannot route.
    """
    if decision is None:
        query = query_for(event)
        decision = decider.decide(query) if query is not None else None
    if event.type == "request.submitted":
        assert decision is not None
        data = _submitted(event.data, decision, decider)
    elif event.type == "request.reroute_requested":
        data = _rerouted(event.data, decision, decider)
    else:
        raise NotRoutable(f"the router does not route {event.type} events")
    organisation = decider.organisation
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


def _submitted(
    data: Mapping[str, Any], decision: RoutingDecision, decider: Decider
) -> dict[str, Any]:
    _check_known(decision.department, decider)
    return _from_decision(decision, data["priority"], handoff_count=0, from_department=None)


def _rerouted(
    data: Mapping[str, Any], decision: RoutingDecision | None, decider: Decider
) -> dict[str, Any]:
    organisation = decider.organisation
    from_department: str = data["from_department"]
    to_department: str | None = data.get("to_department")
    priority: str = data.get("priority") or DEFAULT_PRIORITY
    handoff_count = (data.get("handoff_count") or 0) + 1

    if to_department is not None and to_department != from_department:
        if to_department not in organisation.departments:
            raise UnknownDepartment(
                f"forward from {from_department} to unknown department {to_department!r}"
            )
        return _forward(
            to_department,
            from_department,
            priority,
            handoff_count,
            decider,
            decider_name="staff",
            explanation=(
                f"Doorgestuurd door {decider.name(from_department)} naar "
                f"{decider.name(to_department)}"
            ),
        )

    # No usable target: the deciders pick, skipping the department that gave it away.
    department = decision.department if decision is not None else organisation.fallback_department
    if department == from_department:
        # Only the fallback department can come back here (the rules never exclude it).
        raise NoForwardTarget(
            f"forward from {from_department} names no other department and no rule matches "
            "another one; forward with a to_department"
        )
    _check_known(department, decider)
    if decision is None:
        return _forward(
            department,
            from_department,
            priority,
            handoff_count,
            decider,
            decider_name="fallback",
            explanation=(
                f"Doorgestuurd door {decider.name(from_department)} zonder vraagtekst; "
                f"{decider.name(department)} kiest de afdeling"
            ),
        )
    routed = _from_decision(
        decision, priority, handoff_count=handoff_count, from_department=from_department
    )
    routed["reason"] = "forward"
    routed["explanation"] = (
        f"Doorgestuurd door {decider.name(from_department)}. {decision.explanation}"
    )
    return routed


def _forward(
    department: str,
    from_department: str,
    priority: str,
    handoff_count: int,
    decider: Decider,
    *,
    decider_name: str,
    explanation: str,
) -> dict[str, Any]:
    return {
        "department": department,
        "from_department": from_department,
        "rule_id": None,
        "rules_version": decider.ruleset.version,
        "reason": "forward",
        "decider": decider_name,
        "model_version": decider.model_version,
        "confidence": None,
        "explanation": explanation,
        "similar": [],
        "priority": priority,
        "handoff_count": handoff_count,
        "matched": [],
    }


def _from_decision(
    decision: RoutingDecision, priority: str, *, handoff_count: int, from_department: str | None
) -> dict[str, Any]:
    return {
        "department": decision.department,
        "from_department": from_department,
        "rule_id": decision.rule_id,
        "rules_version": decision.rules_version,
        "reason": decision.reason,
        "decider": decision.reason,
        "model_version": decision.model_version,
        "confidence": decision.confidence,
        "explanation": decision.explanation,
        "similar": list(decision.similar),
        "priority": decision.apply_priority(priority),
        "handoff_count": handoff_count,
        "matched": list(decision.matched),
    }


def _check_known(department: str, decider: Decider) -> None:
    if department not in decider.organisation.departments:
        raise UnknownDepartment(f"the rules chose unknown department {department!r}")
