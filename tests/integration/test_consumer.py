"""The shared event consumer against the real RabbitMQ: once-only, parked, never dropped."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pytest
from kcc_shared.consumer import EventConsumer, EventRejected, processed_events_table
from kcc_shared.db import make_engine
from kcc_shared.events import Actor, Event, new_event
from kcc_shared.publisher import connection_factory
from kcc_shared.topology import DEAD_QUEUE, DEAD_REASON_HEADER, declare, service_queue
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

        consumer = EventConsumer(
            service="test",
            broker_url=url,
            queue=service_queue("intake.events"),
            engine=engine,
            processed=processed,
            handler=handler or record,
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


def test_a_rejected_event_is_parked_and_a_failing_one_retried_until_the_limit(
    engine: Any,
    run_consumer: Callable[..., EventConsumer],
    amqp_channel: BlockingChannel,
) -> None:
    attempts: dict[str, int] = {}

    def handler(connection: DbConnection, event: Event) -> None:
        attempts[event.data["reason"]] = attempts.get(event.data["reason"], 0) + 1
        if event.data["reason"] == "onmogelijk":
            raise EventRejected("request unknown here")
        raise RuntimeError("database hiccup that never ends")

    run_consumer(handler)
    for reason in ("onmogelijk", "blijft falen"):
        event = cancelled(reason)
        publish(amqp_channel, event.to_json(), event.routing_key, event.id)

    reasons = []
    for method, properties, _ in amqp_channel.consume(DEAD_QUEUE, inactivity_timeout=30):
        assert method is not None, "expected two dead letters"
        headers = properties.headers or {}
        reasons.append(headers.get(DEAD_REASON_HEADER) or headers["x-death"][0]["reason"])
        if len(reasons) == 2:
            break
    assert sorted(reasons) == ["delivery_limit", "rejected: request unknown here"]
    assert attempts == {"onmogelijk": 1, "blijft falen": 6}  # delivered limit + 1 times
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
