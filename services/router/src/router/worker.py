"""The router's consumer: batches of router.work in, confirmed routed events out, then acks."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import amqp
from kcc_shared.deadletters import parked
from kcc_shared.events import Event, InvalidEvent, UnknownSchemaVersion, parse_event
from kcc_shared.organisation import Organisation, OrganisationError, load_organisation
from kcc_shared.publisher import (
    Outgoing,
    Publisher,
    PublishError,
    Sent,
    broker_connection,
    connect_once,
    connection_factory,
)
from kcc_shared.topology import (
    declare,
    department_queue,
    service_queue,
)
from kombu.connection import Connection
from kombu.message import Message
from kombu.mixins import ConsumerMixin

from router import metrics
from router.decision import Decider, Query, RoutingDecision
from router.dispatch import DispatchRefused, dispatch, query_for
from router.model import ModelError, RoutingModel
from router.rules import RuleSet

__all__ = ["WORK_QUEUE", "NotReady", "RouterWorker", "WorkerStopped"]

log = logging.getLogger(__name__)

WORK_QUEUE: Final = "router.work"
# Flush a batch when no message arrived for this long (the broker has nothing more for us).
DEFAULT_IDLE_TIMEOUT: Final = 0.005
# ... or when its first message has waited this long, so a trickle is not held back.
DEFAULT_MAX_WAIT: Final = 0.05
DEFAULT_RELOAD_INTERVAL: Final = 2.0
# After a failed publish the inputs are requeued; wait before taking them again so a broker
# hiccup does not burn through the delivery limit in a few milliseconds.
BACKOFF_START: Final = 0.5
BACKOFF_MAX: Final = 8.0
# With nothing in hand the consumer wakes this often to check for stop() and the file.
IDLE_POLL: Final = 0.2
_DETAIL_MAX: Final = 300


class NotReady(Exception):
    """A readiness check failed."""


class WorkerStopped(Exception):
    """Raised inside the connection retry loop when stop() was called; ends run()."""


@dataclass
class _Delivery:
    """One message taken from router.work, with what was decided for it."""

    message: Message
    body: Any
    decode_error: str | None = None
    outgoing: Outgoing | None = None
    # "routed" or "dead_lettered"; None: failed unexpectedly, requeue.
    kind: str | None = None
    department: str | None = None
    reason: str | None = None
    submitted_at: datetime | None = None


class RouterWorker(ConsumerMixin):
    """Consumes router.work in batches and publishes each batch with one confirm round.

    Per batch: parse and dispatch every message; publish the routed events and the dead
    letters together on the publisher's own connection; once the broker confirmed them, ack
    the inputs (one `multiple` ack when all succeeded) or requeue them. Nothing is acked
    before it is confirmed; a failure requeues, never drops.

    Batches overlap by one: the next batch is routed while the broker writes the previous
    one, and only then does the worker wait for that batch's confirms. Routing costs about as
    much CPU as the broker takes to confirm, so this hides most of it.
    """

    def __init__(
        self,
        broker_url: str,
        organisation: Organisation,
        *,
        organisation_file: str | Path | None = None,
        model: RoutingModel | None = None,
        model_file: str | Path | None = None,
        prefetch: int = 200,
        publish_timeout: float = 5.0,
        batch_size: int | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_wait: float = DEFAULT_MAX_WAIT,
        reload_interval: float = DEFAULT_RELOAD_INTERVAL,
        clock: Callable[[], datetime] | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self._broker_url = broker_url
        self.connection = broker_connection(
            broker_url, connect_timeout=publish_timeout, heartbeat=0
        )
        self.prefetch = prefetch
        # Half the prefetch window: while one batch waits for its confirms, the broker already
        # delivers the next one, so the router never waits for the socket.
        self.batch_size = batch_size or max(1, prefetch // 2)
        self.idle_timeout = idle_timeout
        self.max_wait = max_wait
        self.reload_interval = reload_interval
        self._clock = clock or (lambda: datetime.now(UTC))
        # Short-lived, bounded connections for the publisher and for declaring queues.
        self._connection_factory = connection_factory(broker_url, timeout=publish_timeout)
        self._organisation = organisation
        # The rules and the model, swapped together on a reload so a batch sees one pair.
        self._decider = Decider(RuleSet.from_organisation(organisation), model)
        self._watch = Path(organisation_file) if organisation_file is not None else None
        self._seen_hash = _file_hash(self._watch)
        self._model_watch = Path(model_file) if model_file is not None else None
        self._seen_model_hash = _file_hash(self._model_watch)
        self._next_reload_check = 0.0
        # Its own connection: a confirm wait on the consumer's would re-enter our callbacks.
        self._publisher = publisher or Publisher(
            self._connection_factory, timeout=publish_timeout, on_connect=self._declare_on
        )
        self._pending: list[_Delivery] = []
        # The batch sent to the broker whose confirms are still to be collected.
        self._in_flight: tuple[list[_Delivery], Sent] | None = None
        self._batch_started = 0.0
        self._last_delivery = 0.0
        self._backoff = 0.0
        self._redeclare = False
        self._consuming = False
        self._thread: threading.Thread | None = None
        # Reload outcomes so far (applied / rejected / failed), for tests and operators to await.
        self._reloads: Counter[str] = Counter()
        self._reloaded = threading.Condition()
        metrics.set_rules_version(organisation.version)
        metrics.set_model_version(self._decider.model_version)

    # -- what others may look at ---------------------------------------------------------------

    @property
    def rules_version(self) -> str:
        return self._decider.ruleset.version

    @property
    def model_version(self) -> str | None:
        return self._decider.model_version

    @property
    def organisation(self) -> Organisation:
        return self._organisation

    @property
    def consuming(self) -> bool:
        """True while connected to the broker with the consumer registered."""
        return self._consuming

    @property
    def running(self) -> bool:
        """True while the consume loop runs (in a thread from start(), or in run())."""
        return not self.should_stop and (self._thread is None or self._thread.is_alive())

    def wait_for_reload(self, count: int, timeout: float, outcome: str = "applied") -> bool:
        """Block until `count` reloads with this outcome happened in total; False on timeout."""
        with self._reloaded:
            return self._reloaded.wait_for(lambda: self._reloads[outcome] >= count, timeout)

    def reloads(self, outcome: str = "applied") -> int:
        """How many reloads had this outcome (applied, rejected, failed) so far."""
        with self._reloaded:
            return self._reloads[outcome]

    def readiness_checks(self) -> dict[str, Callable[[], None]]:
        """Checks for /readyz: connected to the broker, consumer running, rules loaded."""

        def broker() -> None:
            if not self._consuming:
                raise NotReady("not connected to the broker")

        def consumer() -> None:
            if not self.running:
                raise NotReady("the consume loop is not running")

        def rules() -> None:
            if not self._decider.ruleset.version:
                raise NotReady("no rules loaded")

        return {"broker": broker, "consumer": consumer, "rules": rules}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Consume in a background thread until stop()."""
        self.should_stop = False
        self._thread = threading.Thread(target=self._run_quietly, name="router-worker")
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop consuming: the batches in hand are finished and acked, connections closed."""
        self.should_stop = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        log.info(
            "router_started",
            extra={
                "rules_version": self.rules_version,
                "model_version": self.model_version,
                "departments": len(self._organisation.departments),
                "batch_size": self.batch_size,
                "prefetch": self.prefetch,
            },
        )
        try:
            ConsumerMixin.run(self, _tokens, **kwargs)
        except WorkerStopped:
            pass
        finally:
            self._publisher.close()
            log.info("router_stopped")

    def _run_quietly(self) -> None:
        try:
            self.run()
        except Exception:  # the thread's last word: say why it died instead of vanishing
            log.exception("router_crashed")
            raise

    # -- kombu hooks ---------------------------------------------------------------------------

    def get_consumers(self, consumer: Callable[..., Any], channel: Any) -> list[Any]:
        return [
            consumer(
                queues=[service_queue(WORK_QUEUE)],
                callbacks=[self.on_message],
                accept=["json"],
                prefetch_count=self.prefetch,
            )
        ]

    @contextmanager
    def establish_connection(self) -> Iterator[Connection]:
        # Like kombu's, but retries forever with a short, capped interval and gives up at
        # once when stop() is called (kombu's own loop would sleep through it).
        with ConsumerMixin.create_connection(self) as conn:
            conn.ensure_connection(
                self.on_connection_error,
                self.connect_max_retries,
                interval_start=0.5,
                interval_step=1,
                interval_max=5,
                callback=self._raise_if_stopping,
            )
            yield conn

    def consume(
        self,
        limit: int | None = None,
        timeout: float | None = None,
        safety_interval: float = 1,
        **kwargs: Any,
    ) -> Iterator[None]:
        # kombu's loop, except that how long one drain may block follows the work in hand:
        # a batch being collected is flushed after a short silence; with nothing in hand the
        # loop wakes only to check for stop() and the organisation file. It runs until stop():
        # kombu's limit, timeout and safety_interval do not apply.
        del limit, timeout, safety_interval
        try:
            with self.consumer_context(**kwargs) as (conn, _channel, _consumers):
                while not self.should_stop:
                    self.on_iteration()
                    try:
                        conn.drain_events(timeout=self._drain_timeout())
                    except TimeoutError:
                        conn.heartbeat_check()
                    except OSError:
                        if not self.should_stop:
                            raise
                    else:
                        yield
        finally:
            self._consuming = False

    def on_connection_revived(self) -> None:
        # Messages taken on an earlier connection went back to the queue when it closed; a
        # batch still awaiting confirms is routed again (same ids: consumers dedupe them).
        # Reset before consuming starts, so nothing delivered on the new channel is forgotten.
        self._pending = []
        if self._in_flight is not None:
            self._in_flight = None
            self._publisher.close()
        # Every (re)connect: the topology and every department queue exist before consuming.
        self._declare(self._organisation)

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kw: Any) -> None:
        self._consuming = True
        log.info("router_consuming", extra={"queue": WORK_QUEUE})

    def on_consume_end(self, connection: Any, channel: Any) -> None:
        # An orderly stop: finish the batches in hand while the channel can still ack them.
        if self._pending:
            self.flush()
        self.settle()
        self._consuming = False

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        self._consuming = False
        self._raise_if_stopping()
        log.warning(
            "broker_connection_failed",
            extra={"error": f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX], "retry_in": interval},
        )

    def on_decode_error(self, message: Message, exc: Exception) -> None:
        # Not kombu's default (log and ack, i.e. drop): park it with the reason.
        self._receive(
            _Delivery(message, None, decode_error=f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX])
        )

    def on_message(self, body: Any, message: Message) -> None:
        self._receive(_Delivery(message, body))

    def on_iteration(self) -> None:
        now = time.monotonic()
        if self._pending and (
            len(self._pending) >= self.batch_size
            or now - self._last_delivery >= self.idle_timeout
            or now - self._batch_started >= self.max_wait
        ):
            self.flush()
        elif self._in_flight is not None and now - self._last_delivery >= self.idle_timeout:
            # Nothing more arrived to route meanwhile: collect the confirms now.
            self.settle()
        if not self._pending and self._in_flight is None:
            # Between batches: the next one is routed with whichever rules are current then.
            self._maybe_reload(now)

    # -- batches -------------------------------------------------------------------------------

    def _drain_timeout(self) -> float:
        if self._pending or self._in_flight is not None:
            return self.idle_timeout
        return min(IDLE_POLL, self.reload_interval)

    def _receive(self, delivery: _Delivery) -> None:
        now = time.monotonic()
        if not self._pending:
            self._batch_started = now
        self._last_delivery = now
        self._pending.append(delivery)

    def flush(self) -> None:
        """Route the collected batch, settle the one before it, then send this one."""
        deliveries, self._pending = self._pending, []
        now = self._clock()
        self._decide_all(deliveries, now)
        # The previous batch's confirms have been arriving while this one was routed.
        if not self.settle():
            # Its publish failed: the broker is in trouble, so this batch goes back too.
            self._requeue_all(deliveries)
            return
        if self._redeclare:
            self._declare(self._organisation)
            self._redeclare = False
        outgoing = [d.outgoing for d in deliveries if d.outgoing is not None]
        try:
            sent = self._publisher.send(outgoing)
        except PublishError as exc:
            self._publish_failed(deliveries, exc)
            return
        self._in_flight = (deliveries, sent)

    def settle(self) -> bool:
        """Wait for the confirms of the batch in flight, then ack or requeue its inputs.

        False when its publish failed (the inputs were requeued after a back-off).
        """
        if self._in_flight is None:
            return True
        (deliveries, sent), self._in_flight = self._in_flight, None
        try:
            result = self._publisher.wait(sent)
        except PublishError as exc:
            self._publish_failed(deliveries, exc)
            return False
        self._backoff = 0.0
        acks: list[_Delivery] = []
        requeues: list[_Delivery] = []
        for delivery in deliveries:
            out = delivery.outgoing
            if out is None:
                requeues.append(delivery)
            elif out.message_id in result.failed:
                log.warning(
                    "message_publish_refused",
                    extra={"message_id": out.message_id, "error": result.failed[out.message_id]},
                )
                # Most likely a department queue was deleted under us: declare before retrying.
                self._redeclare = True
                requeues.append(delivery)
            else:
                acks.append(delivery)
        self._ack_and_requeue(acks, requeues)
        self._account(acks, requeues)
        return True

    def _publish_failed(self, deliveries: list[_Delivery], exc: PublishError) -> None:
        metrics.BATCH_FAILURES.inc()
        self._backoff = min(BACKOFF_MAX, self._backoff * 2 or BACKOFF_START)
        log.warning(
            "batch_publish_failed",
            extra={
                "messages": len(deliveries),
                "error": str(exc)[:_DETAIL_MAX],
                "retry_in": self._backoff,
            },
        )
        self._requeue_all(deliveries)
        self._sleep(self._backoff)

    def _requeue_all(self, deliveries: list[_Delivery]) -> None:
        self._ack_and_requeue([], deliveries)
        metrics.MESSAGES_CONSUMED.labels(metrics.SERVICE, WORK_QUEUE, "requeued").inc(
            len(deliveries)
        )

    def _decide_all(self, deliveries: list[_Delivery], now: datetime) -> None:
        """Parse every message, let the deciders decide the batch at once (the model reads all
        questions in one pass), then build each routed event or park what cannot be routed."""
        events: list[tuple[_Delivery, Event]] = []
        for delivery in deliveries:
            event = self._parse(delivery, now)
            if event is not None:
                events.append((delivery, event))
        queries: list[Query] = []
        asking: list[int] = []
        for index, (_delivery, event) in enumerate(events):
            query = query_for(event)
            if query is not None:
                queries.append(query)
                asking.append(index)
        decisions: dict[int, RoutingDecision] = {}
        try:
            decisions = dict(zip(asking, self._decider.decide_many(queries), strict=True))
        except Exception:  # a bug must not stop routing: decide each message on its own below
            log.exception("batch_decide_failed", extra={"messages": len(queries)})
        for index, (delivery, event) in enumerate(events):
            self._route(delivery, event, decisions.get(index), now)

    def _parse(self, delivery: _Delivery, now: datetime) -> Event | None:
        message = delivery.message
        if delivery.decode_error is not None:
            self._park(delivery, f"undecodable: {delivery.decode_error}", now)
            return None
        try:
            if not isinstance(delivery.body, dict):
                raise InvalidEvent(
                    f"body is not a JSON object (content type {message.content_type!r})"
                )
            return parse_event(delivery.body)
        except UnknownSchemaVersion as exc:
            self._park(delivery, f"unknown_schema_version: {exc.reason}", now)
        except InvalidEvent as exc:
            self._park(delivery, f"invalid_event: {exc.reason}", now)
        return None

    def _route(
        self, delivery: _Delivery, event: Event, decision: RoutingDecision | None, now: datetime
    ) -> None:
        message = delivery.message
        try:
            routed = dispatch(event, self._decider, now=now, decision=decision)
        except DispatchRefused as exc:
            self._park(delivery, exc.reason, now)
        except Exception:  # a bug must not stop routing for everyone: retry, then the DLX
            log.exception(
                "message_route_failed",
                extra={"message_id": message.properties.get("message_id"), "queue": WORK_QUEUE},
            )
        else:
            delivery.kind = "routed"
            delivery.department = routed.data["department"]
            delivery.reason = routed.data["reason"]
            if event.type == "request.submitted":
                delivery.submitted_at = event.occurred_at
            delivery.outgoing = Outgoing(
                message_id=routed.id, routing_key=routed.routing_key, body=routed.to_json()
            )

    def _park(self, delivery: _Delivery, reason: str, now: datetime) -> None:
        delivery.kind = "dead_lettered"
        delivery.reason = reason[:_DETAIL_MAX]
        delivery.outgoing = parked(
            delivery.message, reason=delivery.reason, queue=WORK_QUEUE, now=now
        )

    def _ack_and_requeue(self, acks: list[_Delivery], requeues: list[_Delivery]) -> None:
        if acks:
            acks.sort(key=lambda d: d.message.delivery_tag)
            channel = acks[0].message.channel
            if not requeues and isinstance(channel, amqp.Channel):
                # Every earlier delivery on this channel is in this batch: one frame acks all.
                acks[-1].message.ack(multiple=True)
            else:
                for delivery in acks:
                    delivery.message.ack()
        for delivery in sorted(requeues, key=lambda d: d.message.delivery_tag):
            delivery.message.reject(requeue=True)

    def _account(self, acks: list[_Delivery], requeues: list[_Delivery]) -> None:
        # Counted per batch, not per message: label lookups cost more than the routing rules.
        consumed = metrics.MESSAGES_CONSUMED
        confirmed_at = self._clock()
        routed: Counter[tuple[str, str]] = Counter()
        latency: dict[str, list[float]] = {}
        debug = log.isEnabledFor(logging.DEBUG)
        for delivery in acks:
            out = delivery.outgoing
            assert out is not None
            assert delivery.reason is not None
            if delivery.kind == "dead_lettered":
                consumed.labels(metrics.SERVICE, WORK_QUEUE, "dead_lettered").inc()
                log.warning(
                    "message_dead_lettered",
                    extra={
                        "message_id": out.message_id,
                        "reason": delivery.reason,
                        "queue": WORK_QUEUE,
                    },
                )
                continue
            assert delivery.department is not None
            routed[delivery.department, delivery.reason] += 1
            if delivery.submitted_at is not None:
                latency.setdefault(delivery.department, []).append(
                    max(0.0, (confirmed_at - delivery.submitted_at).total_seconds())
                )
            if debug:
                log.debug(
                    "request_routed",
                    extra={
                        "event_id": out.message_id,
                        "department": delivery.department,
                        "reason": delivery.reason,
                    },
                )
        if routed:
            consumed.labels(metrics.SERVICE, WORK_QUEUE, "acked").inc(routed.total())
        for (department, reason), count in routed.items():
            metrics.REQUESTS_ROUTED.labels(department, reason).inc(count)
        for department, seconds in latency.items():
            histogram = metrics.ROUTE_SECONDS.labels(department)
            for value in seconds:
                histogram.observe(value)
        if requeues:
            consumed.labels(metrics.SERVICE, WORK_QUEUE, "requeued").inc(len(requeues))

    # -- topology and reload -------------------------------------------------------------------

    def _queues(self, organisation: Organisation) -> list[Any]:
        return [service_queue(WORK_QUEUE), *map(department_queue, organisation.departments)]

    def _declare_on(self, connection: Connection) -> None:
        declare(connection, self._queues(self._organisation))

    def _declare(self, organisation: Organisation) -> None:
        connection = self._connection_factory()
        try:
            connect_once(connection)
            declare(connection, self._queues(organisation))
        finally:
            connection.release()

    def _maybe_reload(self, now: float) -> None:
        if now < self._next_reload_check:
            return
        self._next_reload_check = now + self.reload_interval
        # A missing file (mid-replace, or deleted) keeps the rules and the model in force.
        digest = _file_hash(self._watch)
        if digest is not None and digest != self._seen_hash:
            self.reload(digest)
        model_digest = _file_hash(self._model_watch)
        if model_digest is not None and model_digest != self._seen_model_hash:
            self.reload_model(model_digest)

    def reload_model(self, digest: str | None = None) -> bool:
        """Load the model file again; swap it in only if it is readable and fits the rules."""
        assert self._model_watch is not None
        self._seen_model_hash = digest
        try:
            model = RoutingModel.load(self._model_watch)
            decider = Decider(self._decider.ruleset, model, self._decider.policy)
        except ModelError as exc:
            metrics.MODEL_RELOADS.labels("rejected").inc()
            self._reloaded_with("model_rejected")
            log.error(
                "model_reload_rejected",
                extra={
                    "file": str(self._model_watch),
                    "problem": str(exc)[:_DETAIL_MAX],
                    "model_version": self.model_version,
                },
            )
            return False
        old = self.model_version
        self._decider = decider
        metrics.set_model_version(model.version)
        metrics.MODEL_RELOADS.labels("applied").inc()
        log.info("model_reloaded", extra={"model_version": model.version, "previous_version": old})
        self._reloaded_with("model_applied")
        return True

    def reload(self, digest: str | None = None) -> bool:
        """Load the organisation file again; swap the rules only if it is valid and declared."""
        assert self._watch is not None
        try:
            organisation = load_organisation(self._watch)
        except OrganisationError as exc:
            self._seen_hash = digest
            metrics.RULES_RELOADS.labels("rejected").inc()
            self._reloaded_with("rejected")
            log.error(
                "rules_reload_rejected",
                extra={
                    "file": str(self._watch),
                    "problems": [str(p) for p in exc.problems],
                    "rules_version": self.rules_version,
                },
            )
            return False
        try:
            # Queues for new departments exist before the first request is routed to them.
            self._declare(organisation)
        except (*self.connection.connection_errors, *self.connection.channel_errors) as exc:
            # Broker trouble: keep the old rules; the unchanged hash makes the next poll retry.
            metrics.RULES_RELOADS.labels("failed").inc()
            self._reloaded_with("failed")
            log.warning(
                "rules_reload_failed",
                extra={"error": f"{type(exc).__name__}: {exc}"[:_DETAIL_MAX]},
            )
            return False
        try:
            decider = Decider(
                RuleSet.from_organisation(organisation), self._decider.model, self._decider.policy
            )
        except ModelError as exc:
            # The new organisation lost a department the model routes to: keep both as they are.
            self._seen_hash = digest
            metrics.RULES_RELOADS.labels("rejected").inc()
            self._reloaded_with("rejected")
            log.error(
                "rules_reload_rejected",
                extra={
                    "file": str(self._watch),
                    "problems": [str(exc)[:_DETAIL_MAX]],
                    "rules_version": self.rules_version,
                },
            )
            return False
        old = self.rules_version
        self._organisation = organisation
        self._decider = decider
        self._seen_hash = digest
        metrics.set_rules_version(organisation.version)
        metrics.RULES_RELOADS.labels("applied").inc()
        log.info(
            "rules_reloaded",
            extra={
                "rules_version": organisation.version,
                "previous_version": old,
                "departments": len(organisation.departments),
            },
        )
        self._reloaded_with("applied")
        return True

    # -- helpers -------------------------------------------------------------------------------

    def _reloaded_with(self, outcome: str) -> None:
        with self._reloaded:
            self._reloads[outcome] += 1
            self._reloaded.notify_all()

    def _raise_if_stopping(self) -> None:
        if self.should_stop:
            raise WorkerStopped

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.should_stop and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))


def _file_hash(path: Path | None) -> str | None:
    """The SHA-256 of a watched file; None without a file or when it cannot be read now."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
