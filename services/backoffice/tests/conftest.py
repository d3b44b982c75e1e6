"""Back-office fixtures: an app on a real store (SQLite or PostgreSQL), a fixed clock, tokens
for every role, and a way to deliver events the way the consumer does."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from backoffice.app import create_app
from backoffice.store import InboxStore, outbox, processed_events
from flask import Flask
from flask.testing import FlaskClient
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.db import write
from kcc_shared.events import SYSTEM, Actor, Event, new_event
from sqlalchemy import func, insert, select

# Tuesday 10 March 2026, 10:00 in Amsterdam: every calendar is open.
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
SECRET = "test-secret-key-0123456789"


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config(database_url: str) -> Config:
    # memory:// and no relay thread: unit tests look at the outbox rows themselves.
    return Config(
        database_url=database_url,
        broker_url="memory://",
        outbox_relay=False,
        secret_key=SECRET,
        session_cookie_secure=False,
    )


@pytest.fixture
def app(config: Config, clock: Clock) -> Iterator[Flask]:
    app = create_app(config, clock=clock)
    app.config["TESTING"] = True
    yield app
    context = app.extensions["kcc.backoffice"]
    context.feed.stop()  # a test that opened a live stream started its poller
    context.store.engine.dispose()


@pytest.fixture
def store(app: Flask) -> InboxStore:
    s: InboxStore = app.extensions["kcc.backoffice"].store
    return s


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _token(app: Flask, **kwargs: Any) -> str:
    token, _ = app.extensions[TOKENS_EXTENSION].create(**kwargs)
    return str(token)


@pytest.fixture
def staff_token(app: Flask) -> str:
    return _token(app, role="staff", user_id="staff-eva", departments=["burgerzaken"])


@pytest.fixture
def colleague_token(app: Flask) -> str:
    return _token(app, role="staff", user_id="staff-finn", departments=["burgerzaken"])


@pytest.fixture
def other_staff_token(app: Flask) -> str:
    return _token(app, role="staff", user_id="staff-gijs", departments=["belastingen"])


@pytest.fixture
def agent_token(app: Flask) -> str:
    return _token(app, role="agent", user_id="agent-anna", team="kcc-noord")


@pytest.fixture
def ops_token(app: Flask) -> str:
    return _token(app, role="ops", user_id="ops-dana")


@pytest.fixture
def admin_token(app: Flask) -> str:
    return _token(app, role="admin", user_id="admin-ali")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submitted(request_id: str, *, question: str = "Paspoort kwijt, wat nu?") -> Event:
    return new_event(
        "request.submitted",
        request_id=request_id,
        actor=Actor("agent", "agent-anna"),
        occurred_at=NOW - timedelta(minutes=5),
        data={
            "question": question,
            "category": None,
            "priority": "normal",
            "channel": "phone",
            "agent_id": "agent-anna",
            "team": "kcc-noord",
            "citizen_ref": None,
            "tags": [],
        },
    )


def routed(
    request_id: str,
    department: str = "burgerzaken",
    *,
    handoff_count: int = 0,
    priority: str = "normal",
    first_response_due: datetime | None = None,
    resolution_due: datetime | None = None,
    from_department: str | None = None,
) -> Event:
    return new_event(
        "request.routed",
        request_id=request_id,
        actor=SYSTEM,
        occurred_at=NOW - timedelta(minutes=4) + timedelta(seconds=handoff_count),
        data={
            "department": department,
            "from_department": from_department,
            "rule_id": None,
            "rules_version": "test",
            "reason": "forward" if from_department else "category",
            "priority": priority,
            "handoff_count": handoff_count,
            "matched": [],
            "first_response_due": first_response_due or NOW + timedelta(hours=4),
            "resolution_due": resolution_due or NOW + timedelta(days=2),
        },
    )


def agent_event(type_: str, request_id: str, **data: Any) -> Event:
    return new_event(
        type_,
        request_id=request_id,
        actor=Actor("agent", "agent-anna"),
        occurred_at=data.pop("at", NOW),
        data=data,
    )


Deliver = Callable[..., None]


@pytest.fixture
def deliver(store: InboxStore) -> Deliver:
    """Apply events as the consumer does: dedupe on the id and apply in one transaction."""

    def apply(*events: Event) -> None:
        for event in events:
            with write(store.engine) as connection:
                seen = connection.execute(
                    select(processed_events.c.event_id).where(
                        processed_events.c.event_id == event.id
                    )
                ).first()
                if seen is not None:
                    continue
                connection.execute(
                    insert(processed_events).values(
                        event_id=event.id, queue="test", processed_at=NOW
                    )
                )
                store.apply(connection, event)

    return apply


@pytest.fixture
def item_id(deliver: Deliver) -> str:
    """A question routed to burgerzaken, waiting in its inbox."""
    request_id = str(uuid.uuid4())
    deliver(submitted(request_id), routed(request_id))
    return request_id


@pytest.fixture
def outbox_events(store: InboxStore) -> Callable[[], list[tuple[str, str]]]:
    """(routing key, body) of every outbox row, in order."""

    def rows() -> list[tuple[str, str]]:
        with store.engine.connect() as connection:
            return [
                (r.routing_key, r.body)
                for r in connection.execute(select(outbox).order_by(outbox.c.seq))
            ]

    return rows


@pytest.fixture
def outbox_count(store: InboxStore) -> Callable[[], int]:
    def count() -> int:
        with store.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(outbox)).scalar_one())

    return count


class Make:
    """The event and header builders, as a fixture (test modules cannot import conftest)."""

    now = NOW
    submitted = staticmethod(submitted)
    routed = staticmethod(routed)
    agent_event = staticmethod(agent_event)
    auth = staticmethod(auth)


@pytest.fixture
def make() -> type[Make]:
    return Make
