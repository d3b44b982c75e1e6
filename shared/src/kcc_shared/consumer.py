"""Consuming events into a store: dedupe and apply a batch in one transaction, ack after commit."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import amqp
from kombu.entity import Queue
from kombu.message import Message
from kombu.messaging import Consumer
from kombu.mixins import ConsumerMixin
from sqlalchemy import Column, Engine, MetaData, String, Table, insert, select
from sqlalchemy import Connection as DbConnection
from sqlalchemy.exc import IntegrityError, OperationalError

from kcc_shared.db import UtcDateTime, write
from kcc_shared.deadletters import parked
from kcc_shared.events import Event, InvalidEvent, UnknownSchemaVersion, parse_event
from kcc_shared.metrics import MESSAGES_CONSUMED
from kcc_shared.publisher import (
    Publisher,
    PublishError,
    broker_connection,
    connect_once,
    connection_factory,
)
from kcc_shared.topology import declare

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE: Final = 100
# A batch being gathered is applied after this much silence on the channel, or once its first
# message has waited DEFAULT_MAX_WAIT, whichever comes first: a backlog is applied in full
# batches, a lone message waits a few milliseconds at most.
DEFAULT_IDLE_TIMEOUT: Final = 0.005
DEFAULT_MAX_WAIT: Final = 0.05
# With nothing in hand the loop only wakes to notice stop().
IDLE_POLL: Final = 1.0
# While the database is unreachable the batch in hand is retried after these pauses (seconds).
DATABASE_RETRY_START: Final = 0.2
DATABASE_RETRY_MAX: Final = 5.0


class EventRejected(Exception):
    """A handler's verdict that an event can never be applied: park it with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Handler(Protocol):
    def __call__(self, connection: DbConnection, event: Event) -> None:
        """Apply the event inside the consumer's transaction (raise EventRejected to park)."""


class BatchHandler(Protocol):
    def __call__(self, connection: DbConnection, events: Sequence[Event]) -> None:
        """Apply events (distinct ids, none applied before) inside one transaction.

        Any exception rolls the whole batch back, after which the consumer applies the events
        one at a time (calling this with one event each) to find the one that fails; raise
        EventRejected for an event that can never be applied and it is parked.
        """


def processed_events_table(metadata: MetaData) -> Table:
    """Event ids already applied; the key that makes a redelivery a no-op."""
    return Table(
        "processed_events",
        metadata,
        Column("event_id", String(36), primary_key=True),
        Column("queue", String(255), nullable=False),
        Column("processed_at", UtcDateTime, nullable=False),
    )


@dataclass
class _Delivery:
    """One event of a batch: the first message that carried it, plus any copies of it (same
    event id) delivered into the same batch, which are settled with it and never applied."""

    event: Event
    queue: str
    messages: list[Message] = field(default_factory=list)


class _HandlerFailed(Exception):
    """A per-event handler failed on this event; the rest of its batch may still be fine."""

    def __init__(self, event_id: str, cause: Exception) -> None:
        super().__init__(event_id)
        self.event_id = event_id
        self.cause = cause


class _DatabaseUnavailable(Exception):
    """A handler lost its database connection: the batch waits, no event is blamed."""


def _kind(exc: Exception) -> str:
    # The driver's message may carry the connection URL; its class name says enough.
    cause = exc.__cause__ if isinstance(exc, _DatabaseUnavailable) else exc
    original = getattr(cause, "orig", None)
    return type(original or cause).__name__


class EventConsumer(ConsumerMixin):
    """Consumes one or more queues into a store, a batch of messages per transaction.

    Each message is validated as it arrives (invalid or unknown-version → parked in kcc.dead
    with the reason, then acked). Valid ones are gathered until ``batch_size`` messages, a
    short silence or ``max_wait``; then, in ONE transaction, the event ids seen before are
    looked up, the new ones recorded and applied (each id once, however often it is in the
    batch); commit; then every message of the batch is acked. Nothing is acked before the
    commit: a crash before it redelivers the whole batch, a crash after it redelivers ids that
    are recorded, i.e. harmless duplicates.

    A failing batch never holds up the others in it: with a per-event ``handler`` the event
    that raised is parked (EventRejected) or requeued (anything else) and the rest is applied
    again without it; with a ``batch_handler`` the batch is applied one event at a time. A
    requeued message comes back until the queue's delivery limit parks it.
    """

    def __init__(
        self,
        *,
        service: str,
        broker_url: str,
        queue: Queue,
        engine: Engine,
        processed: Table,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        prefetch: int = 50,
        batch_size: int = DEFAULT_BATCH_SIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_wait: float = DEFAULT_MAX_WAIT,
        publish_timeout: float = 5.0,
        after_commit: Callable[[Event], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        extra_queues: Sequence[Queue] = (),
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise TypeError("EventConsumer needs exactly one of handler= or batch_handler=")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if idle_timeout <= 0 or max_wait <= 0:
            raise ValueError("idle_timeout and max_wait must be more than 0 seconds")
        self.service = service
        self.queue = queue
        # More queues into the same store (the back office: every department queue plus its
        # agent events); each message is recorded, counted and parked under its own queue.
        self.queues = [queue, *extra_queues]
        self.connection = broker_connection(
            broker_url, connect_timeout=publish_timeout, heartbeat=0
        )
        self._engine = engine
        self._processed = processed
        self._handler = handler
        self._batch_handler = batch_handler
        self._prefetch = prefetch
        # A batch is gathered from unacked messages: one larger than the prefetch never fills.
        self.batch_size = min(batch_size, prefetch)
        self.idle_timeout = idle_timeout
        self.max_wait = max_wait
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
        self._batch: dict[str, _Delivery] = {}  # event id -> delivery, in arrival order
        self._held = 0  # messages in the batch, copies included
        self._batch_started = 0.0
        self._last_delivery = 0.0
        # Delivery tags received on the current channel and not yet acked or rejected (numbers
        # on AMQP, uuids on the in-memory transport): a `multiple` ack is only safe when it
        # covers exactly these.
        self._unsettled: set[Any] = set()

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
        # One kombu Consumer per queue, so every callback knows which queue its message is
        # from; they share the one channel, so delivery tags are unique across them.
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
        def park(message: Message, exc: Exception) -> None:
            # kombu's default acks (drops) what it cannot decode; a lost event is never an
            # option.
            self._unsettled.add(message.delivery_tag)
            self._park(message, f"undecodable: {type(exc).__name__}", queue_name)

        return park

    def consume(
        self,
        limit: int | None = None,
        timeout: float | None = None,
        safety_interval: float = IDLE_POLL,
        **kwargs: Any,
    ) -> Iterator[None]:
        # kombu's loop, except that how long one drain may block follows the batch in hand,
        # and a batch is applied when it is full, after a short silence, or when it has waited
        # long enough. It runs until stop(): kombu's limit and timeout do not apply.
        del limit, timeout
        try:
            with self.consumer_context(**kwargs) as (conn, _channel, _consumers):
                while not self.should_stop:
                    if self._batch_due():
                        self.flush()
                    try:
                        conn.drain_events(
                            timeout=self.idle_timeout if self._batch else safety_interval
                        )
                    except TimeoutError:
                        conn.heartbeat_check()
                    except OSError:
                        if not self.should_stop:
                            raise
                    else:
                        yield
                # An orderly stop: apply the batch in hand while the channel can still ack it.
                self.flush()
        finally:
            self._consuming.clear()

    def on_connection_revived(self) -> None:
        # Whatever an earlier channel held went back to the queue when it closed. Reset here,
        # before the consumers start, and not in on_consume_ready: while the consumer of a
        # later queue waits for its consume-ok, messages of the queues before it are already
        # delivered and gathered. Forgetting those would leave them unacked, and the next
        # `multiple` ack would ack them unprocessed (a lost message after a broker restart).
        self._reset_batch()
        self._unsettled.clear()

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **_: Any) -> None:
        self._consuming.set()
        log.info(
            "consumer_ready",
            extra={
                "service": self.service,
                "queue": ",".join(q.name for q in self.queues),
                "batch_size": self.batch_size,
                "prefetch": self._prefetch,
            },
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
        self._decode_error_for(self.queue.name)(message, exc)

    # -- gathering a batch ------------------------------------------------------------------

    def on_message(self, body: Any, message: Message, queue_name: str | None = None) -> None:
        queue = queue_name or self.queue.name
        self._unsettled.add(message.delivery_tag)
        try:
            event = parse_event(body if isinstance(body, dict) else message.body)
        except UnknownSchemaVersion as exc:
            self._park(message, f"unknown_schema_version: {exc.reason}", queue)
            return
        except InvalidEvent as exc:
            self._park(message, f"invalid_event: {exc.reason}", queue)
            return
        now = time.monotonic()
        if not self._batch:
            self._batch_started = now
        self._last_delivery = now
        self._held += 1
        delivery = self._batch.get(event.id)
        if delivery is None:
            delivery = self._batch[event.id] = _Delivery(event, queue)
        delivery.messages.append(message)

    def _batch_due(self) -> bool:
        if not self._batch:
            return False
        now = time.monotonic()
        return (
            self._held >= self.batch_size
            or now - self._last_delivery >= self.idle_timeout
            or now - self._batch_started >= self.max_wait
        )

    def _reset_batch(self) -> None:
        self._batch = {}
        self._held = 0

    def flush(self) -> None:
        """Apply the gathered batch in one transaction, then settle every message of it."""
        deliveries = list(self._batch.values())
        self._reset_batch()
        if deliveries:
            self._commit(deliveries)

    # -- the work ---------------------------------------------------------------------------

    def _commit(self, deliveries: list[_Delivery]) -> None:
        remaining = deliveries
        pause = DATABASE_RETRY_START
        while remaining:
            try:
                applied = self._transaction(remaining)
            except (OperationalError, _DatabaseUnavailable) as exc:
                # A database restart or failover is nobody's event's fault. Keep the batch
                # unacked and try again: requeueing would spend the messages' delivery
                # attempts and park good events in kcc.dead during a restart.
                if self.should_stop:
                    self._requeue([m for d in remaining for m in d.messages])
                    return
                log.warning(
                    "database_unavailable",
                    extra={"service": self.service, "retry_in": pause, "error": _kind(exc)},
                )
                self._pause(pause)
                pause = min(DATABASE_RETRY_MAX, pause * 2)
                continue
            except _HandlerFailed as failure:
                # We know which event broke it: settle that one and try the rest again.
                culprit = next(d for d in remaining if d.event.id == failure.event_id)
                self._settle_failure(culprit, failure.cause)
                remaining = [d for d in remaining if d is not culprit]
                continue
            except Exception as exc:
                if len(remaining) == 1:
                    self._settle_failure(remaining[0], exc)
                    return
                # The failure belongs to no event we can name (a batch handler, the commit, a
                # clash with another consumer): one transaction per event sorts it out.
                log.warning(
                    "event_batch_failed",
                    extra={
                        "service": self.service,
                        "events": len(remaining),
                        "error": type(exc).__name__,
                    },
                )
                for delivery in remaining:
                    self._commit([delivery])
                return
            self._settle_committed(remaining, applied)
            return

    def _transaction(self, deliveries: list[_Delivery]) -> set[str]:
        """Record and apply the events not seen before, in one transaction; return their ids."""
        p = self._processed
        with write(self._engine) as connection:
            seen = set(
                connection.execute(
                    select(p.c.event_id).where(p.c.event_id.in_([d.event.id for d in deliveries]))
                ).scalars()
            )
            fresh = [d for d in deliveries if d.event.id not in seen]
            if fresh:
                now = self._clock()
                connection.execute(
                    insert(p),
                    [
                        {"event_id": d.event.id, "queue": d.queue, "processed_at": now}
                        for d in fresh
                    ],
                )
                self._apply(connection, [d.event for d in fresh])
        return {d.event.id for d in fresh}

    def _apply(self, connection: DbConnection, events: list[Event]) -> None:
        if self._batch_handler is not None:
            self._batch_handler(connection, events)
            return
        assert self._handler is not None
        for event in events:
            try:
                self._handler(connection, event)
            except OperationalError as exc:
                raise _DatabaseUnavailable from exc
            except Exception as exc:
                raise _HandlerFailed(event.id, exc) from exc

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.should_stop and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def _settle_committed(self, deliveries: list[_Delivery], applied: set[str]) -> None:
        self._ack([m for d in deliveries for m in d.messages])
        counts: Counter[tuple[str, str]] = Counter()
        for delivery in deliveries:
            outcome = "acked" if delivery.event.id in applied else "duplicate"
            counts[(delivery.queue, outcome)] += 1
            counts[(delivery.queue, "duplicate")] += len(delivery.messages) - 1
        for (queue, outcome), count in counts.items():
            MESSAGES_CONSUMED.labels(self.service, queue, outcome).inc(count)
        if self._after_commit is None:
            return
        for delivery in deliveries:
            if delivery.event.id not in applied:
                continue
            try:
                self._after_commit(delivery.event)
            except Exception:  # the event is stored and acked; a hook must not stop consuming
                log.exception(
                    "after_commit_failed",
                    extra={"service": self.service, "event_id": delivery.event.id},
                )

    def _settle_failure(self, delivery: _Delivery, exc: Exception) -> None:
        event = delivery.event
        if isinstance(exc, EventRejected):
            self._park_delivery(delivery, f"rejected: {exc.reason}")
            return
        if isinstance(exc, IntegrityError) and _is_duplicate(exc, self._processed.name):
            # Another consumer committed the same event id between our look-up and our insert.
            self._settle_committed([delivery], applied=set())
            return
        # A bug or a DB outage: retry; the delivery limit parks a message that keeps failing.
        log.error(
            "event_apply_failed",
            exc_info=exc,
            extra={"service": self.service, "event_id": event.id, "type": event.type},
        )
        self._requeue(delivery.messages)
        MESSAGES_CONSUMED.labels(self.service, delivery.queue, "requeued").inc(
            len(delivery.messages)
        )

    def _park_delivery(self, delivery: _Delivery, reason: str) -> None:
        first, *copies = delivery.messages
        if not self._park(first, reason, delivery.queue):
            self._requeue(copies)
            return
        # The event is in the parking lot once; its copies would only park it again.
        if copies:
            self._ack(copies)
            MESSAGES_CONSUMED.labels(self.service, delivery.queue, "duplicate").inc(len(copies))

    def _park(self, message: Message, reason: str, queue_name: str | None = None) -> bool:
        """Publish the message to kcc.dead with the reason, then ack it (requeue it if the
        broker did not take the dead letter); True when it was parked."""
        queue = queue_name or self.queue.name
        letter = parked(message, reason=reason, queue=queue, now=self._clock())
        try:
            result = self._publisher.publish([letter])
        except PublishError:
            log.warning("dead_letter_publish_failed", extra={"service": self.service})
            self._requeue([message])
            return False
        if result.failed:
            self._requeue([message])
            return False
        self._ack([message])
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
        return True

    # -- settling on the channel --------------------------------------------------------------

    def _ack(self, messages: list[Message]) -> None:
        if not messages:
            return
        tags = {m.delivery_tag for m in messages}
        channel = messages[0].channel
        if (
            len(messages) > 1
            and isinstance(channel, amqp.Channel)
            and tags == self._unsettled
            and all(m.channel is channel for m in messages)
        ):
            # These are all the channel's outstanding deliveries, so one `multiple` ack of the
            # highest tag acks exactly them. (kombu's in-memory transport ignores `multiple`
            # and its tags are not numbers, hence the check for a real AMQP channel.)
            max(messages, key=lambda m: int(m.delivery_tag)).ack(multiple=True)
        else:
            for message in messages:
                message.ack()
        self._unsettled -= tags

    def _requeue(self, messages: list[Message]) -> None:
        for message in messages:
            message.requeue()
            self._unsettled.discard(message.delivery_tag)


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
