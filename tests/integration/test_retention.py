"""Pruning processed-event ids never lets a redelivered event be applied twice.

The rule that makes it safe: `prune` only deletes ids older than the retention (30 days by
default, never less than 7), and no copy of a message arrives that late. A copy of an applied
event comes from a lost ack (redelivered at once), an outbox republish after a relay crash
(after its 30-second lease) or a requeue with back-off (at most DELIVERY_LIMIT times
RETRY.cap seconds); a message parked in kcc.dead was never applied, so replaying it needs no
row. The real consumer runs against RabbitMQ and its store on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
from kcc_shared.backoff import RETRY
from kcc_shared.config import Config
from kcc_shared.consumer import EventConsumer, processed_events_table
from kcc_shared.db import make_engine
from kcc_shared.events import Actor, Event, new_event
from kcc_shared.outbox import Outbox, OutboxRelay, outbox_table
from kcc_shared.publisher import Publisher, connection_factory
from kcc_shared.retention import (
    DEFAULT_DAYS,
    MINIMUM_DAYS,
    cutoff_for,
    processed_target,
    prune,
)
from kcc_shared.topology import DELIVERY_LIMIT, declare, service_queue
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, insert, select, update
from sqlalchemy import Connection as DbConnection

metadata = MetaData()
applied = Table(
    "applied",
    metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
)
processed = processed_events_table(metadata)
outbox = outbox_table(metadata)


def cancelled() -> Event:
    return new_event(
        "request.cancelled",
        request_id=str(uuid.uuid4()),
        actor=Actor("agent", "agent-anna"),
        data={"reason": "dubbel"},
    )


def publish(channel: BlockingChannel, event: Event) -> None:
    channel.basic_publish(
        "kcc.events",
        event.routing_key,
        event.to_json(),
        pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=event.id),
    )


def applied_ids(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(select(applied.c.event_id)).scalars())


def processed_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(select(processed.c.event_id)).scalars())


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


class Moment:
    """The consumer's clock: when it records an event as processed."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def consumer(broker_url: str, engine: Engine) -> Iterator[tuple[EventConsumer, Moment]]:
    connection = connection_factory(broker_url, timeout=5)()
    declare(connection, [service_queue("intake.events")])
    connection.release()

    def record(connection: DbConnection, event: Event) -> None:
        connection.execute(insert(applied).values(event_id=event.id))

    moment = Moment()
    consumer = EventConsumer(
        service="test",
        config=Config(broker_url=broker_url),
        queue=service_queue("intake.events"),
        engine=engine,
        processed=processed,
        handler=record,
        clock=moment,
    )
    consumer.start()
    assert consumer.wait_until_consuming(20)
    yield consumer, moment
    consumer.stop()


def test_a_redelivered_event_is_applied_once_after_a_prune(
    engine: Engine,
    consumer: tuple[EventConsumer, Moment],
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., Any],
) -> None:
    _, moment = consumer
    now = datetime.now(UTC)
    # One event processed just inside the default retention, one just outside it.
    kept, gone = cancelled(), cancelled()
    moment.now = now - timedelta(days=DEFAULT_DAYS - 1)
    publish(amqp_channel, kept)
    wait_for(lambda: applied_ids(engine) == [kept.id])
    moment.now = now - timedelta(days=DEFAULT_DAYS + 1)
    publish(amqp_channel, gone)
    wait_for(lambda: sorted(applied_ids(engine)) == sorted([kept.id, gone.id]))

    counts = prune(engine, [processed_target(processed)], cutoff_for(DEFAULT_DAYS, now))

    assert counts == {"processed_events": 1}
    assert processed_ids(engine) == {kept.id}

    # The same message again (a lost ack, an outbox republish), then a new one: the queue
    # delivers in order, so once the new one is applied the copy has been dealt with.
    moment.now = now
    publish(amqp_channel, kept)
    later = cancelled()
    publish(amqp_channel, later)
    wait_for(lambda: later.id in applied_ids(engine))

    assert sorted(applied_ids(engine)) == sorted([kept.id, gone.id, later.id])


def test_no_redelivery_of_an_applied_event_comes_later_than_the_minimum_retention() -> None:
    # The slowest copy: requeued with the longest back-off on every delivery the queue allows,
    # plus the outbox relay's lease before another relay republishes a row.
    slowest = DELIVERY_LIMIT * RETRY.cap + 30

    assert slowest < timedelta(days=MINIMUM_DAYS).total_seconds()


def test_the_relay_purges_old_sent_rows_while_it_cannot_publish(
    engine: Engine, wait_for: Callable[..., Any]
) -> None:
    """The purge runs on its own timer, not only after a quiet sweep: a relay whose broker
    stays down (or that always has work) still keeps its outbox bounded."""
    sent, waiting = cancelled(), cancelled()
    with engine.begin() as connection:
        Outbox(outbox).add(connection, [sent, waiting])
        connection.execute(
            update(outbox)
            .where(outbox.c.event_id == sent.id)
            .values(sent_at=datetime.now(UTC) - timedelta(days=8))
        )
    # Nothing listens on port 1: every publish fails.
    publisher = Publisher(
        connection_factory("amqp://guest:guest@127.0.0.1:1//", timeout=1), timeout=1
    )
    relay = OutboxRelay(engine, outbox, publisher, service="test-retention")
    relay.start()
    try:
        wait_for(lambda: outbox_ids(engine) == {waiting.id})
    finally:
        relay.stop()


def outbox_ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(select(outbox.c.event_id)).scalars())
