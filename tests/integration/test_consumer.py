"""The shared event consumer against the real RabbitMQ: once-only, parked, never dropped."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pika
import pytest
from kcc_shared.backoff import RETRY
from kcc_shared.config import Config
from kcc_shared.consumer import EventConsumer, EventRejected, processed_events_table
from kcc_shared.db import make_engine
from kcc_shared.events import Actor, Event, new_event
from kcc_shared.publisher import connection_factory
from kcc_shared.topology import (
    DEAD_QUEUE,
    DEAD_REASON_HEADER,
    DELIVERY_LIMIT,
    declare,
    service_queue,
)
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client import REGISTRY
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy import Connection as DbConnection

metadata = MetaData()
applied = Table(
    "applied",
    metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
)
processed = processed_events_table(metadata)


def cancelled(reason: str = "dubbel") -> Event:
    return new_event(
        "request.cancelled",
        request_id=str(uuid.uuid4()),
        actor=Actor("agent", "agent-anna"),
        data={"reason": reason},
    )


def publish(
    channel: BlockingChannel,
    body: bytes | str,
    routing_key: str,
    message_id: str | None = None,
    content_type: str = "application/json",
) -> None:
    channel.basic_publish(
        "kcc.events",
        routing_key,
        body,
        pika.BasicProperties(content_type=content_type, delivery_mode=2, message_id=message_id),
    )


@pytest.fixture
def engine(database_url: str) -> Any:
    engine = make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def run_consumer(broker_url: str, engine: Any) -> Iterator[Callable[..., EventConsumer]]:
    consumers: list[EventConsumer] = []
    connection = connection_factory(broker_url, timeout=5)()
    declare(connection, [service_queue("intake.events")])
    connection.release()

    def start(
        handler: Callable[[DbConnection, Event], None] | None = None,
        url: str = broker_url,
        **kwargs: Any,
    ) -> EventConsumer:
        def record(connection: DbConnection, event: Event) -> None:
            connection.execute(insert(applied).values(event_id=event.id, type=event.type))

        if "batch_handler" not in kwargs:
            kwargs["handler"] = handler or record
        consumer = EventConsumer(
            service="test",
            config=Config(broker_url=url),
            queue=service_queue("intake.events"),
            engine=engine,
            processed=processed,
            **kwargs,
        )
        consumer.start()
        assert consumer.wait_until_consuming(20)
        consumers.append(consumer)
        return consumer

    yield start
    for consumer in consumers:
        consumer.stop()


def applied_ids(engine: Any) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(applied.c.event_id)).scalars())


def queue_depth(channel: BlockingChannel, name: str) -> int:
    return int(channel.queue_declare(name, passive=True).method.message_count)


def test_a_duplicate_delivery_is_applied_once(
    engine: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    run_consumer()
    event = cancelled()
    for _ in range(3):
        publish(amqp_channel, event.to_json(), event.routing_key, event.id)
    other = cancelled()
    publish(amqp_channel, other.to_json(), other.routing_key, other.id)

    wait_for(lambda: sorted(applied_ids(engine)) == sorted([event.id, other.id]))
    wait_for(lambda: queue_depth(amqp_channel, "intake.events") == 0)
    assert sorted(applied_ids(engine)) == sorted([event.id, other.id])


def test_a_newer_releases_event_type_and_fields_are_ignored_not_parked(
    engine: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    """A rolling upgrade: a newer release publishes a type and a field this one does not know."""
    run_consumer()
    newer = {**cancelled().to_dict(), "type": "request.escalated", "trace": "x"}
    publish(amqp_channel, json.dumps(newer), "request.escalated", newer["id"])
    known = cancelled().to_dict()
    known["data"]["reason_code"] = "R7"  # a field added to a known type
    publish(amqp_channel, json.dumps(known), "request.cancelled", known["id"])

    wait_for(lambda: applied_ids(engine) == [known["id"]])
    wait_for(lambda: queue_depth(amqp_channel, "intake.events") == 0)
    assert queue_depth(amqp_channel, DEAD_QUEUE) == 0


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"{not json", "application/json", "undecodable"),
        (b"\x80\x04pickle", "application/x-python-serialize", "undecodable"),
        (json.dumps({"id": "x", "type": "request.cancelled"}), "application/json", "invalid_event"),
        (
            json.dumps({**cancelled().to_dict(), "schema_version": 2}),
            "application/json",
            "unknown_schema_version",
        ),
    ],
)
def test_a_poison_message_is_parked_with_its_reason_and_nothing_applied(
    engine: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
    body: bytes | str,
    content_type: str,
    reason: str,
) -> None:
    run_consumer()
    publish(amqp_channel, body, "request.cancelled", str(uuid.uuid4()), content_type)

    method, properties, parked_body = next(amqp_channel.consume(DEAD_QUEUE, inactivity_timeout=20))
    assert method is not None, "nothing arrived in kcc.dead"
    assert properties.headers[DEAD_REASON_HEADER].startswith(reason)
    assert parked_body == (body if isinstance(body, bytes) else body.encode())
    assert applied_ids(engine) == []


def test_a_rejected_event_is_parked_and_a_failing_one_retried_with_growing_delay_until_the_limit(
    engine: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
) -> None:
    attempts: dict[str, list[float]] = {}

    def handler(connection: DbConnection, event: Event) -> None:
        attempts.setdefault(event.data["reason"], []).append(time.monotonic())
        if event.data["reason"] == "onmogelijk":
            raise EventRejected("request unknown here")
        raise RuntimeError("a bug that never heals")

    run_consumer(handler)
    for reason in ("onmogelijk", "blijft falen"):
        event = cancelled(reason)
        publish(amqp_channel, event.to_json(), event.routing_key, event.id)

    reasons = []
    for method, properties, _ in amqp_channel.consume(DEAD_QUEUE, inactivity_timeout=60):
        assert method is not None, "expected two dead letters"
        reasons.append((properties.headers or {})[DEAD_REASON_HEADER])
        if len(reasons) == 2:
            break
    # The failing one is parked by the consumer on its last delivery, with what went wrong.
    assert sorted(reasons) == [
        f"failed {DELIVERY_LIMIT + 1} times: RuntimeError",
        "rejected: request unknown here",
    ]
    assert len(attempts["onmogelijk"]) == 1
    tries = attempts["blijft falen"]
    assert len(tries) == DELIVERY_LIMIT + 1
    # Not all at once: each retry waited at least the retry policy's growing delay.
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    for number, gap in enumerate(gaps, start=1):
        assert gap >= RETRY.delay(number), f"retry {number} came after {gap:.2f} s"
    assert applied_ids(engine) == []


def test_an_ack_lost_after_commit_is_redelivered_and_not_applied_twice(
    engine: Any,
    vhost: str,
    broker_proxy: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    deliveries: list[str] = []

    def duplicates() -> float:
        labels = {"service": "test", "queue": "intake.events", "outcome": "duplicate"}
        return REGISTRY.get_sample_value("kcc_messages_consumed_total", labels) or 0.0

    before = duplicates()

    def cut_then_apply(connection: DbConnection, event: Event) -> None:
        deliveries.append(event.id)
        if len(deliveries) == 1:
            # The broker connection dies while the transaction is open: the commit succeeds,
            # the ack that should follow cannot be sent, and the broker redelivers.
            broker_proxy.cut()
            broker_proxy.restore()
        connection.execute(insert(applied).values(event_id=event.id, type=event.type))

    url = f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}/{vhost}"
    run_consumer(cut_then_apply, url=url)
    event = cancelled()
    publish(amqp_channel, event.to_json(), event.routing_key, event.id)

    # The redelivery is recognised by its event id before the handler runs again.
    wait_for(lambda: duplicates() == before + 1, timeout=60)
    assert deliveries == [event.id]
    with engine.connect() as connection:
        seen = connection.execute(select(func.count()).select_from(processed)).scalar_one()
    assert applied_ids(engine) == [event.id]
    assert seen == 1


# -- batches ------------------------------------------------------------------------------------


# Patient batching: a backlog published before the consumer starts arrives as whole batches
# however slow this machine is at the moment, so tests can say what each batch held.
SETTLED_BATCHES: dict[str, Any] = {
    "batch_size": 50,
    "prefetch": 50,
    "idle_timeout": 0.5,
    "max_wait": 5.0,
}


def consumed(outcome: str) -> float:
    labels = {"service": "test", "queue": "intake.events", "outcome": outcome}
    return REGISTRY.get_sample_value("kcc_messages_consumed_total", labels) or 0.0


class BatchRecorder:
    """A batch handler that stores each event and remembers the batches it was given."""

    def __init__(self, reject: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self._reject = reject

    def __call__(self, connection: DbConnection, events: Sequence[Event]) -> None:
        self.batches.append([e.id for e in events])
        for event in events:
            if event.data.get("reason") == self._reject:
                raise EventRejected("request unknown here")
            connection.execute(insert(applied).values(event_id=event.id, type=event.type))


def test_a_backlog_is_applied_in_batches_and_every_message_is_acked(
    engine: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    events = [cancelled() for _ in range(30)]
    for event in events:  # a backlog waiting before the consumer starts
        publish(amqp_channel, event.to_json(), event.routing_key, event.id)
    duplicates_before = consumed("duplicate")
    recorder = BatchRecorder()

    consumer = run_consumer(batch_handler=recorder, **{**SETTLED_BATCHES, "batch_size": 10})
    wait_for(lambda: len(applied_ids(engine)) == 30)
    consumer.stop()  # whatever was not acked goes back to the queue now

    assert sorted(applied_ids(engine)) == sorted(e.id for e in events)
    assert sorted(i for batch in recorder.batches for i in batch) == sorted(e.id for e in events)
    assert [len(batch) for batch in recorder.batches] == [10, 10, 10]
    assert queue_depth(amqp_channel, "intake.events") == 0
    assert consumed("duplicate") == duplicates_before  # no redelivery: no ack was lost


@pytest.mark.parametrize("kind", ["handler", "batch_handler"])
def test_poison_in_the_middle_of_a_batch_is_parked_alone_and_the_rest_is_applied_once(
    engine: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
    kind: str,
) -> None:
    good = [cancelled() for _ in range(8)]
    poison = cancelled("onmogelijk")
    backlog: list[tuple[str, str | None]] = [(e.to_json(), e.id) for e in good[:4]]
    backlog.append((poison.to_json(), poison.id))
    backlog.append((json.dumps({"id": "x", "type": "request.cancelled"}), None))
    backlog += [(e.to_json(), e.id) for e in good[4:]]
    for body, message_id in backlog:
        publish(amqp_channel, body, "request.cancelled", message_id or str(uuid.uuid4()))
    attempts: dict[str, int] = {}

    def per_event(connection: DbConnection, event: Event) -> None:
        attempts[event.id] = attempts.get(event.id, 0) + 1
        if event.id == poison.id:
            raise EventRejected("request unknown here")
        connection.execute(insert(applied).values(event_id=event.id, type=event.type))

    recorder = BatchRecorder(reject="onmogelijk")
    handlers = {"handler": per_event} if kind == "handler" else {"batch_handler": recorder}
    consumer = run_consumer(**handlers, **SETTLED_BATCHES)

    reasons: dict[str, str] = {}
    for method, properties, body in amqp_channel.consume(DEAD_QUEUE, inactivity_timeout=30):
        assert method is not None, "expected two dead letters"
        reasons[json.loads(body)["id"]] = properties.headers[DEAD_REASON_HEADER]
        amqp_channel.basic_ack(method.delivery_tag)
        if len(reasons) == 2:
            break
    amqp_channel.cancel()
    wait_for(lambda: len(applied_ids(engine)) == len(good))
    consumer.stop()

    assert reasons[poison.id] == "rejected: request unknown here"
    assert reasons["x"].startswith("invalid_event")
    assert sorted(applied_ids(engine)) == sorted(e.id for e in good)
    assert queue_depth(amqp_channel, "intake.events") == 0
    if kind == "handler":
        assert attempts[poison.id] == 1  # parked as soon as it failed; the rest went on
    else:
        # The whole batch first; after it failed, one event at a time.
        assert sorted(recorder.batches[0]) == sorted([poison.id, *(e.id for e in good)])
        assert [len(batch) for batch in recorder.batches[1:]] == [1] * (len(good) + 1)


def test_copies_of_one_event_in_a_batch_are_applied_once(
    engine: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    twice, once = cancelled(), cancelled()
    for event in (twice, once, twice, twice):
        publish(amqp_channel, event.to_json(), event.routing_key, event.id)
    duplicates_before = consumed("duplicate")
    recorder = BatchRecorder()

    consumer = run_consumer(batch_handler=recorder, **SETTLED_BATCHES)
    wait_for(lambda: consumed("duplicate") == duplicates_before + 2)
    consumer.stop()

    assert sorted(applied_ids(engine)) == sorted([twice.id, once.id])
    assert recorder.batches == [[twice.id, once.id]]  # one batch, the copies not applied
    assert queue_depth(amqp_channel, "intake.events") == 0


# The consumer of the crash test, in a process of its own that can be killed: it applies its
# first batch, says so in a file and then hangs inside the open transaction.
_HANGING_CONSUMER = """
import sys, time, pathlib
from kcc_shared.config import Config
from kcc_shared.consumer import EventConsumer, processed_events_table
from kcc_shared.db import make_engine
from kcc_shared.topology import service_queue
from sqlalchemy import Column, Integer, MetaData, String, Table, insert

database_url, broker_url, marker = sys.argv[1:4]
metadata = MetaData()
applied = Table(
    "applied", metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
)

def hang(connection, events):
    for event in events:
        connection.execute(insert(applied).values(event_id=event.id, type=event.type))
    pathlib.Path(marker).write_text("\\n".join(e.id for e in events))
    time.sleep(600)

consumer = EventConsumer(
    service="test-crash", config=Config(broker_url=broker_url),
    queue=service_queue("intake.events"),
    engine=make_engine(database_url), processed=processed_events_table(metadata),
    batch_handler=hang, batch_size=50, prefetch=50, idle_timeout=0.5, max_wait=5.0,
)
consumer.run()
"""


def test_a_consumer_killed_before_commit_has_its_batch_redelivered_and_applied_once(
    engine: Any,
    database_url: str,
    broker_url: str,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
    tmp_path: Path,
) -> None:
    events = [cancelled() for _ in range(20)]
    for event in events:
        publish(amqp_channel, event.to_json(), event.routing_key, event.id)
    marker = tmp_path / "applied-not-committed"
    process = subprocess.Popen(
        [sys.executable, "-c", _HANGING_CONSUMER, database_url, broker_url, str(marker)]
    )
    try:
        wait_for(lambda: marker.exists() or process.poll() is not None)
        assert process.poll() is None, "the consumer process died on its own"
        in_flight = marker.read_text().split()
        assert sorted(in_flight) == sorted(e.id for e in events)  # all in the open transaction
    finally:
        process.kill()
        process.wait(10)

    def committed() -> int:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(processed)).scalar_one())

    assert committed() == 0
    assert applied_ids(engine) == []
    # The broker saw the connection die with the batch unacked and hands it out again.
    run_consumer(batch_handler=BatchRecorder())
    wait_for(lambda: committed() == len(events))

    assert sorted(applied_ids(engine)) == sorted(e.id for e in events)


def test_a_backlog_waiting_on_one_of_several_queues_is_applied_in_full(
    engine: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    # Messages of the first queue already flow while the consumer of the second one starts;
    # none of them may be forgotten (and later acked with a `multiple` ack unapplied).
    events = [cancelled() for _ in range(60)]
    for event in events:
        amqp_channel.basic_publish(
            "",
            "intake.events",
            event.to_json(),
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=event.id
            ),
        )

    consumer = run_consumer(
        extra_queues=[service_queue("backoffice.events")], batch_size=10, prefetch=60
    )
    wait_for(lambda: len(applied_ids(engine)) == len(events))
    consumer.stop()

    assert sorted(applied_ids(engine)) == sorted(e.id for e in events)
    assert queue_depth(amqp_channel, "intake.events") == 0
