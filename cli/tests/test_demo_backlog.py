"""The backlog `kcc dev --demo-traffic` publishes: questions already at risk or late, in each
department's own business time, whenever the demo starts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kcc_cli.demo_traffic import BACKLOG, backlog_events
from kcc_shared.clocks import HistoryEvent, derive
from kcc_shared.events import derived_event_id
from kcc_shared.organisation import Organisation, load_organisation


@pytest.fixture(scope="module")
def org() -> Organisation:
    return load_organisation()


@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 4, 22, 9, 30, tzinfo=UTC),  # a Wednesday morning
        datetime(2026, 4, 25, 20, 0, tzinfo=UTC),  # a Saturday evening: every office closed
    ],
)
def test_each_question_has_spent_its_share_of_the_norm_by_now(
    org: Organisation, now: datetime
) -> None:
    events = backlog_events(org, now)
    assert len(events) == 2 * len(BACKLOG)
    by_request: dict[str, list[HistoryEvent]] = {}
    for event in events:
        by_request.setdefault(event.request_id, []).append(
            HistoryEvent(event.id, event.type, event.occurred_at, event.data)
        )
        assert event.occurred_at < now
    levels = []
    for item, (request_id, history) in zip(BACKLOG, by_request.items(), strict=True):
        derived = derive(request_id, history, org)
        assert (derived.department, derived.state) == (item.department, "waiting")
        clock = next(c for c in derived.clocks if c.kind == item.clock)
        calendar = org.calendar_for(item.department)
        spent = clock.elapsed_at(now, calendar) / 1_000_000
        assert spent == pytest.approx(clock.target_s * item.share, abs=2)
        first = next(c for c in derived.clocks if c.kind == "first_response")
        first_spent = first.elapsed_at(now, calendar)
        if first_spent > first.target_us:
            levels.append("late")
        else:
            assert first_spent >= first.warning_us
            levels.append("at_risk")
    # Something for each of the overview's words: late and at risk.
    assert {"late", "at_risk"} == set(levels)


def test_the_router_s_own_routing_of_the_backlog_is_a_duplicate_and_a_restart_adds_nothing(
    org: Organisation,
) -> None:
    now = datetime(2026, 4, 22, 9, 30, tzinfo=UTC)
    events = backlog_events(org, now)
    submitted = {e.request_id: e for e in events if e.type == "request.submitted"}
    for routed in (e for e in events if e.type == "request.routed"):
        # The router gives its routed event this id: every consumer drops it as already seen.
        assert routed.id == derived_event_id(submitted[routed.request_id].id, "routed")
        assert events.index(routed) < events.index(submitted[routed.request_id])
    later = backlog_events(org, now.replace(hour=14))
    assert {e.id for e in later} == {e.id for e in events}
    assert all(e.data.get("agent_id") in (None, "agent-anna") for e in events)
