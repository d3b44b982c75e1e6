"""Dispatch: the routed event for a submitted or reroute event, and the named refusals."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kcc_shared.events import Actor, Event, derived_event_id, new_event, parse_event
from kcc_shared.organisation import load_organisation
from router.decision import Decider
from router.dispatch import dispatch
from router.errors import DispatchRefused, NoForwardTarget, NotRoutable, UnknownDepartment
from router.rules import RuleSet

ORGANISATION = """\
version: 1
organisation:
  name: Testgemeente
calendars:
  kantoor:
    timezone: Europe/Amsterdam
    opening_hours:
      monday: ["08:30-12:30", "13:00-17:00"]
      tuesday: ["08:30-12:30", "13:00-17:00"]
      wednesday: ["08:30-12:30", "13:00-17:00"]
      thursday: ["08:30-12:30", "13:00-17:00"]
      friday: ["08:30-12:30", "13:00-17:00"]
  buiten:
    timezone: Europe/Amsterdam
    opening_hours:
      monday: "07:00-16:00"
      tuesday: "07:00-16:00"
      wednesday: "07:00-16:00"
      thursday: "07:00-16:00"
      friday: "07:00-16:00"
departments:
  - id: burgerzaken
    name: Burgerzaken
    calendar: kantoor
    sla: &sla
      urgent: {first_response: 1h, resolution: 4h}
      high: {first_response: 2h, resolution: 8h}
      normal: {first_response: 4h, resolution: 16h}
      low: {first_response: 8h, resolution: 40h}
  - id: afval
    name: Afval
    calendar: buiten
    sla: *sla
  - id: belastingen
    name: Belastingen
    calendar: kantoor
    sla: *sla
  - id: kcc-triage
    name: KCC triage
    calendar: kantoor
    sla: *sla
fallback_department: kcc-triage
categories:
  - {id: documenten, label: Documenten, department: burgerzaken}
rules:
  - id: reisdocumenten
    department: burgerzaken
    categories: [documenten]
    keywords: [paspoort]
  - id: spoed-reisdocument
    department: burgerzaken
    phrases: [spoedaanvraag]
    priority: {raise_to: urgent}
  - id: afvalcontainer
    department: afval
    keywords: [container, grofvuil]
  - id: aanslag
    department: belastingen
    keywords: [aanslag, container]
"""

AGENT = Actor("agent", "agent-7")
# Friday 8 January 2027, 16:00 in Amsterdam (CET, UTC+1): one office hour left that day.
FRIDAY_4PM = datetime(2027, 1, 8, 15, 0, tzinfo=UTC)
NOW = datetime(2027, 1, 8, 15, 0, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory: pytest.TempPathFactory) -> Decider:
    path: Path = tmp_path_factory.mktemp("org") / "organisation.yaml"
    path.write_text(ORGANISATION)
    return Decider(RuleSet.from_organisation(load_organisation(path)))


def submitted(question: str, *, category: str | None = None, priority: str = "normal") -> Event:
    request_id = str(uuid.uuid4())
    return new_event(
        "request.submitted",
        request_id=request_id,
        actor=AGENT,
        correlation_id=str(uuid.uuid4()),
        occurred_at=FRIDAY_4PM,
        data={
            "question": question,
            "category": category,
            "priority": priority,
            "channel": "phone",
            "agent_id": "agent-7",
            "team": "team-a",
            "citizen_ref": None,
            "tags": [],
        },
    )


def reroute(**data: Any) -> Event:
    data.setdefault("reason", "hoort niet bij ons")
    return new_event(
        "request.reroute_requested",
        request_id=str(uuid.uuid4()),
        actor=Actor("staff", "staff-3"),
        correlation_id=str(uuid.uuid4()),
        occurred_at=FRIDAY_4PM,
        data=data,
    )


def test_submitted_question_is_routed_by_the_first_matching_rule(ruleset: Decider) -> None:
    event = submitted("Mijn paspoort is verlopen, wat nu?")

    routed = dispatch(event, ruleset, now=NOW)

    assert routed.type == "request.routed"
    assert routed.routing_key == "request.routed.burgerzaken"
    assert routed.data["department"] == "burgerzaken"
    assert routed.data["rule_id"] == "reisdocumenten"
    assert routed.data["reason"] == "rule"
    assert routed.data["rules_version"] == ruleset.ruleset.version
    assert routed.data["handoff_count"] == 0
    assert routed.data["from_department"] is None
    assert routed.data["priority"] == "normal"
    assert routed.data["matched"] == ["keyword paspoort"]


def test_routed_event_carries_the_input_ids(ruleset: Decider) -> None:
    event = submitted("Grofvuil ophalen")

    routed = dispatch(event, ruleset, now=NOW)

    assert routed.id == derived_event_id(event.id, "routed")
    assert routed.request_id == event.request_id
    assert routed.correlation_id == event.correlation_id
    assert routed.occurred_at == NOW
    assert routed.actor.kind == "system"


def test_same_input_twice_gives_the_same_routed_event_id(ruleset: Decider) -> None:
    event = submitted("Grofvuil ophalen")

    first = dispatch(event, ruleset, now=NOW)
    second = dispatch(event, ruleset, now=datetime(2027, 1, 8, 15, 5, tzinfo=UTC))

    assert first.id == second.id
    assert first.data == second.data


def test_routed_event_is_valid_on_the_wire(ruleset: Decider) -> None:
    routed = dispatch(submitted("Grofvuil ophalen", priority="low"), ruleset, now=NOW)

    parsed = parse_event(routed.to_json())

    assert parsed == routed


@pytest.mark.parametrize(
    ("question", "category", "department", "reason", "rule_id"),
    [
        ("Iets over documenten", "documenten", "burgerzaken", "category", "reisdocumenten"),
        ("De container is niet geleegd", None, "afval", "rule", "afvalcontainer"),
        ("Waar kan ik mijn fiets kwijt?", None, "kcc-triage", "fallback", None),
    ],
)
def test_reason_says_why(
    ruleset: Decider,
    question: str,
    category: str | None,
    department: str,
    reason: str,
    rule_id: str | None,
) -> None:
    routed = dispatch(submitted(question, category=category), ruleset, now=NOW)

    assert (routed.data["department"], routed.data["reason"], routed.data["rule_id"]) == (
        department,
        reason,
        rule_id,
    )


def test_due_times_run_in_the_departments_business_hours(ruleset: Decider) -> None:
    # normal: first response 4h, resolution 16h, office 08:30-12:30 and 13:00-17:00 on weekdays.
    routed = dispatch(submitted("paspoort verlopen"), ruleset, now=NOW)

    # Friday 16:00-17:00 is 1h; Monday 08:30-11:30 the other 3h: 11:30 CET is 10:30 UTC.
    assert routed.data["first_response_due"] == datetime(2027, 1, 11, 10, 30, tzinfo=UTC)
    calendar = ruleset.organisation.calendar_for("burgerzaken")
    assert routed.data["resolution_due"] == calendar.add_business_seconds(FRIDAY_4PM, 16 * 3600)


def test_due_times_use_the_target_departments_calendar(ruleset: Decider) -> None:
    # afval opens 07:00-16:00: on Friday 16:00 it is already closed, so 4h ends Monday 11:00.
    routed = dispatch(submitted("grofvuil"), ruleset, now=NOW)

    assert routed.data["first_response_due"] == datetime(2027, 1, 11, 10, 0, tzinfo=UTC)


def test_rule_raises_priority_and_due_times_follow_it(ruleset: Decider) -> None:
    routed = dispatch(submitted("kan er een spoedaanvraag?"), ruleset, now=NOW)

    assert routed.data["priority"] == "urgent"
    # urgent: first response 1h, Friday 16:00 -> 17:00 CET = 16:00 UTC.
    assert routed.data["first_response_due"] == datetime(2027, 1, 8, 16, 0, tzinfo=UTC)


def test_forward_to_a_named_department(ruleset: Decider) -> None:
    event = reroute(
        from_department="burgerzaken",
        to_department="belastingen",
        priority="high",
        handoff_count=2,
    )

    routed = dispatch(event, ruleset, now=NOW)

    assert routed.data["department"] == "belastingen"
    assert routed.data["from_department"] == "burgerzaken"
    assert routed.data["reason"] == "forward"
    assert routed.data["rule_id"] is None
    assert routed.data["handoff_count"] == 3
    assert routed.data["priority"] == "high"
    assert routed.id == derived_event_id(event.id, "routed")
    assert parse_event(routed.to_json()) == routed


def test_forward_without_target_reruns_the_rules_without_the_sender(ruleset: Decider) -> None:
    # "container" matches afval first; afval forwards it, so the next rule (belastingen) wins.
    event = reroute(
        from_department="afval",
        question="Vraag over de container",
        priority="normal",
        handoff_count=0,
    )

    routed = dispatch(event, ruleset, now=NOW)

    assert routed.data["department"] == "belastingen"
    assert routed.data["rule_id"] == "aanslag"
    assert routed.data["reason"] == "forward"
    assert routed.data["handoff_count"] == 1


def test_forward_to_itself_counts_as_no_target(ruleset: Decider) -> None:
    event = reroute(
        from_department="afval", to_department="afval", question="container", handoff_count=1
    )

    routed = dispatch(event, ruleset, now=NOW)

    assert routed.data["department"] == "belastingen"
    assert routed.data["handoff_count"] == 2


def test_forward_without_target_and_no_other_match_goes_to_the_fallback(
    ruleset: Decider,
) -> None:
    event = reroute(from_department="afval", question="grofvuil")

    routed = dispatch(event, ruleset, now=NOW)

    assert routed.data["department"] == "kcc-triage"
    assert routed.data["reason"] == "forward"


def test_forward_from_an_older_backoffice_uses_defaults(ruleset: Decider) -> None:
    # No question, priority or handoff count in the event: fallback, normal, first handoff.
    routed = dispatch(reroute(from_department="afval"), ruleset, now=NOW)

    assert routed.data["department"] == "kcc-triage"
    assert routed.data["priority"] == "normal"
    assert routed.data["handoff_count"] == 1


def test_forward_to_unknown_department_is_refused(ruleset: Decider) -> None:
    event = reroute(from_department="afval", to_department="sport")

    with pytest.raises(UnknownDepartment) as refused:
        dispatch(event, ruleset, now=NOW)

    assert refused.value.code == "unknown_department"
    assert refused.value.reason.startswith("unknown_department: ")
    assert "'sport'" in refused.value.reason


def test_forward_from_the_fallback_without_target_is_refused(ruleset: Decider) -> None:
    event = reroute(from_department="kcc-triage", question="iets onbekends")

    with pytest.raises(NoForwardTarget):
        dispatch(event, ruleset, now=NOW)


def test_other_event_types_are_not_routed(ruleset: Decider) -> None:
    event = new_event(
        "request.clarified",
        request_id=str(uuid.uuid4()),
        actor=AGENT,
        data={"text": "aanvulling"},
    )

    with pytest.raises(NotRoutable) as refused:
        dispatch(event, ruleset, now=NOW)

    assert isinstance(refused.value, DispatchRefused)
    assert refused.value.code == "not_routable"


@pytest.mark.parametrize(
    "make",
    [
        lambda: submitted("paspoort verlopen"),
        lambda: submitted("documenten", category="documenten"),
        lambda: submitted("kan er een spoedaanvraag?", priority="low"),
        lambda: submitted("iets heel anders"),
        lambda: reroute(from_department="afval", to_department="belastingen"),
        lambda: reroute(from_department="afval", question="container", handoff_count=4),
        lambda: reroute(from_department="afval"),
    ],
    ids=["rule", "category", "raised", "fallback", "forward", "forward-rules", "forward-bare"],
)
def test_every_routed_event_meets_the_contract(ruleset: Decider, make: Callable[[], Event]) -> None:
    # dispatch builds the event without new_event's schema round trip: hold it to the schema.
    routed = dispatch(make(), ruleset, now=NOW)

    assert parse_event(routed.to_json()) == routed
    assert routed.data["department"] in ruleset.organisation.departments
