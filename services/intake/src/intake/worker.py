"""The intake's event consumer: every request event into the agents' view (intake.events)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

from kcc_shared.config import Config
from kcc_shared.consumer import EventConsumer
from kcc_shared.events import Event
from kcc_shared.topology import service_queue
from sqlalchemy import Connection

from intake.metrics import EVENTS_APPLIED, SERVICE
from intake.store import RequestStore, processed_events

__all__ = ["EVENTS_QUEUE", "ViewConsumer"]

log = logging.getLogger(__name__)

EVENTS_QUEUE: Final = "intake.events"


class ViewConsumer:
    """Consumes `intake.events` (bound to `request.#`) into the store, a batch per transaction.

    The shared EventConsumer does the reliable part: dedupe on the event ids in the same
    transaction as `RequestStore.apply_events`, ack after commit, park poison in kcc.dead. It runs
    in its own process in production (`kcc intake consume`) and as a thread in `kcc dev`; the
    live streams of any gunicorn worker see its commits through the update feed table.
    """

    def __init__(self, config: Config, store: RequestStore) -> None:
        self.store = store
        # Each applied event's outcome waits here for after_commit. An entry of a rolled-back
        # attempt is overwritten when the event is applied again.
        self._outcomes: dict[str, str] = {}
        self.consumer = EventConsumer(
            service=SERVICE,
            config=config,
            queue=service_queue(EVENTS_QUEUE),
            engine=store.engine,
            processed=processed_events,
            batch_handler=self._apply,
            after_commit=self._committed,
        )

    def start(self) -> None:
        self.consumer.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.consumer.stop(timeout)

    @property
    def consuming(self) -> bool:
        return self.consumer.consuming

    def wait_until_consuming(self, timeout: float) -> bool:
        return self.consumer.wait_until_consuming(timeout)

    def _apply(self, connection: Connection, events: Sequence[Event]) -> None:
        self._outcomes.update(self.store.apply_events(connection, events))

    def _committed(self, event: Event) -> None:
        outcome = self._outcomes.pop(event.id, "applied")
        EVENTS_APPLIED.labels(event.type, outcome).inc()
        log.info(
            "view_event_applied",
            extra={
                "event_id": event.id,
                "type": event.type,
                "request_id": event.request_id,
                "outcome": outcome,
            },
        )
