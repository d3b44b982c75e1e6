"""Only a lost database connection holds a queue: a statement that times out or breaks a
constraint is the event's failure, retried a few times and then parked with its reason, while
the events behind it are applied."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from kcc_shared.config import Config
from kcc_shared.consumer import EventConsumer, processed_events_table
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
from sqlalchemy import Column, Connection, MetaData, String, Table, insert, select, text

pytestmark = pytest.mark.integration

metadata = MetaData()
seen = Table("seen", metadata, Column("event_id", String(36), primary_key=True))
# Holds one row the "constraint" event collides with.
taken = Table("taken", metadata, Column("name", String(20), primary_key=True))
processed = processed_events_table(metadata)


def cancelled(reason: str) -> Event:
    return new_event(
        "request.cancelled",
        request_id=str(uuid.uuid4()),
        actor=Actor("agent", "agent-anna"),
        data={"reason": reason},
    )


def handle(connection: Connection, event: Event) -> None:
    reason = event.data["reason"]
    if reason == "traag":
        # A statement the database gives up on: the connection itself stays fine.
        connection.execute(text("SET LOCAL statement_timeout = '50ms'"))
        connection.execute(text("SELECT pg_sleep(1)"))
    if reason == "dubbel":
        connection.execute(insert(taken).values(name="bezet"))
    connection.execute(insert(seen).values(event_id=event.id))


@pytest.fixture
def consumer(postgres_url: str, broker_url: str) -> Iterator[tuple[EventConsumer, Any]]:
    engine = make_engine(postgres_url)
    metadata.create_all(engine)
    with engine.begin() as db:
        db.execute(insert(taken).values(name="bezet"))
    connection = connection_factory(broker_url, timeout=5)()
    declare(connection, [service_queue("intake.events")])
    connection.release()
    consumer = EventConsumer(
        service="test",
        config=Config(broker_url=broker_url),
        queue=service_queue("intake.events"),
        engine=engine,
        processed=processed,
        handler=handle,
    )
    consumer.start()
    assert consumer.wait_until_consuming(20)
    yield consumer, engine
    consumer.stop()
    engine.dispose()


def test_a_statement_timeout_and_a_constraint_error_are_parked_with_their_reason(
    consumer: tuple[EventConsumer, Any], amqp_channel: BlockingChannel
) -> None:
    _, engine = consumer
    slow, clash, fine = cancelled("traag"), cancelled("dubbel"), cancelled("gewoon")
    for event in (slow, clash, fine):
        amqp_channel.basic_publish(
            "kcc.events",
            event.routing_key,
            event.to_json(),
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=event.id
            ),
        )

    parked: dict[str, str] = {}
    for method, properties, _ in amqp_channel.consume(DEAD_QUEUE, inactivity_timeout=90):
        assert method is not None, f"expected two dead letters, got {parked}"
        parked[properties.message_id] = (properties.headers or {})[DEAD_REASON_HEADER]
        if len(parked) == 2:
            break

    assert parked == {
        slow.id: f"failed {DELIVERY_LIMIT + 1} times: QueryCanceled",
        clash.id: f"failed {DELIVERY_LIMIT + 1} times: UniqueViolation",
    }
    with engine.connect() as db:
        assert set(db.execute(select(seen.c.event_id)).scalars()) == {fine.id}
    assert amqp_channel.queue_declare("intake.events", passive=True).method.message_count == 0
