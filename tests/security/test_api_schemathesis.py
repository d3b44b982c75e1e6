"""Property-based API tests: schemathesis generates requests for every operation of the
committed OpenAPI descriptions (intake, back office), valid ones and ones that break the
schema, and sends them to the Flask app in-process (WSGI). No answer may be a server error,
and every answer must match the documented response schema (problem+json included).

Bounded: a few examples per operation and mode, derandomised, so the run is repeatable and
takes well under a minute. The totals are printed (`-s` shows them).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from backoffice.app import create_app as create_backoffice
from backoffice.store import processed_events
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from intake.app import create_app as create_intake
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.db import write
from kcc_shared.events import SYSTEM, Actor, new_event
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[2]
SPECS = {
    "intake": ROOT / "services" / "intake" / "openapi.json",
    "backoffice": ROOT / "services" / "backoffice" / "openapi.json",
}
EXAMPLES = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 30}
CHECKS = [not_a_server_error, response_schema_conformance]
QUESTION = "Paspoort verlopen, vertrekt over 10 dagen. Spoedaanvraag mogelijk?"


def _operations(service: str) -> list[str]:
    schema = schemathesis.openapi.from_path(SPECS[service])
    labels = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise AssertionError(f"{SPECS[service]} has an operation schemathesis cannot read")
        labels.append(result.ok().label)
    return labels


OPERATIONS = [(service, label) for service in SPECS for label in _operations(service)]


@dataclass
class Target:
    app: Flask
    token: str
    # A real id for the {request_id} of the paths: half the cases act on it.
    request_id: str


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    folder = tmp_path_factory.mktemp("schemathesis")
    config = Config(
        database_url=f"sqlite:///{folder / 'kcc.db'}",
        broker_url="memory://",
        outbox_relay=False,
        secret_key="schemathesis-secret-0123456789",
        session_cookie_secure=False,
    )
    intake = create_intake(config)
    # A live stream ends at once here: its answer is read to the end.
    feed = intake.extensions["kcc.intake"].feed
    feed.max_seconds = 0.05
    feed.heartbeat = 0.05
    agent, _ = intake.extensions[TOKENS_EXTENSION].create(
        role="agent", user_id="agent-anna", team="kcc-noord"
    )
    filed = intake.test_client().post(
        "/api/v1/requests",
        json={"question": QUESTION},
        headers={"Authorization": f"Bearer {agent}"},
    )
    assert filed.status_code == 202

    backoffice = create_backoffice(config.with_(database_url=f"sqlite:///{folder / 'bo.db'}"))
    staff, _ = backoffice.extensions[TOKENS_EXTENSION].create(
        role="staff", user_id="staff-eva", departments=["burgerzaken"]
    )
    item = str(uuid.uuid4())
    _deliver_item(backoffice, item)

    yield {
        "intake": Target(intake, agent, filed.get_json()["id"]),
        "backoffice": Target(backoffice, staff, item),
    }
    feed.stop()
    for app, key in ((intake, "kcc.intake"), (backoffice, "kcc.backoffice")):
        app.extensions[key].store.engine.dispose()


def _deliver_item(app: Flask, request_id: str) -> None:
    """A question routed to burgerzaken, applied as the consumer applies events."""
    store = app.extensions["kcc.backoffice"].store
    now = datetime.now(UTC)
    events = [
        new_event(
            "request.submitted",
            request_id=request_id,
            actor=Actor("agent", "agent-anna"),
            occurred_at=now - timedelta(minutes=5),
            data={
                "question": QUESTION,
                "category": None,
                "priority": "normal",
                "channel": "phone",
                "agent_id": "agent-anna",
                "team": "kcc-noord",
                "citizen_ref": None,
                "tags": [],
            },
        ),
        new_event(
            "request.routed",
            request_id=request_id,
            actor=SYSTEM,
            occurred_at=now - timedelta(minutes=4),
            data={
                "department": "burgerzaken",
                "from_department": None,
                "rule_id": None,
                "rules_version": "test",
                "reason": "category",
                "priority": "normal",
                "handoff_count": 0,
                "matched": [],
                "first_response_due": now + timedelta(hours=4),
                "resolution_due": now + timedelta(days=2),
            },
        ),
    ]
    for event in events:
        with write(store.engine) as connection:
            connection.execute(
                insert(processed_events).values(event_id=event.id, queue="test", processed_at=now)
            )
            store.apply(connection, event)


RUN: dict[str, int] = {"cases": 0, "server_errors": 0, "schema_violations": 0}


@pytest.mark.parametrize(("service", "label"), OPERATIONS)
@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda m: m.value)
def test_no_server_error_and_every_answer_as_documented(
    targets: dict[str, Target], service: str, label: str, mode: GenerationMode
) -> None:
    target = targets[service]
    schema = schemathesis.openapi.from_path(SPECS[service])
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    headers = {"Authorization": f"Bearer {target.token}"}
    strategy = operation.as_strategy(generation_mode=mode)
    if "{request_id}" in operation.path:
        strategy = st.one_of(
            strategy,
            operation.as_strategy(
                generation_mode=mode, path_parameters={"request_id": target.request_id}
            ),
        )

    @settings(
        max_examples=EXAMPLES[mode],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        RUN["cases"] += 1
        response = case.call(app=target.app, headers=headers)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception:
            if response.status_code >= 500:
                RUN["server_errors"] += 1
            else:
                RUN["schema_violations"] += 1
            raise

    run()


def test_report_the_totals(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs last in this file: what the property tests above sent."""
    with capsys.disabled():
        print(
            f"\nschemathesis: {len(OPERATIONS)} operations, {RUN['cases']} cases, "
            f"{RUN['server_errors']} server errors, {RUN['schema_violations']} schema violations"
        )
    assert RUN["server_errors"] == 0
    assert RUN["schema_violations"] == 0
