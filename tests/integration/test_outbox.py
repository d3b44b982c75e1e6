"""The outbox relay and Publisher on the real RabbitMQ, seen with pika, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from kcc_shared.db import make_engine, write
from kcc_shared.events import SYSTEM, Actor, Event, new_event, parse_event
from kcc_shared.outbox import Outbox, OutboxRelay, outbox_backlog, outbox_table, utcnow
from kcc_shared.publisher import Outgoing, Publisher, PublishError, connection_factory
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client import REGISTRY
from sqlalchemy import Engine, MetaData, Table, select

EXCHANGE = "kcc.events"
PUBLISH_TIMEOUT = 2.0
AGENT = Actor("agent", "agent-anna")


# -- helpers -------------------------------------------------------------------------------


def submitted(n: int = 1) -> list[Event]:
    return [
        new_event(
            "request.submitted",
            request_id=str(uuid.uuid4()),
            actor=AGENT,
            data={
                "question": f"Vraag {i} over de afvalkalender in wijk Noord.",
                "priority": "normal",
                "channel": "phone",
                "agent_id": "agent-anna",
            },
        )
        for i in range(n)
    ]


def routed(department: str) -> Event:
    due = utcnow()
    return new_event(
        "request.routed",
        request_id=str(uuid.uuid4()),
        actor=SYSTEM,
        data={
            "department": department,
            "rule_id": "afval",
            "rules_version": "test",
            "reason": "rule",
            "priority": "normal",
            "handoff_count": 0,
            "first_response_due": due,
            "resolution_due": due,
        },
    )


def observe(channel: BlockingChannel, binding: str = "request.#", **arguments: Any) -> str:
    """A private queue on kcc.events, as any observer of the contract would bind one."""
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    queue = channel.queue_declare("", exclusive=True, arguments=arguments or None).method.queue
    channel.queue_bind(queue, EXCHANGE, routing_key=binding)
    return str(queue)


def take_all(channel: BlockingChannel, queue: str) -> list[tuple[Any, Any, bytes]]:
    """Every message in the queue now (a confirmed publish is already queued)."""
    got: list[tuple[Any, Any, bytes]] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append((method, properties, body))


def take(channel: BlockingChannel, queue: str, expected: int, timeout: float = 30) -> list[str]:
    """Event ids of messages consumed until `expected` arrived and the queue went quiet."""
    ids: list[str] = []
    for method, properties, _ in channel.consume(queue, auto_ack=True, inactivity_timeout=1):
        if method is None:
            if len(ids) >= expected:
                break
            timeout -= 1
            if timeout <= 0:
                break
            continue
        ids.append(properties.message_id)
    channel.cancel()
    return ids


class Store:
    """An outbox table in a fresh database, and ways to look at its rows."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        metadata = MetaData()
        self.table: Table = outbox_table(metadata)
        metadata.create_all(self.engine)
        self.outbox = Outbox(self.table)

    def add(self, events: Sequence[Event]) -> None:
        with write(self.engine) as connection:
            self.outbox.add(connection, events)

    def rows(self) -> dict[str, Any]:
        t = self.table
        with self.engine.connect() as connection:
            return {r.event_id: r for r in connection.execute(select(t).order_by(t.c.seq))}

    def unsent(self) -> int:
        return outbox_backlog(self.engine, self.table, utcnow()).unsent


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.engine.dispose()


@pytest.fixture
def relays() -> Iterator[Callable[..., OutboxRelay]]:
    """Makes relays on a broker URL; stops them (and closes their connections) afterwards."""
    made: list[OutboxRelay] = []

    def make(
        store: Store,
        url: str,
        *,
        timeout: float = PUBLISH_TIMEOUT,
        service: str | None = None,
        **options: Any,
    ) -> OutboxRelay:
        publisher = Publisher(connection_factory(url, timeout=timeout), timeout=timeout)
        service = service or f"test-{uuid.uuid4().hex[:8]}"
        relay = OutboxRelay(store.engine, store.table, publisher, service=service, **options)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.stop()


def failures(service: str) -> float | None:
    value = REGISTRY.get_sample_value("kcc_outbox_publish_failures_total", {"service": service})
    return None if value is None else float(value)


def publish_all(relay: OutboxRelay, store: Store) -> None:
    """Sweep until the backlog is empty (what the relay's own loop does)."""
    for _ in range(100):
        relay.relay_once()
        if store.unsent() == 0:
            return
    pytest.fail(f"{store.unsent()} rows still unsent")


# -- tests ---------------------------------------------------------------------------------


def test_committed_rows_are_published_persistent_with_their_event_id_then_marked_sent(
    store: Store,
    broker_url: str,
    amqp_channel: BlockingChannel,
    relays: Callable[..., OutboxRelay],
) -> None:
    queue = observe(amqp_channel)
    events = [*submitted(2), routed("afval"), *submitted(1)]
    store.add(events)
    relay = relays(store, broker_url)
    assert store.unsent() == 4
    assert take_all(amqp_channel, queue) == []  # committed is not published yet

    assert relay.relay_once() == 4

    messages = take_all(amqp_channel, queue)
    assert [properties.message_id for _, properties, _ in messages] == [e.id for e in events]
    for (method, properties, body), event in zip(messages, events, strict=True):
        assert method.exchange == EXCHANGE
        assert method.routing_key == event.routing_key
        assert properties.delivery_mode == 2
        assert properties.content_type == "application/json"
        assert parse_event(body) == event
    assert all(row.sent_at is not None for row in store.rows().values())
    assert store.unsent() == 0


def test_a_sent_row_is_not_published_again(
    store: Store,
    broker_url: str,
    amqp_channel: BlockingChannel,
    relays: Callable[..., OutboxRelay],
) -> None:
    queue = observe(amqp_channel)
    store.add(submitted(3))
    relay = relays(store, broker_url)
    assert relay.relay_once() == 3

    assert relay.relay_once() == 0
    assert relays(store, broker_url).relay_once() == 0  # nor by another relay

    assert len(take_all(amqp_channel, queue)) == 3


def test_a_rolled_back_transaction_publishes_nothing(
    store: Store,
    broker_url: str,
    amqp_channel: BlockingChannel,
    relays: Callable[..., OutboxRelay],
) -> None:
    queue = observe(amqp_channel)

    def store_request_and_fail() -> None:
        with write(store.engine) as connection:
            store.outbox.add(connection, submitted(3))
            raise RuntimeError("the request row could not be stored")

    with pytest.raises(RuntimeError):
        store_request_and_fail()
    [marker] = submitted(1)
    store.add([marker])

    assert relays(store, broker_url).relay_once() == 1

    assert [p.message_id for _, p, _ in take_all(amqp_channel, queue)] == [marker.id]
    assert list(store.rows()) == [marker.id]


def test_an_unroutable_row_is_reported_failed_and_stays_unsent(
    store: Store,
    broker_url: str,
    amqp_channel: BlockingChannel,
    relays: Callable[..., OutboxRelay],
) -> None:
    queue = observe(amqp_channel, "request.submitted")
    first, last = submitted(2)
    lost = routed("nergens")  # no queue is bound for request.routed.nergens
    store.add([first, lost, last])
    service = f"test-{uuid.uuid4().hex[:8]}"
    relay = relays(store, broker_url, service=service)

    assert relay.relay_once() == 2

    rows = store.rows()
    assert rows[lost.id].sent_at is None
    assert "unroutable" in rows[lost.id].last_error
    assert "request.routed.nergens" in rows[lost.id].last_error
    assert rows[first.id].sent_at is not None
    assert rows[last.id].sent_at is not None
    assert failures(service) == 1  # what /metrics shows operations
    assert [p.message_id for _, p, _ in take_all(amqp_channel, queue)] == [first.id, last.id]

    # Once a queue is bound for it, the next sweep delivers the row.
    department = observe(amqp_channel, "request.routed.nergens")
    assert relay.relay_once() == 1
    assert [p.message_id for _, p, _ in take_all(amqp_channel, department)] == [lost.id]
    assert store.unsent() == 0


def test_only_rows_the_broker_confirmed_are_marked_sent(
    store: Store,
    broker_url: str,
    amqp_channel: BlockingChannel,
    relays: Callable[..., OutboxRelay],
) -> None:
    # A full queue that refuses new messages: the broker nacks them.
    queue = observe(
        amqp_channel, "request.submitted", **{"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    events = submitted(3)
    store.add(events)

    relay = relays(store, broker_url)
    assert relay.relay_once() == 1

    rows = store.rows()
    assert [e.id for e in events if rows[e.id].sent_at is not None] == [events[0].id]
    assert all("nacked" in rows[e.id].last_error for e in events[1:])
    assert [p.message_id for _, p, _ in take_all(amqp_channel, queue)] == [events[0].id]

    # A refused row is not given up: each later sweep (on a new channel, since a channel that
    # was refused may go on refusing) sends what the queue has room for, in order.
    for event in events[1:]:
        assert relay.relay_once() == 1
        assert [p.message_id for _, p, _ in take_all(amqp_channel, queue)] == [event.id]
    assert store.unsent() == 0


def test_a_broker_outage_delays_rows_and_loses_none(
    store: Store,
    vhost: str,
    broker_proxy: Any,
    amqp_channel: BlockingChannel,
    relays: Callable[..., OutboxRelay],
) -> None:
    queue = observe(amqp_channel, "request.submitted")
    relay = relays(store, f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}/{vhost}")
    before = submitted(2)
    store.add(before)
    assert relay.relay_once() == 2  # connected: the outage cuts a live connection

    broker_proxy.cut()
    during = submitted(5)
    store.add(during)
    started = time.monotonic()
    with pytest.raises(PublishError):
        relay.relay_once()
    assert time.monotonic() - started < PUBLISH_TIMEOUT
    with pytest.raises(PublishError):
        relay.relay_once()  # reconnecting fails too, as a PublishError

    assert store.unsent() == 5
    rows = store.rows()
    assert all(rows[e.id].sent_at is None and rows[e.id].last_error for e in during)

    broker_proxy.restore()
    publish_all(relay, store)

    expected = {e.id for e in before + during}
    arrived = set(take(amqp_channel, queue, expected=len(expected)))
    assert arrived <= expected  # duplicates only where a confirm was lost; nothing foreign
    assert expected <= arrived  # nothing lost


def test_a_publish_to_an_unreachable_broker_gives_up_within_the_publish_timeout(
    store: Store, vhost: str, broker_proxy: Any, relays: Callable[..., OutboxRelay]
) -> None:
    timeout = 1.0
    relay = relays(
        store, f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}/{vhost}", timeout=timeout
    )
    store.add(submitted(1))
    broker_proxy.cut()

    started = time.monotonic()
    with pytest.raises(PublishError):
        relay.relay_once()

    assert time.monotonic() - started < timeout
    assert store.unsent() == 1


def test_a_sent_batch_is_confirmed_by_wait_and_lost_with_its_connection(
    broker_url: str, amqp_channel: BlockingChannel
) -> None:
    # The router sends one batch, routes the next meanwhile, then waits for the confirms.
    queue = observe(amqp_channel, "request.submitted")
    publisher = Publisher(connection_factory(broker_url, timeout=PUBLISH_TIMEOUT), timeout=5)
    first, second = submitted(3), submitted(2)
    try:
        sent = publisher.send([Outgoing(e.id, e.routing_key, e.to_json()) for e in first])
        with pytest.raises(RuntimeError, match="still awaits its confirms"):
            publisher.send([Outgoing(e.id, e.routing_key, e.to_json()) for e in second])

        assert publisher.wait(sent).confirmed == [e.id for e in first]

        lost = publisher.send([Outgoing(e.id, e.routing_key, e.to_json()) for e in second])
        publisher.close()
        with pytest.raises(PublishError, match="lost with its connection"):
            publisher.wait(lost)
    finally:
        publisher.close()
    # A batch reported lost may still have arrived: the caller publishes it again, and the
    # consumers dedupe on the message id.
    arrived = take(amqp_channel, queue, expected=3)
    assert arrived[:3] == [e.id for e in first]


def test_two_relays_on_postgresql_publish_every_row_once(
    postgres_url: str,
    broker_url: str,
    amqp_channel: BlockingChannel,
    relays: Callable[..., OutboxRelay],
) -> None:
    store = Store(postgres_url)
    queue = observe(amqp_channel)
    events = submitted(400)
    store.add(events)
    workers = [relays(store, broker_url, batch_size=20) for _ in range(2)]
    published: dict[int, list[int]] = {0: [], 1: []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(n: int) -> None:
        try:
            start.wait()
            while (count := workers[n].relay_once()) or store.unsent():
                published[n].append(count)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert sum(published[0]) + sum(published[1]) == 400
    assert sum(published[0]) > 0
    assert sum(published[1]) > 0  # both worked the table at once
    assert {row.attempts for row in store.rows().values()} == {1}  # each row claimed once
    arrived = take(amqp_channel, queue, expected=400)
    assert len(arrived) == 400
    assert set(arrived) == {e.id for e in events}
    store.engine.dispose()


def test_the_running_relay_publishes_when_woken_and_stops_in_order(
    store: Store,
    broker_url: str,
    amqp_channel: BlockingChannel,
    relays: Callable[..., OutboxRelay],
    wait_for: Callable[..., None],
) -> None:
    queue = observe(amqp_channel)
    relay = relays(store, broker_url, poll_interval=60)  # polling alone would take a minute
    relay.start()
    wait_for(lambda: relay.backlog().unsent == 0)
    events = submitted(3)

    store.add(events)
    relay.wake()

    wait_for(lambda: store.unsent() == 0, timeout=10)
    assert take(amqp_channel, queue, expected=3) == [e.id for e in events]
    relay.stop(timeout=5)
    assert not any(t.name.startswith("outbox-relay-test-") for t in threading.enumerate())


# -- memory:// (kcc dev) --------------------------------------------------------------------


def test_publisher_on_memory_publishes_without_confirms() -> None:
    name = f"test.{uuid.uuid4().hex}"
    events = submitted(2)
    with Connection("memory://") as connection:
        queue = Queue(name, Exchange(EXCHANGE, type="topic"), routing_key=name)
        queue(connection.default_channel).declare()
        publisher = Publisher(connection_factory("memory://", timeout=1), timeout=1)

        result = publisher.publish(
            [Outgoing(message_id=e.id, routing_key=name, body=e.to_json()) for e in events]
        )
        publisher.close()

        assert result.confirmed == [e.id for e in events]
        assert result.failed == {}
        bound = queue(connection.default_channel)
        messages = [bound.get(no_ack=True) for _ in events]
        assert bound.get(no_ack=True) is None
    assert [m.properties["message_id"] for m in messages] == [e.id for e in events]
    assert {m.properties["delivery_mode"] for m in messages} == {2}
    assert {m.content_type for m in messages} == {"application/json"}
    assert [parse_event(m.body) for m in messages] == events


def test_relay_on_memory_marks_rows_sent(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    name = f"request.test-{uuid.uuid4().hex}"
    event = new_event(
        "request.cancelled", request_id=str(uuid.uuid4()), actor=AGENT, data={"reason": "test"}
    )
    store.add([event])
    with Connection("memory://") as connection:
        queue = Queue(name, Exchange(EXCHANGE, type="topic"), routing_key="request.cancelled")
        queue(connection.default_channel).declare()
        publisher = Publisher(connection_factory("memory://", timeout=1), timeout=1)
        relay = OutboxRelay(store.engine, store.table, publisher, service="test-memory")

        assert relay.relay_once() == 1
        relay.stop()

        message = queue(connection.default_channel).get(no_ack=True)
        queue(connection.default_channel).delete()
    assert json.loads(message.body)["id"] == event.id
    assert store.unsent() == 0
    store.engine.dispose()
