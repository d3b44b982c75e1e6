"""The process runner and /healthz: a part that dies ends the process with a failing status,
a stuck consumer turns /healthz unhealthy, and a stop request stops every part in order."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from kcc_shared.config import Config
from kcc_shared.consumer import BatchConsumer, Delivery
from kcc_shared.events import Actor, new_event
from kcc_shared.health import HealthServer
from kcc_shared.runner import EXIT_PART_DIED, Part, liveness, run
from kombu.connection import Connection
from kombu.entity import Queue
from kombu.messaging import Producer

BROKER = "memory://"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class Consumer(BatchConsumer):
    """A consumer whose work is `work(batch)`: a bug, or a call that never returns."""

    def __init__(self, work: Callable[[list[Delivery]], None], stall_timeout: float = 120) -> None:
        super().__init__(
            service="test",
            config=Config(broker_url=BROKER, stall_timeout=stall_timeout),
            queues=[Queue(f"runner-test-{uuid.uuid4().hex[:8]}")],
            prefetch=10,
        )
        self._work = work

    def process(self, batch: list[Delivery]) -> None:
        self._work(batch)

    def send_one(self) -> None:
        event = new_event(
            "request.cancelled",
            request_id=str(uuid.uuid4()),
            actor=Actor("agent", "agent-anna"),
            data={"reason": "test"},
        )
        with Connection(BROKER) as connection:
            Producer(connection.default_channel).publish(
                event.to_json(),
                routing_key=self.queues[0].name,
                content_type="application/json",
                message_id=event.id,
            )


class Process:
    """`run` in a thread, as a command runs it in its main thread."""

    def __init__(self, parts: list[Part], watch_interval: float = 0.05) -> None:
        self.stop = threading.Event()
        self.status: int | None = None
        self._thread = threading.Thread(target=self._run, args=(parts, watch_interval), daemon=True)

    def _run(self, parts: list[Part], watch_interval: float) -> None:
        self.status = run("test", parts, stop_requested=self.stop, watch_interval=watch_interval)

    def start(self) -> Process:
        self._thread.start()
        return self

    def wait(self, timeout: float = 30.0) -> int | None:
        self._thread.join(timeout)
        return self.status


@pytest.fixture
def stopped() -> Iterator[list[BatchConsumer]]:
    consumers: list[BatchConsumer] = []
    yield consumers
    for consumer in consumers:
        consumer.stop()


def bug(batch: list[Delivery]) -> None:
    raise RuntimeError("a bug outside any handler")


def test_a_consumer_thread_that_dies_ends_the_process_with_a_failing_status(
    stopped: list[BatchConsumer],
) -> None:
    consumer = Consumer(bug)
    stopped.append(consumer)
    stops: list[str] = []
    other = Part("other", lambda: None, lambda: stops.append("other"), lambda: True)
    process = Process([other, consumer.part()]).start()
    assert consumer.wait_until_consuming(20)

    consumer.send_one()

    assert process.wait() == EXIT_PART_DIED
    assert stops == ["other"], "the parts still running were stopped"


def test_healthz_turns_unhealthy_when_a_consumer_thread_died(
    stopped: list[BatchConsumer],
) -> None:
    consumer = Consumer(bug)
    stopped.append(consumer)
    part = consumer.part()
    server = HealthServer("127.0.0.1", 0, {}, liveness=liveness([part]))
    # The runner looks rarely here, so /healthz is seen before the process ends.
    process = Process([server.part(), part], watch_interval=3600).start()
    try:
        assert consumer.wait_until_consuming(20)
        healthy = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert healthy.status_code == 200

        consumer.send_one()
        wait_until(lambda: not consumer.running, "the consumer thread to die")

        unhealthy = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert unhealthy.status_code == 503
        assert unhealthy.json()["parts"]["consumer"] == "failing: consumer is not running"
    finally:
        process.stop.set()
        assert process.wait() == 0


def test_healthz_turns_unhealthy_when_a_consumer_holds_messages_without_settling_any(
    stopped: list[BatchConsumer],
) -> None:
    release = threading.Event()

    def hang(batch: list[Delivery]) -> None:
        release.wait(30)  # a call that does not return (a lock, a network wait without bound)
        for delivery in batch:
            consumer.ack(delivery)

    consumer = Consumer(hang, stall_timeout=0.5)
    stopped.append(consumer)
    part = consumer.part()
    server = HealthServer("127.0.0.1", 0, {}, liveness=liveness([part]))
    process = Process([server.part(), part]).start()
    try:
        assert consumer.wait_until_consuming(20)
        consumer.send_one()
        wait_until(lambda: consumer.stalled() is not None, "the consumer to count as stuck")

        response = requests.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        assert response.status_code == 503
        assert (
            "settled none" in response.json()["parts"]["consumer"]
            or "turned" in (response.json()["parts"]["consumer"])
        )
    finally:
        release.set()
        process.stop.set()
        assert process.wait() == 0


def test_a_stop_request_stops_every_part_in_reverse_order_and_ends_with_status_0() -> None:
    order: list[str] = []

    def recorded(name: str) -> Part:
        return Part(
            name,
            lambda: order.append(f"start {name}"),
            lambda: order.append(f"stop {name}"),
            lambda: True,
        )

    parts = [recorded(name) for name in ("http", "relay", "consumer")]
    process = Process(parts).start()
    wait_until(lambda: len(order) == 3, "every part to start")

    process.stop.set()

    assert process.wait() == 0
    assert order == [
        "start http",
        "start relay",
        "start consumer",
        "stop consumer",
        "stop relay",
        "stop http",
    ]
