"""Intake fixtures: an app on a real store (SQLite or PostgreSQL) and tokens for every role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.app import create_app
from intake.store import outbox, requests_table, timeline_table, updates_table
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.db import write
from kcc_shared.events import SYSTEM, Actor, Event, new_event
from sqlalchemy import func, select


@pytest.fixture
def config(database_url: str) -> Config:
    # memory:// and no relay thread: unit tests look at the outbox rows themselves.
    return Config(database_url=database_url, broker_url="memory://", outbox_relay=False)


@pytest.fixture
def app(config: Config) -> Iterator[Flask]:
    app = create_app(config)
    yield app
    app.extensions["kcc.intake"].store.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _token(app: Flask, **kwargs: Any) -> str:
    token, _ = app.extensions[TOKENS_EXTENSION].create(**kwargs)
    return str(token)


@pytest.fixture
def agent_token(app: Flask) -> str:
    return _token(app, role="agent", user_id="agent-anna", team="kcc-noord")


@pytest.fixture
def teammate_token(app: Flask) -> str:
    return _token(app, role="agent", user_id="agent-bram", team="kcc-noord")


@pytest.fixture
def other_agent_token(app: Flask) -> str:
    return _token(app, role="agent", user_id="agent-chris", team="kcc-zuid")


@pytest.fixture
def ops_token(app: Flask) -> str:
    return _token(app, role="ops", user_id="ops-dana")


@pytest.fixture
def staff_token(app: Flask) -> str:
    return _token(app, role="staff", user_id="staff-eva", departments=["burgerzaken"])


@pytest.fixture
def row_counts(app: Flask) -> Callable[[], dict[str, int]]:
    """How many requests, timeline entries and outbox rows the store holds now."""
    engine = app.extensions["kcc.intake"].store.engine

    def count() -> dict[str, int]:
        with engine.connect() as connection:
            return {
                t.name: connection.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (requests_table, timeline_table, outbox, updates_table)
            }

    return count


STAFF_EVENTS = {
    "request.claimed",
    "request.released",
    "request.answered",
    "request.clarification_requested",
    "request.reroute_requested",
}


@pytest.fixture
def deliver(app: Flask) -> Callable[..., Event]:
    """Apply an event to the agent's view exactly as the consumer does (in one transaction)."""
    store = app.extensions["kcc.intake"].store

    def apply(request_id: str, type_: str, **data: Any) -> Event:
        actor = Actor("staff", "staff-eva") if f"request.{type_}" in STAFF_EVENTS else SYSTEM
        event = new_event(f"request.{type_}", request_id=request_id, actor=actor, data=data)
        with write(store.engine) as connection:
            store.apply_events(connection, [event])
        return event

    return apply


@pytest.fixture
def routed_data() -> Callable[..., dict[str, Any]]:
    def make(department: str = "burgerzaken", handoff_count: int = 0) -> dict[str, Any]:
        from datetime import UTC, datetime

        due = datetime(2030, 1, 1, tzinfo=UTC)
        return {
            "department": department,
            "rule_id": "r1",
            "rules_version": "v1",
            "reason": "rule",
            "priority": "normal",
            "handoff_count": handoff_count,
            "first_response_due": due,
            "resolution_due": due,
        }

    return make
