"""The SLA monitor's long-running parts: the event consumer and the deadline scheduler."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

from kcc_shared.config import Config
from kcc_shared.consumer import EventConsumer
from kcc_shared.events import Event
from kcc_shared.outbox import relay_for
from kcc_shared.runner import Part
from kcc_shared.topology import service_queue
from sqlalchemy import Connection

from sla_monitor import metrics
from sla_monitor.metrics import Observation
from sla_monitor.store import SlaStore
from sla_monitor.tables import outbox, processed

__all__ = ["QUEUE", "SERVICE", "DeadlineScheduler", "SlaIngest", "SlaMonitor", "utcnow"]

log = logging.getLogger(__name__)

SERVICE: Final = "sla-monitor"
QUEUE: Final = "sla-monitor.events"
# The scheduler looks at least this often (seconds of real time), and sooner when a deadline
# is nearer; a consumer that stores a new clock wakes it too.
SCHEDULER_MAX_WAIT: Final = 1.0

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class SlaIngest:
    """The consumer's batch handler: applies a batch of events to the store and, after the
    commit, updates the metrics and wakes the relay (warnings/breaches found at ingest) and the
    scheduler."""

    def __init__(
        self,
        store: SlaStore,
        *,
        clock: Clock = utcnow,
        on_committed: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._on_committed = on_committed
        # Each event's metric updates wait here for its after_commit call.
        self._pending: dict[str, list[Observation]] = {}

    def __call__(self, connection: Connection, events: Sequence[Event]) -> None:
        # Replaced per transaction: whatever a rolled-back attempt left behind never counts.
        self._pending = self._store.apply_events(connection, events, self._clock())

    def after_commit(self, event: Event) -> None:
        for observe in self._pending.pop(event.id, []):
            observe()
        metrics.LAST_EVENT_INGESTED.set(time.time())
        self._on_committed()


class DeadlineScheduler:
    """Announces warnings and breaches at the moment a running clock passes its threshold.

    Each open clock's next deadline is stored (computed with the department's calendar), so a
    tick is one indexed query for the clocks due by ``clock()``. Tests call ``tick()`` with a
    fake clock; the thread only decides *when* to tick.
    """

    def __init__(
        self,
        store: SlaStore,
        *,
        clock: Clock = utcnow,
        on_fired: Callable[[], None] = lambda: None,
        max_wait: float = SCHEDULER_MAX_WAIT,
    ) -> None:
        self._notices = store.notices
        self._clock = clock
        self._on_fired = on_fired
        self._max_wait = max_wait
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> int:
        """Announce everything due now; returns how many notices went into the outbox."""
        total, observations = self._notices.fire_due(self._clock())
        for observe in observations:
            observe()
        if total:
            log.info("sla_notices_emitted", extra={"count": total})
            self._on_fired()
        return total

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="sla-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def part(self) -> Part:
        """The scheduler as a part of its process (kcc_shared.runner)."""
        return Part("scheduler", self.start, self.stop, lambda: self.running)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                self.tick()
                due = self._notices.earliest_due()
            except Exception:  # a DB hiccup must not end the scheduler; the next tick retries
                log.exception("sla_scheduler_failed")
                due = None
            wait = self._max_wait
            if due is not None:
                # A floor, so a clock due "now" whose threshold rounding keeps it due cannot spin.
                wait = min(wait, max((due - self._clock()).total_seconds(), 0.05))
            self._wakeup.wait(wait)


class SlaMonitor:
    """Consumer, scheduler and outbox relay of one SLA monitor process, started and stopped
    in order (stop: consumer first, so nothing new arrives; the relay last, so what the others
    put in the outbox still goes out)."""

    def __init__(self, config: Config, store: SlaStore, *, clock: Clock = utcnow) -> None:
        self.relay = relay_for(config, store.engine, outbox, service=SERVICE, clock=clock)
        self.scheduler = DeadlineScheduler(store, clock=clock, on_fired=self.relay.wake)

        def committed() -> None:
            self.relay.wake()
            self.scheduler.wake()

        self.ingest = SlaIngest(store, clock=clock, on_committed=committed)
        self.consumer = EventConsumer(
            service=SERVICE,
            config=config,
            queue=service_queue(QUEUE),
            engine=store.engine,
            processed=processed,
            batch_handler=self.ingest,
            after_commit=self.ingest.after_commit,
            clock=clock,
        )

    def parts(self) -> list[Part]:
        """In start order; the runner stops them in reverse (kcc_shared.runner)."""
        return [self.relay.part(), self.scheduler.part(), self.consumer.part()]

    def start(self) -> None:
        self.relay.start()
        self.scheduler.start()
        self.consumer.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.consumer.stop(timeout)
        self.scheduler.stop(timeout)
        self.relay.stop(timeout)
