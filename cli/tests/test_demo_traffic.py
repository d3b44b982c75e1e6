"""The demo traffic of `kcc dev --demo-traffic`: its questions go where their answers belong,
it refuses a setup it cannot run, and a server it cannot reach never stops it (or hangs a stop).

`cli/tests/test_dev.py` runs it for real inside `kcc dev`."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import pytest
from kcc_cli.demo_questions import SCRIPTS
from kcc_cli.demo_traffic import DemoTraffic
from kcc_cli.dev import DEMO_USERS, TRAFFIC_AGENTS
from kcc_shared.organisation import load_organisation
from kcc_shared.privacy import redact_bsn
from router.decision import Decider, Query
from router.model import DEMO_MODEL, RoutingModel
from router.rules import RuleSet

STAFF = {user: departments for user, role, _, departments in DEMO_USERS if role == "staff"}
TOKENS = {user: f"kcc_not-a-real-token-{user}" for user, *_ in DEMO_USERS}


def test_every_demo_question_routes_to_its_department_and_a_demo_staff_member_works_it() -> None:
    organisation = load_organisation(None)
    # kcc dev routes with the demo organisation's model, so the bot's questions are checked
    # against the same decision.
    decider = Decider(RuleSet.from_organisation(organisation), RoutingModel.load(DEMO_MODEL))
    covered = {d for departments in STAFF.values() for d in departments}
    for script in SCRIPTS:
        decision = decider.decide(Query(script.question, script.category))
        assert decision.department == script.department, script.question
        # Otherwise the bot's questions to that department would pile up unanswered.
        assert script.department in covered
        assert script.category is None or script.category in organisation.categories
        # A clarification dialogue needs both sides.
        assert (script.ask is None) == (script.clarify is None)
        for text in (script.question, script.answer, script.ask or "", script.clarify or ""):
            assert redact_bsn(text)[1] == 0
    # Every department of the demo organisation gets some traffic.
    assert {s.department for s in SCRIPTS} == set(organisation.departments)
    assert any(s.ask for s in SCRIPTS)


def test_bad_setups_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="pace must be a positive number of seconds: 0"):
        DemoTraffic("http://127.0.0.1:1", TOKENS, agents=TRAFFIC_AGENTS, staff=STAFF, pace=0)
    without_bram = {u: t for u, t in TOKENS.items() if u != "agent-bram"}
    with pytest.raises(ValueError, match="no token for the demo user\\(s\\) agent-bram"):
        DemoTraffic("http://127.0.0.1:1", without_bram, agents=TRAFFIC_AGENTS, staff=STAFF)
    with pytest.raises(ValueError, match="at least one agent and one staff member"):
        DemoTraffic("http://127.0.0.1:1", TOKENS, agents=(), staff=STAFF)


def test_an_unreachable_server_is_logged_and_retried_and_stop_is_prompt(
    caplog: pytest.LogCaptureFixture, wait_for: Callable[..., None]
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: connections are refused
    traffic = DemoTraffic(
        f"http://127.0.0.1:{port}", TOKENS, agents=TRAFFIC_AGENTS, staff=STAFF, pace=0.05
    )
    caplog.set_level(logging.INFO, logger="kcc_cli.demo_traffic")
    traffic.start()
    try:
        # Round after round, each with failed steps: a failure never ends the thread.
        wait_for(lambda: traffic.rounds >= 3)
        assert traffic.failures >= 3
        assert not traffic.actions  # nothing pretended to have happened
    finally:
        started = time.monotonic()
        traffic.stop()
    assert time.monotonic() - started < 5
    assert not traffic.running
    failed = [r for r in caplog.records if r.getMessage() == "demo_traffic_step_failed"]
    assert failed
    # Each says which step and why, with no token in it.
    assert vars(failed[0])["step"].startswith(("agent ", "staff ", "file"))
    assert "Connection refused" in vars(failed[0])["error"]
    assert not any("kcc_not-a-real-token" in r.getMessage() + str(vars(r)) for r in failed)
    assert [r.getMessage() for r in caplog.records][-1] == "demo_traffic_stopped"
