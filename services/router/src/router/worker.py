"""The router's consumer: batches of router.work in, confirmed routed events out, then acks."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from kcc_shared.config import Config
from kcc_shared.consumer import BatchConsumer, Delivery, Unavailable
from kcc_shared.events import Event
from kcc_shared.organisation import Organisation
from kcc_shared.publisher import Outgoing, PublishError, connect_once, connection_factory
from kcc_shared.topology import declare, department_queue, service_queue
from kombu.connection import Connection

from router import metrics
from router.decision import Decider, Query, RoutingDecision
from router.dispatch import dispatch, query_for
from router.errors import DispatchRefused, NotReady, PublishRefused
from router.model import RoutingModel
from router.watcher import DEFAULT_RELOAD_INTERVAL, RoutingFiles

__all__ = ["WORK_QUEUE", "RouterWorker"]

log = logging.getLogger(__name__)

WORK_QUEUE: Final = "router.work"


class RouterWorker(BatchConsumer):
    """Consumes router.work in batches and publishes each batch with one confirm round.

    Per batch: decide every question (the model reads them in one pass), publish the routed
    events on the publisher's own connection and, once the broker confirmed them, ack the
    inputs. When the publish fails (the broker is unreachable, blocks publishers in a memory
    alarm or refuses a message) the batch is held and published again after the retry
    policy's pause, for as long as it takes: an alarm delays routing, it never parks good
    messages. The gather loop, the retry policy and the parking are kcc_shared.consumer's;
    the rules and model files are watched by router.watcher.
    """

    def __init__(
        self,
        config: Config,
        organisation: Organisation,
        *,
        model: RoutingModel | None = None,
        model_file: str | Path | None = None,
        batch_size: int | None = None,
        reload_interval: float = DEFAULT_RELOAD_INTERVAL,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        # Short-lived, bounded connections for declaring queues.
        self._connection_factory = connection_factory(
            config.broker_url, timeout=config.publish_timeout
        )
        self.files = RoutingFiles(
            organisation,
            model,
            declare=self._declare,
            organisation_file=config.organisation_file,
            model_file=model_file,
            interval=reload_interval,
        )
        super().__init__(
            service=metrics.SERVICE,
            config=config,
            queues=[service_queue(WORK_QUEUE)],
            # Half the prefetch window: while one batch waits for its confirms, the broker
            # already delivers the next one.
            batch_size=batch_size or max(1, config.prefetch // 2),
            clock=clock or (lambda: datetime.now(UTC)),
            on_publisher_connect=self._declare_on,
        )
        self._redeclare = False

    # -- what others may look at ---------------------------------------------------------------

    @property
    def rules_version(self) -> str:
        return self.files.decider.ruleset.version

    @property
    def model_version(self) -> str | None:
        return self.files.decider.model_version

    @property
    def organisation(self) -> Organisation:
        return self.files.organisation

    def wait_for_reload(self, count: int, timeout: float, outcome: str = "applied") -> bool:
        """Block until `count` reloads with this outcome happened in total; False on timeout."""
        return self.files.wait_for(count, timeout, outcome)

    def reloads(self, outcome: str = "applied") -> int:
        """How many reloads had this outcome (applied, rejected, failed, model_*) so far."""
        return self.files.count(outcome)

    def readiness_checks(self) -> dict[str, Callable[[], None]]:
        """Checks for /readyz: connected to the broker, consumer running, rules loaded."""

        def broker() -> None:
            if not self.consuming:
                raise NotReady("not connected to the broker")

        def consumer() -> None:
            if not self.running:
                raise NotReady("the consume loop is not running")

        def rules() -> None:
            if not self.rules_version:
                raise NotReady("no rules loaded")

        return {"broker": broker, "consumer": consumer, "rules": rules}

    # -- the consume loop's hooks --------------------------------------------------------------

    def on_connection_revived(self) -> None:
        super().on_connection_revived()
        # Every (re)connect: the topology and every department queue exist before consuming.
        self._declare(self.organisation)

    def between_batches(self) -> None:
        # The next batch is routed with whichever rules and model are current then.
        self.files.poll()

    def process(self, batch: list[Delivery]) -> None:
        now = self._clock()
        decider = self.files.decider
        routed = [
            (delivery, event)
            for delivery, decision in zip(batch, _decide(decider, batch), strict=True)
            if (event := self._route(delivery, decider, decision, now)) is not None
        ]
        if self._redeclare:
            self._declare(self.organisation)
            self._redeclare = False
        try:
            result = self.publisher.publish(
                [
                    Outgoing(message_id=e.id, routing_key=e.routing_key, body=e.to_json())
                    for _, e in routed
                ]
            )
        except PublishError as exc:
            metrics.BATCH_FAILURES.inc()
            raise Unavailable("batch_publish_failed", str(exc)) from exc
        confirmed: list[tuple[Delivery, Event]] = []
        nacked = set(result.nacked)
        for delivery, event in routed:
            refusal = result.failed.get(event.id)
            if refusal is None:
                self.ack(delivery)
                confirmed.append((delivery, event))
            elif event.id not in nacked:
                log.warning(
                    "message_publish_refused", extra={"message_id": event.id, "error": refusal}
                )
                # Returned unroutable: most likely a department queue was deleted under us.
                # Declare before retrying.
                self._redeclare = True
                self.retry_later(delivery, PublishRefused(refusal))
        _account(confirmed, self._clock())
        if nacked:
            # The broker refused them (a full queue, a quorum queue electing a leader): hold
            # them like a failed publish, without spending their deliveries.
            metrics.BATCH_FAILURES.inc()
            raise Unavailable("batch_publish_failed", f"{len(nacked)} refused by the broker")

    def _route(
        self,
        delivery: Delivery,
        decider: Decider,
        decision: RoutingDecision | None,
        now: datetime,
    ) -> Event | None:
        """The routed event for one delivery, or None when it was parked or will be retried."""
        try:
            return dispatch(delivery.event, decider, now=now, decision=decision)
        except DispatchRefused as exc:
            self.park_delivery(delivery, exc.reason)
        except Exception as exc:  # a bug must not stop routing for everyone: retry, then park
            log.exception("message_route_failed", extra={"message_id": delivery.event.id})
            self.retry_later(delivery, exc)
        return None

    # -- topology --------------------------------------------------------------------------------

    def _queues(self, organisation: Organisation) -> list[Any]:
        return [service_queue(WORK_QUEUE), *map(department_queue, organisation.departments)]

    def _declare_on(self, connection: Connection) -> None:
        declare(connection, self._queues(self.organisation))

    def _declare(self, organisation: Organisation) -> None:
        connection = self._connection_factory()
        try:
            connect_once(connection)
            declare(connection, self._queues(organisation))
        finally:
            connection.release()


def _decide(decider: Decider, batch: list[Delivery]) -> list[RoutingDecision | None]:
    """The decisions for a batch at once (the model reads all questions in one pass); None
    where an event asks no question (a forward with a target) or deciding failed."""
    queries: list[Query] = []
    asking: list[int] = []
    for index, delivery in enumerate(batch):
        query = query_for(delivery.event)
        if query is not None:
            queries.append(query)
            asking.append(index)
    decisions: list[RoutingDecision | None] = [None] * len(batch)
    try:
        for index, decision in zip(asking, decider.decide_many(queries), strict=True):
            decisions[index] = decision
    except Exception:  # a bug must not stop routing: dispatch decides each message on its own
        log.exception("batch_decide_failed", extra={"messages": len(queries)})
    return decisions


def _account(confirmed: list[tuple[Delivery, Event]], confirmed_at: datetime) -> None:
    # Counted per batch, not per message: label lookups cost more than the routing rules.
    routed: Counter[tuple[str, str]] = Counter()
    debug = log.isEnabledFor(logging.DEBUG)
    for delivery, event in confirmed:
        department, reason = event.data["department"], event.data["reason"]
        routed[department, reason] += 1
        if delivery.event.type == "request.submitted":
            metrics.ROUTE_SECONDS.labels(department).observe(
                max(0.0, (confirmed_at - delivery.event.occurred_at).total_seconds())
            )
        if debug:
            log.debug(
                "request_routed",
                extra={"event_id": event.id, "department": department, "reason": reason},
            )
    for (department, reason), count in routed.items():
        metrics.REQUESTS_ROUTED.labels(department, reason).inc(count)
