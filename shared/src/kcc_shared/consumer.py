"""Consuming events into a store: dedupe and apply in one transaction, ack after commit."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.message import Message
from kombu.messaging import Consumer
from kombu.mixins import ConsumerMixin
from sqlalchemy import Column, Engine, MetaData, String, Table, insert
from sqlalchemy import Connection as DbConnection
from sqlalchemy.exc import IntegrityError

from kcc_shared.db import UtcDateTime, write
from kcc_shared.deadletters import parked
from kcc_shared.events import Event, InvalidEvent, UnknownSchemaVersion, parse_event
from kcc_shared.metrics import MESSAGES_CONSUMED
from kcc_shared.publisher import Publisher, PublishError, connect_once, connection_factory
from kcc_shared.topology import declare

log = logging.getLogger(__name__)


class EventRejected(Exception):
    """A handler's verdict that an event can never be applied: park it with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Handler(Protocol):
    def __call__(self, connection: DbConnection, event: Event) -> None:
        """Apply the event inside the consumer's transaction (raise EventRejected to park)."""


def processed_events_table(metadata: MetaData) -> Table:
    """Event ids already applied; the key that makes a redelivery a no-op."""
    return Table(
        "processed_events",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("queue", String(255), nullable=False),
        Column("processed_at", UtcDateTime, nullable=False),
    )


class EventConsumer(ConsumerMixin):
    """Consumes one queue into a store, one message at a time.

    Per message: validate (invalid or unknown-version → parked in kcc.dead with the reason,
    then acked); in ONE transaction record the event id and apply the handler (an id seen
    before → acked as a duplicate, nothing applied); commit; then ack. Any other failure
    requeues, so the queue's delivery limit parks a message that keeps failing. A crash after
    commit and before ack redelivers a message whose id is recorded: a harmless duplicate.
    """

    def __init__(
        self,
        *,
        service: str,
        broker_url: str,
        queue: Queue,
        engine: Engine,
        processed: Table,
        handler: Handler,
        prefetch: int = 50,
        publish_timeout: float = 5.0,
        after_commit: Callable[[Event], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        extra_queues: Sequence[Queue] = (),
    ) -> None:
        self.service = service
        self.queue = queue
        # More queues into the same store (the back office: every department queue plus its
        # agent events); each message is recorded, counted and parked under its own queue.
        self.queues = [queue, *extra_queues]
        self.connection = Connection(broker_url, connect_timeout=publish_timeout, heartbeat=0)
        self._engine = engine
        self._processed = processed
        self._handler = handler
        self._prefetch = prefetch
        self._after_commit = after_commit
        self._clock = clock
        # Dead letters go out on a connection of their own: a confirm wait on the consuming
        # connection would re-enter this consumer's callbacks.
        self._publisher = Publisher(
            connection_factory(broker_url, timeout=publish_timeout),
            timeout=publish_timeout,
            on_connect=declare,
        )
        self._thread: threading.Thread | None = None
        self._consuming = threading.Event()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self.should_stop = False
        self._thread = threading.Thread(
            target=self.run, name=f"{self.service}-consumer", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.should_stop = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._consuming.clear()
        self._publisher.close()
        self.connection.release()

    @property
    def consuming(self) -> bool:
        return self._consuming.is_set()

    def wait_until_consuming(self, timeout: float) -> bool:
        return self._consuming.wait(timeout)

    # -- kombu hooks ------------------------------------------------------------------------

    def get_consumers(self, consumer_cls: Callable[..., Consumer], channel: Any) -> list[Consumer]:
        # auto_declare: the queue, its exchange and bindings exist before the first message.
        if len(self.queues) == 1:
            consumer = consumer_cls(
                queues=[self.queue],
                callbacks=[self.on_message],
                accept=["json"],
                prefetch_count=self._prefetch,
                on_decode_error=self.on_decode_error,
            )
            return [consumer]
        # One kombu Consumer per queue, so every callback knows which queue its message is from.
        return [
            consumer_cls(
                queues=[queue],
                callbacks=[self._callback_for(queue.name)],
                accept=["json"],
                prefetch_count=self._prefetch,
                on_decode_error=self._decode_error_for(queue.name),
            )
            for queue in self.queues
        ]

    def _callback_for(self, queue_name: str) -> Callable[[Any, Message], None]:
        return lambda body, message: self.on_message(body, message, queue_name)

    def _decode_error_for(self, queue_name: str) -> Callable[[Message, Exception], None]:
        return lambda message, exc: self._park(
            message, f"undecodable: {type(exc).__name__}", queue_name
        )

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **_: Any) -> None:
        self._consuming.set()
        log.info(
            "consumer_ready",
            extra={"service": self.service, "queue": ",".join(q.name for q in self.queues)},
        )

    def on_consume_end(self, connection: Any, channel: Any) -> None:
        self._consuming.clear()

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        self._consuming.clear()
        log.warning(
            "consumer_connection_lost",
            extra={"service": self.service, "error": str(exc)[:200], "retry_in": interval},
        )

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        # kombu's default acks (drops) what it cannot decode; a lost event is never an option.
        self._park(message, f"undecodable: {type(exc).__name__}")

    # -- the work ---------------------------------------------------------------------------

    def on_message(self, body: Any, message: Message, queue_name: str | None = None) -> None:
        queue = queue_name or self.queue.name
        try:
            event = parse_event(body if isinstance(body, dict) else message.body)
        except UnknownSchemaVersion as exc:
            self._park(message, f"unknown_schema_version: {exc.reason}", queue)
            return
        except InvalidEvent as exc:
            self._park(message, f"invalid_event: {exc.reason}", queue)
            return
        try:
            applied = self._apply(event, queue)
        except EventRejected as exc:
            self._park(message, f"rejected: {exc.reason}", queue)
            return
        except Exception:  # a bug or a DB outage: retry; the delivery limit parks a loop
            log.exception(
                "event_apply_failed",
                extra={"service": self.service, "event_id": event.id, "type": event.type},
            )
            MESSAGES_CONSUMED.labels(self.service, queue, "requeued").inc()
            message.requeue()
            return
        message.ack()
        MESSAGES_CONSUMED.labels(self.service, queue, "acked" if applied else "duplicate").inc()
        if applied and self._after_commit is not None:
            self._after_commit(event)

    def _apply(self, event: Event, queue: str | None = None) -> bool:
        try:
            with write(self._engine) as connection:
                connection.execute(
                    insert(self._processed).values(
                        event_id=event.id,
                        queue=queue or self.queue.name,
                        processed_at=self._clock(),
                    )
                )
                self._handler(connection, event)
        except IntegrityError as exc:
            if _is_duplicate(exc, self._processed.name):
                return False
            raise
        return True

    def _park(self, message: Message, reason: str, queue_name: str | None = None) -> None:
        queue = queue_name or self.queue.name
        letter = parked(message, reason=reason, queue=queue, now=self._clock())
        try:
            result = self._publisher.publish([letter])
        except PublishError:
            log.warning("dead_letter_publish_failed", extra={"service": self.service})
            message.requeue()
            return
        if result.failed:
            message.requeue()
            return
        message.ack()
        MESSAGES_CONSUMED.labels(self.service, queue, "dead_lettered").inc()
        log.warning(
            "message_dead_lettered",
            extra={
                "service": self.service,
                "queue": queue,
                "reason": reason[:200],
                "message_id": letter.message_id,
            },
        )


def _is_duplicate(exc: IntegrityError, table: str) -> bool:
    # Only a clash on the processed-events key means "seen before"; any other constraint the
    # handler violated is a real error.
    text = str(exc.orig).lower()
    return table in text or "processed_events_pkey" in text


def check_broker(broker_url: str, timeout: float) -> None:
    """Readiness: one bounded connection attempt."""
    connection = connection_factory(broker_url, timeout=timeout)()
    try:
        connect_once(connection)
    finally:
        connection.release()
