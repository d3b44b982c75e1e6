"""How the shared event consumer copes with what a running system throws at it.

An event consumer of several queues (the back office: every department queue and its own)
starting, or coming back after a broker outage, with messages waiting in all of them: each one
must be applied, none acked unprocessed.

Found by the fault suite: the consumers of later queues wait for their consume-ok while the
earlier queues already deliver; what arrived then was dropped from the batch unacked, and the
next `multiple` ack acked it without it ever being applied.

A database outage (a restart, a failover) is nobody's event's fault: the batch in hand waits
for the database instead of being requeued, which would spend the messages' delivery attempts
and park good events in kcc.dead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pika
import pytest
from kcc_shared.config import Config
from kcc_shared.consumer import EventConsumer, processed_events_table
from kcc_shared.db import make_engine
from kcc_shared.events import Actor, new_event
from kcc_shared.publisher import connection_factory
from kcc_shared.topology import (
    DEAD_QUEUE,
    declare,
    department_queue,
    routed_key,
    service_queue,
)
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import Column, MetaData, String, Table, insert, select
from sqlalchemy import Connection as DbConnection

from conftest import TcpProxy

pytestmark = pytest.mark.integration

DEPARTMENTS = ("afval", "burgerzaken", "parkeren", "wonen")
PER_QUEUE = 60

metadata = MetaData()
seen = Table("seen", metadata, Column("event_id", String(36), primary_key=True))
processed = processed_events_table(metadata)


def recording_consumer(
    broker_url: str, database_url: str, extra_queues: list[Any], **settings: Any
) -> tuple[EventConsumer, Any]:
    """A consumer of backoffice.events (and `extra_queues`) that records each event id."""
    engine = make_engine(database_url)
    metadata.create_all(engine)
    connection = connection_factory(broker_url, timeout=5)()
    declare(connection, [service_queue("backoffice.events"), *extra_queues])
    connection.release()

    def record(connection: DbConnection, event: Any) -> None:
        connection.execute(insert(seen).values(event_id=event.id))

    consumer = EventConsumer(
        service="test",
        config=Config(broker_url=broker_url),
        queue=service_queue("backoffice.events"),
        extra_queues=extra_queues,
        engine=engine,
        processed=processed,
        handler=record,
        **settings,
    )
    return consumer, engine


def applied(engine: Any) -> set[str]:
    with engine.connect() as db:
        return set(db.execute(select(seen.c.event_id)).scalars())


def test_messages_waiting_in_every_queue_are_all_applied(
    broker_url: str,
    database_url: str,
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    queues = [department_queue(d) for d in DEPARTMENTS]
    consumer, engine = recording_consumer(
        broker_url, database_url, queues, prefetch=50, batch_size=20
    )

    published: set[str] = set()
    amqp_channel.confirm_delivery()
    for department in DEPARTMENTS:
        for _ in range(PER_QUEUE):
            event = new_event(
                "request.cancelled",
                request_id=str(uuid.uuid4()),
                actor=Actor("agent", "agent-anna"),
                data={"reason": "test"},
            )
            amqp_channel.basic_publish(
                "kcc.events",
                routed_key(department),
                event.to_json(),
                pika.BasicProperties(delivery_mode=2, message_id=event.id),
            )
            published.add(event.id)

    consumer.start()
    try:

        def depth() -> int:
            return sum(
                int(amqp_channel.queue_declare(q.name, passive=True).method.message_count)
                for q in queues
            )

        wait_for(lambda: depth() == 0 and len(applied(engine)) >= len(published), timeout=60)
    finally:
        consumer.stop()
    assert applied(engine) == published
    engine.dispose()


def test_a_database_outage_holds_the_batch_and_parks_nothing(
    broker_url: str,
    postgres_url: str,
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
    caplog: Any,
) -> None:
    host, port = postgres_url.split("@", 1)[1].split("/", 1)[0].split(":")
    proxy = TcpProxy(host, int(port))
    url = postgres_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/")
    consumer, engine = recording_consumer(broker_url, url, [])
    consumer.start()
    try:
        assert consumer.wait_until_consuming(20)
        proxy.cut()
        published = set()
        for _ in range(20):
            event = new_event(
                "request.cancelled",
                request_id=str(uuid.uuid4()),
                actor=Actor("agent", "agent-anna"),
                data={"reason": "test"},
            )
            amqp_channel.basic_publish(
                "kcc.events",
                "request.cancelled",
                event.to_json(),
                pika.BasicProperties(delivery_mode=2, message_id=event.id),
            )
            published.add(event.id)
        # The consumer tried, found the database gone, and keeps the batch.
        wait_for(lambda: caplog.text.count("database_unavailable") >= 3, timeout=30)
        proxy.restore()

        wait_for(lambda: applied(engine) == published, timeout=60)
    finally:
        consumer.stop()
        proxy.close()
        engine.dispose()
    assert amqp_channel.queue_declare(DEAD_QUEUE, passive=True).method.message_count == 0
