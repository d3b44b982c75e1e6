"""Transactional outbox: events stored with the change that caused them, relayed with confirms."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    text,
    update,
)

from kcc_shared.backoff import RETRY
from kcc_shared.config import Config
from kcc_shared.db import UtcDateTime, is_postgres, write
from kcc_shared.events import Event
from kcc_shared.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    OUTBOX_PUBLISH_FAILURES,
    OUTBOX_PUBLISHED,
)
from kcc_shared.publisher import Outgoing, Publisher, PublishError, connection_factory
from kcc_shared.retention import outbox_target, prune
from kcc_shared.runner import Part
from kcc_shared.topology import declare_service_queues

__all__ = [
    "Clock",
    "Outbox",
    "OutboxRelay",
    "backlog_gauges",
    "outbox_backlog",
    "outbox_table",
    "relay_for",
    "utcnow",
]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def outbox_table(metadata: MetaData) -> Table:
    """The outbox table, added to a service's own metadata so it lives in the service's DB."""
    return Table(
        "outbox",
        metadata,
        # seq orders publishing (events of one request go out in the order they were stored).
        Column(
            "seq",
            Integer().with_variant(BigInteger(), "postgresql"),
            primary_key=True,
            autoincrement=True,
        ),
        Column("event_id", String(36), nullable=False, unique=True),
        Column("routing_key", String(255), nullable=False),
        Column("body", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("sent_at", UtcDateTime, nullable=True),
        # A relay leases rows while it publishes them, so it holds no lock during network I/O;
        # a relay that dies mid-publish lets its lease expire and another picks the rows up.
        Column("lease_owner", String(36), nullable=True),
        Column("lease_until", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", String(300), nullable=True),
        Index(
            "ix_outbox_unsent",
            "seq",
            postgresql_where=text("sent_at IS NULL"),
            sqlite_where=text("sent_at IS NULL"),
        ),
    )


class Outbox:
    """Adds events to the outbox inside the caller's transaction."""

    def __init__(self, table: Table, clock: Clock = utcnow) -> None:
        self.table = table
        self._clock = clock

    def add(self, connection: Connection, events: Iterable[Event]) -> None:
        rows = [
            {
                "event_id": e.id,
                "routing_key": e.routing_key,
                "body": e.to_json(),
                "created_at": self._clock(),
                "attempts": 0,
            }
            for e in events
        ]
        if rows:
            connection.execute(insert(self.table), rows)


@dataclass(frozen=True)
class Backlog:
    unsent: int
    oldest_age_seconds: float


class OutboxRelay:
    """Publishes unsent outbox rows and marks each sent only after the broker confirmed it.

    A crash between confirm and mark republishes the row later: a duplicate the contract
    allows (consumers dedupe on the event id). `wake()` after a commit publishes at once;
    the poll interval only bounds how long a missed wake-up or a broker outage waits.
    """

    def __init__(
        self,
        engine: Engine,
        table: Table,
        publisher: Publisher,
        *,
        service: str,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        lease_seconds: float = 30.0,
        retention: timedelta = timedelta(days=7),
        clock: Clock = utcnow,
    ) -> None:
        self._engine = engine
        self._table = table
        self._publisher = publisher
        self._service = service
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lease = timedelta(seconds=lease_seconds)
        self._retention = retention
        self._clock = clock
        self._owner = str(uuid.uuid4())
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_purge = datetime.min.replace(tzinfo=UTC)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"outbox-relay-{self._service}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._publisher.close()

    def wake(self) -> None:
        self._wakeup.set()

    @property
    def running(self) -> bool:
        """The relay thread (from start()) is alive."""
        return self._thread is not None and self._thread.is_alive()

    def part(self) -> Part:
        """This relay as a part of its process (kcc_shared.runner)."""
        return Part("outbox-relay", self.start, self.stop, lambda: self.running)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                published = self.relay_once()
                failures = 0
            except PublishError as exc:
                failures += 1
                published = 0
                OUTBOX_PUBLISH_FAILURES.labels(self._service).inc()
                log.warning(
                    "outbox_publish_failed", extra={"error": str(exc), "failures": failures}
                )
            except Exception:  # the relay must outlive a DB hiccup; the rows wait for it
                failures += 1
                published = 0
                log.exception("outbox_relay_failed", extra={"failures": failures})
            # On its own timer, busy or not: a relay that always has work (or a broker that
            # stays down) would otherwise never purge.
            self._purge_sent()
            if published >= self._batch_size:
                continue  # more may be waiting: keep draining
            # While the broker or the database is down: the retry policy's growing pause.
            wait = RETRY.delay(failures) if failures else self._poll_interval
            self._wakeup.wait(wait)

    # -- work ------------------------------------------------------------------------------

    def relay_once(self) -> int:
        """Publish one batch of unsent rows; return how many the broker confirmed."""
        rows = self._claim()
        if not rows:
            return 0
        messages = [
            Outgoing(message_id=r.event_id, routing_key=r.routing_key, body=r.body) for r in rows
        ]
        try:
            result = self._publisher.publish(messages)
        except PublishError as exc:
            self._record_failure([r.seq for r in rows], str(exc))
            raise
        confirmed = set(result.confirmed)
        t = self._table
        with write(self._engine) as connection:
            sent = [r.seq for r in rows if r.event_id in confirmed]
            if sent:
                connection.execute(
                    update(t)
                    .where(t.c.seq.in_(sent))
                    .values(sent_at=self._clock(), lease_owner=None, lease_until=None)
                )
        failed = [r.seq for r in rows if r.event_id in result.failed]
        if failed:
            reasons = sorted(set(result.failed.values()))
            self._record_failure(failed, "; ".join(reasons))
            OUTBOX_PUBLISH_FAILURES.labels(self._service).inc(len(failed))
            log.error("outbox_messages_refused", extra={"count": len(failed), "reasons": reasons})
        OUTBOX_PUBLISHED.labels(self._service).inc(len(sent))
        return len(sent)

    def _claim(self) -> list[_Row]:
        t = self._table
        now = self._clock()
        with write(self._engine) as connection:
            query = (
                select(t.c.seq)
                .where(t.c.sent_at.is_(None))
                .where((t.c.lease_until.is_(None)) | (t.c.lease_until < now))
                .order_by(t.c.seq)
                .limit(self._batch_size)
            )
            if is_postgres(self._engine):
                # Several relays (gunicorn workers, replicas) share the table without waiting.
                query = query.with_for_update(skip_locked=True)
            seqs = list(connection.execute(query).scalars())
            if not seqs:
                return []
            connection.execute(
                update(t)
                .where(t.c.seq.in_(seqs))
                .values(
                    lease_owner=self._owner,
                    lease_until=now + self._lease,
                    attempts=t.c.attempts + 1,
                )
            )
            result = connection.execute(
                select(t.c.seq, t.c.event_id, t.c.routing_key, t.c.body)
                .where(t.c.seq.in_(seqs))
                .order_by(t.c.seq)
            )
            return [_Row(r.seq, r.event_id, r.routing_key, r.body) for r in result]

    def _record_failure(self, seqs: list[int], error: str) -> None:
        t = self._table
        try:
            with write(self._engine) as connection:
                # Release the lease so the next sweep (or another relay) retries at once.
                connection.execute(
                    update(t)
                    .where(t.c.seq.in_(seqs))
                    .values(lease_owner=None, lease_until=None, last_error=error[:300])
                )
        except Exception:  # the lease expires by itself; this only speeds the retry up
            log.warning("outbox_release_failed", exc_info=True)

    def _purge_sent(self) -> None:
        now = self._clock()
        if now - self._last_purge < timedelta(minutes=10):
            return
        self._last_purge = now
        try:
            # In batches (kcc_shared.retention): short transactions beside the publishing.
            prune(self._engine, [outbox_target(self._table)], now - self._retention)
        except Exception:  # the relay must outlive a failed purge; the next one catches up
            log.exception("outbox_purge_failed", extra={"service": self._service})

    def backlog(self) -> Backlog:
        return outbox_backlog(self._engine, self._table, self._clock())


def outbox_backlog(engine: Engine, table: Table, now: datetime) -> Backlog:
    t = table
    with engine.connect() as connection:
        count, oldest = connection.execute(
            select(func.count(), func.min(t.c.created_at)).where(t.c.sent_at.is_(None))
        ).one()
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    return Backlog(unsent=int(count), oldest_age_seconds=max(age, 0.0))


def backlog_gauges(
    engine: Engine, table: Table, service: str, clock: Clock = utcnow
) -> Callable[[], None]:
    """The hook that sets a service's kcc_outbox_backlog and kcc_outbox_oldest_age_seconds
    before each scrape."""

    def refresh() -> None:
        backlog = outbox_backlog(engine, table, clock())
        OUTBOX_BACKLOG.labels(service).set(backlog.unsent)
        OUTBOX_OLDEST_AGE.labels(service).set(backlog.oldest_age_seconds)

    return refresh


@dataclass(frozen=True)
class _Row:
    seq: int
    event_id: str
    routing_key: str
    body: str


def relay_for(
    config: Config, engine: Engine, table: Table, *, service: str, clock: Clock = utcnow
) -> OutboxRelay:
    """A service's relay, publishing with confirms on a connection of its own that declares
    every service queue first (an event must never be dropped for want of a queue)."""
    publisher = Publisher(
        connection_factory(config.broker_url, timeout=config.publish_timeout),
        timeout=config.publish_timeout,
        on_connect=declare_service_queues,
    )
    return OutboxRelay(
        engine,
        table,
        publisher,
        service=service,
        batch_size=config.outbox_batch_size,
        poll_interval=config.outbox_poll_interval,
        clock=clock,
    )
