"""Consuming batches of events: gather, process, settle each message; hold a batch while a
dependency is down. BatchConsumer is the loop every consumer shares (the router's too);
EventConsumer applies a batch to a store in one transaction and acks after the commit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from kombu.connection import Connection
from kombu.entity import Queue
from kombu.message import Message
from kombu.messaging import Consumer
from kombu.mixins import ConsumerMixin
from sqlalchemy import Column, Engine, MetaData, String, Table, insert, select, text
from sqlalchemy import Connection as DbConnection
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from kcc_shared.backoff import RETRY, pause
from kcc_shared.config import Config
from kcc_shared.db import UtcDateTime, write
from kcc_shared.deadletters import parked
from kcc_shared.events import (
    Event,
    InvalidEvent,
    UnknownEventType,
    UnknownSchemaVersion,
    parse_event,
)
from kcc_shared.metrics import MESSAGES_CONSUMED
from kcc_shared.publisher import (
    Publisher,
    PublishError,
    broker_connection,
    connect_once,
    connection_factory,
)
from kcc_shared.runner import Part
from kcc_shared.topology import DELIVERY_LIMIT, declare

__all__ = [
    "BatchConsumer",
    "BatchHandler",
    "Delivery",
    "EventConsumer",
    "EventRejected",
    "Handler",
    "Unavailable",
    "check_broker",
    "processed_events_table",
]

log = logging.getLogger(__name__)

# A batch being gathered is processed after this much silence on the channel, or once its
# first message has waited DEFAULT_MAX_WAIT, whichever comes first: a backlog goes in full
# batches, a lone message waits a few milliseconds at most.
DEFAULT_IDLE_TIMEOUT: Final = 0.005
DEFAULT_MAX_WAIT: Final = 0.05
# With nothing in hand the loop wakes this often: to notice stop(), to requeue messages whose
# retry delay is over, and to keep the heartbeats going.
IDLE_POLL: Final = 0.2
_DETAIL_MAX: Final = 300


class Unavailable(Exception):
    """A dependency of the batch (the database, the broker it publishes to) is down.

    Raised by `BatchConsumer.process`: the consumer holds the messages not settled yet and
    tries them again after the retry policy's pause, as long as it takes. Nobody's message is
    blamed, so an outage spends no delivery attempts. `what` names the log event
    (database_unavailable, batch_publish_failed); the message says no more than an error's
    class name (a driver's message may carry a URL).
    """

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.what = what
        self.detail = detail


class EventRejected(Exception):
    """A handler's verdict that an event can never be applied: park it with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class Delivery:
    """One valid event taken from a queue, and whether it has been settled yet."""

    event: Event
    queue: str
    message: Message
    settled: bool = False


class BatchConsumer(ConsumerMixin):
    """The consume loop every consumer shares: gather, process, settle one message at a time.

    Messages are parsed as they arrive; one that is not a valid event is parked in kcc.dead
    with the reason. Valid ones are gathered until `batch_size`, a short silence or `max_wait`,
    then handed to `process`, which settles each: `ack`, `park` (never applicable, with the
    reason) or `retry_later` (requeued after a delay that grows with its delivery count; on
    its last delivery it is parked with the error instead). When `process` raises Unavailable
    the messages it has not settled are held, unacked, and processed again after the retry
    policy's pause (kcc_shared.backoff.RETRY); meanwhile the connection's heartbeats go on.

    Subclasses supply `process` (and may extend `on_connection_revived`). Nothing is acked
    before its side effect is durable; a crash redelivers, never drops.
    """

    def __init__(
        self,
        *,
        service: str,
        config: Config,
        queues: Sequence[Queue],
        prefetch: int | None = None,
        batch_size: int | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_wait: float = DEFAULT_MAX_WAIT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_publisher_connect: Callable[[Connection], None] = declare,
    ) -> None:
        # The broker, its timeouts and the batch come from the configuration (KCC_BROKER_URL,
        # KCC_PUBLISH_TIMEOUT, KCC_HEARTBEAT, KCC_STALL_TIMEOUT, KCC_PREFETCH,
        # KCC_CONSUMER_BATCH_SIZE); a consumer overrides only the prefetch and batch it needs.
        prefetch = config.prefetch if prefetch is None else prefetch
        batch_size = config.consumer_batch_size if batch_size is None else batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if idle_timeout <= 0 or max_wait <= 0:
            raise ValueError("idle_timeout and max_wait must be more than 0 seconds")
        self.service = service
        self.queues = list(queues)
        self.connection = broker_connection(
            config.broker_url, connect_timeout=config.publish_timeout, heartbeat=config.heartbeat
        )
        self.prefetch = prefetch
        # A batch is gathered from unacked messages: one larger than the prefetch never fills.
        self.batch_size = min(batch_size, prefetch)
        self.idle_timeout = idle_timeout
        self.max_wait = max_wait
        self.stall_timeout = config.stall_timeout
        self._clock = clock
        # Dead letters (and the router's routed events) go out on a connection of their own: a
        # confirm wait on the consuming connection would re-enter this consumer's callbacks.
        self.publisher = Publisher(
            connection_factory(config.broker_url, timeout=config.publish_timeout),
            timeout=config.publish_timeout,
            on_connect=on_publisher_connect,
        )
        self.should_stop = False
        self._thread: threading.Thread | None = None
        self._consuming = threading.Event()
        self._conn: Connection | None = None  # the connection the loop drains
        self._batch: list[Delivery] = []
        self._held = 0  # messages of a batch being processed (held while a dependency is down)
        self._retrying: list[tuple[float, Message, str]] = []  # (due, message, queue)
        self._batch_started = 0.0
        self._last_delivery = 0.0
        self._turned_at = time.monotonic()  # the loop's last turn
        self._settled_at = time.monotonic()  # the last message acked, parked or requeued

    # -- what subclasses supply --------------------------------------------------------------

    def process(self, batch: list[Delivery]) -> None:
        """Do the batch's work and settle every delivery; raise Unavailable to hold the rest."""
        raise NotImplementedError

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Consume in a thread of its own until stop()."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.should_stop = False
        self._thread = threading.Thread(
            target=self._run_in_thread, name=f"{self.service}-consumer", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop consuming: the batch in hand is finished and settled, connections closed."""
        self.should_stop = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._consuming.clear()
        self.publisher.close()

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        """Consume in this thread until stop(); reconnects after any broker trouble."""
        try:
            ConsumerMixin.run(self, _tokens, **kwargs)
        except _Stopped:
            pass
        finally:
            self._consuming.clear()
            self.publisher.close()

    def _run_in_thread(self) -> None:
        try:
            self.run()
        except Exception:  # the thread's last word; the runner sees it gone and exits
            log.exception("consumer_crashed", extra={"service": self.service})

    @property
    def consuming(self) -> bool:
        """Connected, with the consumers registered."""
        return self._consuming.is_set()

    @property
    def running(self) -> bool:
        """The consume thread (from start()) is alive."""
        return self._thread is not None and self._thread.is_alive()

    def wait_until_consuming(self, timeout: float) -> bool:
        return self._consuming.wait(timeout)

    def part(self, name: str = "consumer") -> Part:
        """This consumer as a part of its process (kcc_shared.runner)."""
        return Part(name, self.start, self.stop, lambda: self.running, self.stalled)

    def stalled(self) -> str | None:
        """Why this consumer is not alive and making progress, or None when it is."""
        if not self.running:
            return "the consumer thread is not running"
        now = time.monotonic()
        if now - self._turned_at > self.stall_timeout:
            return f"the consume loop has not turned for {now - self._turned_at:.0f} s"
        holding = len(self._batch) + self._held + len(self._retrying)
        if holding and now - self._settled_at > self.stall_timeout:
            return f"holds {holding} messages and settled none for {now - self._settled_at:.0f} s"
        return None

    # -- kombu hooks -------------------------------------------------------------------------

    def get_consumers(self, consumer_cls: Callable[..., Consumer], channel: Any) -> list[Consumer]:
        # One kombu Consumer per queue, so every callback knows its message's queue; they share
        # the one channel. auto_declare: each queue and its bindings exist before consuming.
        return [
            consumer_cls(
                queues=[queue],
                callbacks=[self._callback_for(queue.name)],
                accept=["json"],
                prefetch_count=self.prefetch,
                on_decode_error=self._decode_error_for(queue.name),
            )
            for queue in self.queues
        ]

    def _callback_for(self, queue: str) -> Callable[[Any, Message], None]:
        return lambda body, message: self.on_message(body, message, queue)

    def _decode_error_for(self, queue: str) -> Callable[[Message, Exception], None]:
        def park(message: Message, exc: Exception) -> None:
            # kombu's default acks (drops) what it cannot decode: park it instead.
            self.park(message, f"undecodable: {type(exc).__name__}", queue)

        return park

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        self._decode_error_for(self.queues[0].name)(message, exc)

    @contextmanager
    def establish_connection(self) -> Iterator[Connection]:
        # Like kombu's, but retrying by the retry policy and giving up at once on stop()
        # (kombu's own loop would sleep through it).
        with self.create_connection() as conn:  # type: ignore[no-untyped-call]
            conn.ensure_connection(
                self.on_connection_error,
                self.connect_max_retries,
                interval_start=RETRY.first,
                interval_step=RETRY.first,
                interval_max=RETRY.cap,
                callback=self._raise_if_stopping,
            )
            yield conn

    def consume(
        self,
        limit: int | None = None,
        timeout: float | None = None,
        safety_interval: float = IDLE_POLL,
        **kwargs: Any,
    ) -> Iterator[None]:
        # kombu's loop, except that a drain blocks only as long as the batch in hand allows,
        # and a batch is processed when full, after a short silence, or when it waited long
        # enough. It runs until stop(): kombu's limit and timeout do not apply.
        del limit, timeout
        with self.consumer_context(**kwargs) as (conn, _channel, _consumers):
            self._conn = conn
            while not self.should_stop:
                self._turned_at = time.monotonic()
                self._requeue_due()
                if self._batch_due():
                    self.flush()
                elif not self._batch:
                    self.between_batches()
                self._drain(self.idle_timeout if self._batch else safety_interval)
                yield
            # An orderly stop: finish the batch in hand while the channel can still settle it.
            self.flush()
            self._requeue_due(everything=True)

    def between_batches(self) -> None:
        """Called when nothing is gathered (the router looks at its files here)."""

    def on_connection_revived(self) -> None:
        # Whatever an earlier channel held went back to the queue when it closed. Forget it
        # before the consumers start, so nothing delivered on the new channel is forgotten.
        self._batch = []
        self._retrying = []

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **_: Any) -> None:
        self._consuming.set()
        log.info(
            "consumer_ready",
            extra={
                "service": self.service,
                "queue": ",".join(q.name for q in self.queues),
                "batch_size": self.batch_size,
                "prefetch": self.prefetch,
            },
        )

    def on_consume_end(self, connection: Any, channel: Any) -> None:
        self._consuming.clear()

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        self._consuming.clear()
        self._raise_if_stopping()
        log.warning(
            "consumer_connection_lost",
            extra={"service": self.service, "error": str(exc)[:200], "retry_in": interval},
        )

    def _raise_if_stopping(self) -> None:
        if self.should_stop:
            raise _Stopped

    # -- gathering a batch -------------------------------------------------------------------

    def on_message(self, body: Any, message: Message, queue: str | None = None) -> None:
        queue = queue or self.queues[0].name
        try:
            # A message without a content type reaches us undecoded: parse its bytes.
            event = parse_event(body if isinstance(body, dict) else message.body)
        except UnknownSchemaVersion as exc:
            self.park(message, f"unknown_schema_version: {exc.reason}", queue)
            return
        except UnknownEventType as exc:
            # A newer release's event type reached a `request.#` binding during a rolling
            # upgrade: nothing here acts on it, so it is acked, not parked.
            log.info("event_type_ignored", extra={"service": self.service, "reason": exc.reason})
            self._ack(message, queue, "ignored")
            return
        except InvalidEvent as exc:
            self.park(message, f"invalid_event: {exc.reason}", queue)
            return
        now = time.monotonic()
        if not self._batch:
            self._batch_started = now
        self._last_delivery = now
        self._batch.append(Delivery(event, queue, message))

    def _batch_due(self) -> bool:
        if not self._batch:
            return False
        now = time.monotonic()
        return (
            len(self._batch) >= self.batch_size
            or now - self._last_delivery >= self.idle_timeout
            or now - self._batch_started >= self.max_wait
        )

    def flush(self) -> None:
        """Process the gathered batch; hold what is unsettled while a dependency is down."""
        batch, self._batch = self._batch, []
        failures = 0
        while batch:
            self._held = len(batch)
            try:
                self.process(batch)
            except Unavailable as exc:
                batch = [d for d in batch if not d.settled]
                if self.should_stop:
                    self._requeue([(d.message, d.queue) for d in batch])
                    break
                failures += 1
                log.warning(
                    exc.what,
                    extra={
                        "service": self.service,
                        "messages_held": len(batch),
                        "error": exc.detail[:_DETAIL_MAX],
                        "retry_in": RETRY.delay(failures),
                    },
                )
                pause(RETRY.delay(failures), lambda: self.should_stop, self._drain)
                continue
            unsettled = [d for d in batch if not d.settled]
            if unsettled:  # a bug in process(): never leave a message unacked for ever
                log.error("batch_left_unsettled", extra={"messages": len(unsettled)})
                self._requeue([(d.message, d.queue) for d in unsettled])
            break
        self._held = 0

    def _drain(self, seconds: float) -> None:
        """Take deliveries (and heartbeats) for up to `seconds`; keeps the connection alive
        during a long pause too, gathering what arrives into the next batch."""
        assert self._conn is not None
        try:
            self._conn.drain_events(timeout=seconds)
        except TimeoutError:
            pass
        except OSError:
            if not self.should_stop:
                raise
        # Sends our heartbeat when due, and raises when the broker's have stopped coming: a
        # connection cut silently is noticed after two heartbeat intervals.
        try:
            self._conn.heartbeat_check()
        except self._conn.connection_errors:
            # Closing it politely would wait for an answer that never comes: drop the socket.
            self._conn.collect()
            raise
        self._turned_at = time.monotonic()

    # -- settling, one message at a time ----------------------------------------------------

    def ack(self, delivery: Delivery, outcome: str = "acked") -> None:
        self._ack(delivery.message, delivery.queue, outcome)
        delivery.settled = True

    def retry_later(self, delivery: Delivery, error: Exception) -> None:
        """Requeue after a delay that grows with the delivery count; on the last delivery the
        queue allows, park it with the error instead (the broker's own dead-lettering would
        not say why)."""
        delivery.settled = True
        self._retry_later(delivery.message, delivery.queue, error)

    def park(self, message: Message, reason: str, queue: str) -> bool:
        """Publish the message to kcc.dead with the reason, then ack it; True when parked.
        When the broker does not take the dead letter it is retried later."""
        letter = parked(message, reason=reason[:_DETAIL_MAX], queue=queue, now=self._clock())
        try:
            failed = self.publisher.publish([letter]).failed
        except PublishError as exc:
            failed = {letter.message_id: str(exc)}
        if failed:
            error = PublishError("; ".join(failed.values()))
            log.warning("dead_letter_publish_failed", extra={"service": self.service})
            if _delivery_count(message) >= DELIVERY_LIMIT:
                self._requeue([(message, queue)])  # the broker dead-letters it now
            else:
                self._retry_later(message, queue, error)
            return False
        self._ack(message, queue, "dead_lettered")
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

    def park_delivery(self, delivery: Delivery, reason: str) -> None:
        delivery.settled = True
        self.park(delivery.message, reason, delivery.queue)

    def _retry_later(self, message: Message, queue: str, error: Exception) -> None:
        count = _delivery_count(message)
        if count >= DELIVERY_LIMIT:
            self.park(message, f"failed {count + 1} times: {_error_kind(error)}", queue)
            return
        delay = RETRY.delay(count + 1)
        log.warning(
            "message_retry_later",
            extra={
                "service": self.service,
                "queue": queue,
                "message_id": message.properties.get("message_id"),
                "delivery": count + 1,
                "error": _error_kind(error),
                "retry_in": delay,
            },
        )
        self._retrying.append((time.monotonic() + delay, message, queue))

    def _requeue_due(self, everything: bool = False) -> None:
        if not self._retrying:
            return
        now = time.monotonic()
        due = [(m, q) for t, m, q in self._retrying if everything or t <= now]
        self._retrying = [] if everything else [r for r in self._retrying if r[0] > now]
        self._requeue(due)

    def _ack(self, message: Message, queue: str, outcome: str) -> None:
        message.ack()
        self._settled_at = time.monotonic()
        MESSAGES_CONSUMED.labels(self.service, queue, outcome).inc()

    def _requeue(self, messages: list[tuple[Message, str]]) -> None:
        for message, queue in messages:
            message.requeue()
            MESSAGES_CONSUMED.labels(self.service, queue, "requeued").inc()
        if messages:
            self._settled_at = time.monotonic()


class _Stopped(Exception):
    """Raised inside kombu's connection retry loop when stop() was called; ends run()."""


def _delivery_count(message: Message) -> int:
    """Earlier deliveries of this message (quorum queues count them in x-delivery-count)."""
    count = (message.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0


def _error_kind(exc: BaseException) -> str:
    # The driver's message may carry a URL or a value; the class name says enough.
    original = getattr(exc, "orig", None)
    return type(original or exc).__name__


# -- consuming into a store -------------------------------------------------------------------


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


class _HandlerFailed(Exception):
    """A per-event handler failed on this event; the rest of its batch may still be fine."""

    def __init__(self, event_id: str, cause: Exception) -> None:
        super().__init__(event_id)
        self.event_id = event_id
        self.cause = cause


class EventConsumer(BatchConsumer):
    """Consumes one or more queues into a store, a batch of messages per transaction.

    In ONE transaction the batch's event ids seen before are looked up, the new ones recorded
    and applied (each id once, however often it is in the batch); commit; then every message
    of the batch is acked. A crash before the commit redelivers the batch; after it, the
    redelivered ids are recorded, i.e. harmless duplicates.

    A failing event never holds up the others: with a per-event `handler` the event that
    raised is parked (EventRejected) or retried later (anything else) and the rest applied
    without it; with a `batch_handler` the batch is applied one event at a time. Only a lost
    database connection counts as "database unavailable" (the batch is held, as long as it
    takes); a statement timeout or a constraint error is the event's failure and spends one
    of its deliveries.
    """

    def __init__(
        self,
        *,
        service: str,
        config: Config,
        queue: Queue,
        engine: Engine,
        processed: Table,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        prefetch: int | None = None,
        batch_size: int | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_wait: float = DEFAULT_MAX_WAIT,
        after_commit: Callable[[Event], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        extra_queues: Sequence[Queue] = (),
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise TypeError("EventConsumer needs exactly one of handler= or batch_handler=")
        # More queues into the same store (the back office: every department queue plus its
        # agent events); each message is recorded, counted and parked under its own queue.
        super().__init__(
            service=service,
            config=config,
            queues=[queue, *extra_queues],
            prefetch=prefetch,
            batch_size=batch_size,
            idle_timeout=idle_timeout,
            max_wait=max_wait,
            clock=clock,
        )
        self.queue = queue
        self._engine = engine
        self._processed = processed
        self._handler = handler
        self._batch_handler = batch_handler
        self._after_commit = after_commit

    def process(self, batch: list[Delivery]) -> None:
        # Copies of one event (same id) in a batch are applied once and settled together.
        events: dict[str, list[Delivery]] = {}
        for delivery in batch:
            events.setdefault(delivery.event.id, []).append(delivery)
        self._commit(list(events.values()))

    def _commit(self, groups: list[list[Delivery]]) -> None:
        remaining = groups
        while remaining:
            try:
                applied = self._transaction(remaining)
            except _HandlerFailed as failure:
                # We know which event broke it: settle that one and try the rest again.
                culprit = next(g for g in remaining if g[0].event.id == failure.event_id)
                self._failed(culprit, failure.cause)
                remaining = [g for g in remaining if g is not culprit]
                continue
            except Exception as exc:
                if self._database_lost(exc):
                    raise Unavailable("database_unavailable", _error_kind(exc)) from exc
                if len(remaining) == 1:
                    self._failed(remaining[0], exc)
                    return
                # The failure belongs to no event we can name (a batch handler, the commit, a
                # clash with another consumer): one transaction per event sorts it out.
                log.warning(
                    "event_batch_failed",
                    extra={
                        "service": self.service,
                        "events": len(remaining),
                        "error": _error_kind(exc),
                    },
                )
                for group in remaining:
                    self._commit([group])
                return
            self._committed(remaining, applied)
            return

    def _transaction(self, groups: list[list[Delivery]]) -> set[str]:
        """Record and apply the events not seen before, in one transaction; return their ids."""
        p = self._processed
        with write(self._engine) as connection:
            seen = set(
                connection.execute(
                    select(p.c.event_id).where(p.c.event_id.in_([g[0].event.id for g in groups]))
                ).scalars()
            )
            fresh = [g[0] for g in groups if g[0].event.id not in seen]
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
            except SQLAlchemyError:
                raise  # the database's, not the event's: _database_lost() decides
            except Exception as exc:
                raise _HandlerFailed(event.id, exc) from exc

    def _database_lost(self, exc: Exception) -> bool:
        """Whether `exc` means the database cannot be reached (as opposed to this statement
        failing: a timeout, a constraint, a lock)."""
        if not isinstance(exc, SQLAlchemyError):
            return False
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        # A refused connection and a statement timeout are both OperationalErrors: ask the
        # database itself whether it answers.
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return True
        return False

    def _committed(self, groups: list[list[Delivery]], applied: set[str]) -> None:
        for group in groups:
            first, *copies = group
            self.ack(first, "acked" if first.event.id in applied else "duplicate")
            for copy in copies:
                self.ack(copy, "duplicate")
        if self._after_commit is None:
            return
        for group in groups:
            event = group[0].event
            if event.id not in applied:
                continue
            try:
                self._after_commit(event)
            except Exception:  # the event is stored and acked; a hook must not stop consuming
                log.exception(
                    "after_commit_failed", extra={"service": self.service, "event_id": event.id}
                )

    def _failed(self, group: list[Delivery], exc: Exception) -> None:
        first, *copies = group
        if isinstance(exc, EventRejected):
            self.park_delivery(first, f"rejected: {exc.reason}")
        elif isinstance(exc, IntegrityError) and _is_duplicate(exc, self._processed.name):
            # Another consumer committed the same event id between our look-up and our insert.
            self._committed([group], applied=set())
            return
        else:
            # A bug, a statement timeout, a constraint: retried with a growing delay; on its
            # last delivery it is parked with the error's name.
            log.error(
                "event_apply_failed",
                exc_info=exc,
                extra={"service": self.service, "event_id": first.event.id},
            )
            self.retry_later(first, exc)
        # The event is parked or waits for its retry once; its copies would only repeat it.
        for copy in copies:
            self.ack(copy, "duplicate")


def _is_duplicate(exc: IntegrityError, table: str) -> bool:
    # Only a clash on the processed-events key means "seen before"; any other constraint the
    # handler violated is a real error.
    message = str(exc.orig).lower()
    return table in message or "processed_events_pkey" in message


def check_broker(broker_url: str, timeout: float) -> None:
    """Readiness: one bounded connection attempt."""
    connection = connection_factory(broker_url, timeout=timeout)()
    try:
        connect_once(connection)
    finally:
        connection.release()
