"""The back office's consumer: every department queue and its agent events into the inboxes."""

from __future__ import annotations

import logging
from typing import Final

from kcc_shared.config import Config
from kcc_shared.consumer import EventConsumer, EventRejected
from kcc_shared.events import Event
from kcc_shared.topology import department_queue, service_queue
from sqlalchemy import Connection

from backoffice.metrics import SERVICE
from backoffice.store import InboxStore, processed_events

log = logging.getLogger(__name__)

EVENTS_QUEUE: Final = "backoffice.events"
HANDLED: Final = frozenset(
    {
        "request.submitted",
        "request.routed",
        "request.cancelled",
        "request.clarified",
        "request.reopened",
        "request.rated",
        # The desk answered a citizen with one of our reusable answers: "Je antwoord hielp".
        "request.answer_reused",
    }
)


class InboxWorker:
    """Consumes `backoffice.events` and `kcc.dept.<d>` for every department of the
    organisation into the store: dedupe on the event id and apply a batch in one transaction,
    ack after commit, park what can never apply (EventConsumer does the mechanics)."""

    def __init__(self, config: Config, store: InboxStore) -> None:
        self._store = store
        departments = sorted(store.organisation.departments)
        self.consumer = EventConsumer(
            service=SERVICE,
            config=config,
            queue=service_queue(EVENTS_QUEUE),
            extra_queues=[department_queue(d) for d in departments],
            engine=store.engine,
            processed=processed_events,
            handler=self.handle,
            # One queue per department plus backoffice.events, each with this prefetch.
            prefetch=config.backoffice_prefetch,
        )

    def handle(self, connection: Connection, event: Event) -> None:
        if event.type not in HANDLED:
            return  # not the back office's business (recorded as processed, nothing else)
        if (
            event.type == "request.routed"
            and event.data["department"] not in self._store.organisation.departments
        ):
            # The router and this service read different organisation files: a person must
            # look, so park it rather than make an inbox nobody can open.
            raise EventRejected(f"unknown department {event.data['department']}")
        self._store.apply(connection, event)

    def start(self) -> None:
        self.consumer.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.consumer.stop(timeout)
