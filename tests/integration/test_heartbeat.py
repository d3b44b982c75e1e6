"""AMQP heartbeats: a consumer whose connection goes silent (no close, no reset: a dropped NAT
entry, a vanished host) notices within two heartbeat intervals, reconnects and goes on."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from kcc_shared.config import Config
from kcc_shared.consumer import EventConsumer, processed_events_table
from kcc_shared.db import make_engine
from kcc_shared.events import Actor, Event, new_event
from kcc_shared.publisher import connection_factory
from kcc_shared.topology import declare, service_queue
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import Column, MetaData, String, Table, insert
from sqlalchemy import Connection as DbConnection
from sqlalchemy import select as sql_select

from conftest import RABBITMQ_HOST, RABBITMQ_PORT

pytestmark = pytest.mark.integration

HEARTBEAT = 1  # seconds: the silent connection is noticed after about two of them

metadata = MetaData()
seen = Table("seen", metadata, Column("event_id", String(36), primary_key=True))
processed = processed_events_table(metadata)


class SilentProxy:
    """Forwards TCP connections to RabbitMQ. `go_silent()` stops forwarding on every open
    connection without closing it: bytes go in and nothing comes out, in either direction,
    as when a NAT entry is dropped. New connections are forwarded as usual."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._closing = threading.Event()
        self._open: list[tuple[threading.Event, socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            upstream = socket.create_connection(self._target, timeout=5)
            silent = threading.Event()
            with self._lock:
                self._open.append((silent, client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pipe, args=(source, sink, silent), daemon=True
                ).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, silent: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while not self._closing.is_set():
                readable, _, _ = select.select([source], [], [], 0.1)
                if silent.is_set():
                    silent.wait()  # hold the socket open and forward nothing, ever
                    continue
                if readable:
                    data = source.recv(65536)
                    if not data:
                        break
                    sink.sendall(data)

    def go_silent(self) -> int:
        """Silence every connection open now; returns how many."""
        with self._lock:
            for silent, _, _ in self._open:
                silent.set()
            return len(self._open)

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            for _, client, upstream in self._open:
                for s in (client, upstream):
                    with contextlib.suppress(OSError):
                        s.close()
        self._listener.close()


@pytest.fixture
def proxy() -> Iterator[SilentProxy]:
    proxy = SilentProxy(RABBITMQ_HOST, RABBITMQ_PORT)
    yield proxy
    proxy.close()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def cancelled() -> Event:
    return new_event(
        "request.cancelled",
        request_id=str(uuid.uuid4()),
        actor=Actor("agent", "agent-anna"),
        data={"reason": "test"},
    )


def publish(channel: BlockingChannel, event: Event) -> None:
    channel.basic_publish(
        "kcc.events",
        event.routing_key,
        event.to_json(),
        pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=event.id),
    )


def test_a_connection_that_goes_silent_is_noticed_and_the_consumer_reconnects_and_goes_on(
    broker_url: str,
    vhost: str,
    proxy: SilentProxy,
    amqp_channel: BlockingChannel,
    tmp_path: Path,
    caplog: Any,
) -> None:
    caplog.set_level(logging.INFO)
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    metadata.create_all(engine)
    connection = connection_factory(broker_url, timeout=5)()
    declare(connection, [service_queue("intake.events")])
    connection.release()

    def record(connection: DbConnection, event: Event) -> None:
        connection.execute(insert(seen).values(event_id=event.id))

    def applied() -> set[str]:
        with engine.connect() as db:
            return set(db.execute(sql_select(seen.c.event_id)).scalars())

    consumer = EventConsumer(
        service="test",
        config=Config(
            broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}", heartbeat=HEARTBEAT
        ),
        queue=service_queue("intake.events"),
        engine=engine,
        processed=processed,
        handler=record,
    )
    consumer.start()
    try:
        assert consumer.wait_until_consuming(20)
        before = cancelled()
        publish(amqp_channel, before)
        wait_for(lambda: before.id in applied(), "the first event")

        assert proxy.go_silent() >= 1
        after = cancelled()
        publish(amqp_channel, after)

        # Nothing closed the connection: only the missing heartbeats tell it is gone. The
        # consumer connects again, and the broker, missing ours, requeued what it held.
        wait_for(lambda: after.id in applied(), "the event sent into the silence")
        assert "Too many heartbeats missed" in caplog.text
        assert caplog.text.count("consumer_ready") == 2, "connected once more"
        assert consumer.consuming
        assert applied() == {before.id, after.id}
    finally:
        consumer.stop()
        engine.dispose()
