"""The router's consumer on the embedded memory:// broker: the same code paths, minus confirms."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from kcc_shared.config import Config
from kcc_shared.events import Actor, Event, derived_event_id, new_event
from kcc_shared.organisation import load_organisation
from kcc_shared.publisher import (
    Outgoing,
    Publisher,
    PublishError,
    PublishResult,
    connection_factory,
)
from kcc_shared.topology import (
    DEAD_QUEUE,
    DEAD_REASON_HEADER,
    dead_letter_queue,
    department_queue,
    events_exchange,
)
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Producer
from prometheus_client import REGISTRY
from router.errors import NotReady
from router.worker import RouterWorker

BROKER = "memory://"


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def submitted(question: str) -> Event:
    return new_event(
        "request.submitted",
        request_id=str(uuid.uuid4()),
        actor=Actor("agent", "agent-1"),
        data={
            "question": question,
            "priority": "normal",
            "channel": "chat",
            "agent_id": "agent-1",
            "tags": [],
        },
    )


@pytest.fixture
def worker() -> Iterator[RouterWorker]:
    router = RouterWorker(Config(broker_url=BROKER), load_organisation(None))
    router.start()
    wait_until(lambda: router.consuming)
    yield router
    router.stop()
    assert not router.running


def publish(body: str | bytes, message_id: str, content_type: str = "application/json") -> None:
    with Connection(BROKER) as connection:
        Producer(connection.default_channel).publish(
            body,
            exchange=events_exchange(),
            routing_key="request.submitted",
            content_type=content_type,
            content_encoding="utf-8",
            message_id=message_id,
        )


def take(queue: Queue, count: int) -> list[Any]:
    """`count` messages from a queue (acked), waiting for them to arrive."""
    taken: list[Any] = []
    with Connection(BROKER) as connection:
        channel = connection.default_channel

        def more() -> bool:
            message = queue(channel).get(no_ack=True)
            if message is not None:
                taken.append(message)
            return len(taken) >= count

        wait_until(more)
    return taken


def test_routes_a_submitted_question_on_the_memory_broker(worker: RouterWorker) -> None:
    event = submitted("Mijn paspoort is verlopen, kan ik een nieuw aanvragen?")

    publish(event.to_json(), event.id)

    [message] = take(department_queue("burgerzaken"), 1)
    routed = json.loads(message.body)
    assert routed["id"] == derived_event_id(event.id, "routed")
    assert message.properties["message_id"] == routed["id"]
    assert routed["data"]["department"] == "burgerzaken"


def test_parks_an_undecodable_message_on_the_memory_broker(worker: RouterWorker) -> None:
    publish(b"geen json", "poison-memory")

    [message] = take(dead_letter_queue(), 1)
    assert message.properties["message_id"] == "poison-memory"
    assert message.headers[DEAD_REASON_HEADER].startswith("undecodable: ")
    assert DEAD_QUEUE == "kcc.dead"


def test_readiness_follows_the_consumer(worker: RouterWorker) -> None:
    checks = worker.readiness_checks()
    for check in checks.values():
        check()

    worker.stop()

    with pytest.raises(NotReady, match="not running"):
        checks["consumer"]()


class FlakyPublisher(Publisher):
    """Fails its first publishes the way a broker under a memory alarm does, then works."""

    def __init__(self, failures: int) -> None:
        super().__init__(connection_factory(BROKER, timeout=5), timeout=5)
        self.failures = failures
        self.calls = 0

    def publish(self, messages: Sequence[Outgoing]) -> PublishResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise PublishError("no confirm within 5.0s")
        return super().publish(messages)


def requeued() -> float:
    sample = REGISTRY.get_sample_value(
        "kcc_messages_consumed_total",
        {"service": "router", "queue": "router.work", "outcome": "requeued"},
    )
    return sample or 0.0


def test_a_failed_publish_holds_the_batch_and_routes_it_once_the_broker_takes_it() -> None:
    router = RouterWorker(Config(broker_url=BROKER), load_organisation(None))
    publisher = router.publisher = FlakyPublisher(failures=3)
    requeued_before = requeued()
    router.start()
    try:
        event = submitted("Mijn paspoort is verlopen")

        publish(event.to_json(), event.id)

        [message] = take(department_queue("burgerzaken"), 1)
        assert json.loads(message.body)["id"] == derived_event_id(event.id, "routed")
        assert publisher.calls == 4, "held and published again until the broker took it"
        # Held, not requeued: the input was delivered once and nothing was parked.
        assert requeued() == requeued_before
    finally:
        router.stop()
