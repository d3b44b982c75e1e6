"""SLA monitor fixtures: the organisation, a fake clock, a store and an event factory."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from kcc_shared.db import make_engine, write
from kcc_shared.events import Actor, Event, new_event
from kcc_shared.organisation import Organisation, load_organisation
from sla_monitor.store import SlaStore
from sla_monitor.tables import processed
from sla_monitor.worker import SlaIngest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

AMS = ZoneInfo("Europe/Amsterdam")
STAFF = Actor("staff", "staff-sam")
AGENT = Actor("agent", "agent-anna")


def local(text: str) -> datetime:
    """'2026-04-24 16:00' in Amsterdam as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=AMS).astimezone(UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, now: datetime) -> None:
        self.now = now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


@pytest.fixture(scope="session")
def org() -> Organisation:
    return load_organisation()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(local("2026-04-20 08:00"))


@pytest.fixture
def store(sqlite_url: str, org: Organisation) -> Iterator[SlaStore]:
    store = SlaStore(make_engine(sqlite_url), org)
    store.create_schema()
    yield store
    store.engine.dispose()


class Events:
    """Builds the events of one request, each with a fresh id."""

    def __init__(self, request_id: str | None = None) -> None:
        self.request_id = request_id or str(uuid.uuid4())

    def make(self, type_: str, at: datetime, actor: Actor = STAFF, **data: Any) -> Event:
        return new_event(type_, request_id=self.request_id, actor=actor, data=data, occurred_at=at)

    def routed(
        self,
        at: datetime,
        department: str = "burgerzaken",
        priority: str = "urgent",
        from_department: str | None = None,
    ) -> Event:
        return self.make(
            "request.routed",
            at,
            Actor("system", "router"),
            department=department,
            from_department=from_department,
            rule_id=None,
            rules_version="test",
            reason="forward" if from_department else "category",
            priority=priority,
            handoff_count=1 if from_department else 0,
            first_response_due=at,
            resolution_due=at,
        )

    def claimed(self, at: datetime, department: str = "burgerzaken") -> Event:
        return self.make("request.claimed", at, department=department, staff_id="staff-sam")

    def answered(self, at: datetime, department: str = "burgerzaken") -> Event:
        return self.make(
            "request.answered", at, department=department, staff_id="staff-sam", answer="Zo."
        )

    def clarification(self, at: datetime, department: str = "burgerzaken") -> Event:
        return self.make(
            "request.clarification_requested", at, department=department, text="Welke straat?"
        )

    def clarified(self, at: datetime) -> Event:
        return self.make("request.clarified", at, AGENT, text="De Dorpsstraat.")

    def reopened(self, at: datetime, department: str | None = None) -> Event:
        return self.make(
            "request.reopened", at, AGENT, reason="Niet volledig", department=department
        )

    def cancelled(self, at: datetime) -> Event:
        return self.make("request.cancelled", at, AGENT, reason="Niet meer nodig")

    def rated(self, at: datetime, score: int, thanks: bool, department: str | None = None) -> Event:
        return self.make(
            "request.rated", at, AGENT, score=score, thanks=thanks, comment=None,
            department=department,
        )  # fmt: skip


@pytest.fixture
def events() -> Callable[[], Events]:
    return Events


Ingest = Callable[[Event], bool]


@pytest.fixture
def ingest(store: SlaStore, clock: FakeClock) -> Ingest:
    """What EventConsumer does per message, without a broker: dedupe + apply in one
    transaction, then the after-commit hook. Returns whether the event was applied."""
    handler = SlaIngest(store, clock=clock)

    def apply(event: Event) -> bool:
        try:
            with write(store.engine) as connection:
                connection.execute(
                    insert(processed).values(
                        event_id=event.id, queue="sla-monitor.events", processed_at=clock()
                    )
                )
                handler(connection, [event])
        except IntegrityError:
            return False
        handler.after_commit(event)
        return True

    return apply
