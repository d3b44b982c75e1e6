"""What the intake puts on the real RabbitMQ, seen with pika, and that an outage loses nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.app import create_app
from intake.store import outbox
from kcc_shared.config import Config
from kcc_shared.outbox import outbox_backlog, utcnow
from pika.adapters.blocking_connection import BlockingChannel

QUESTION = "Mevrouw (bsn: 123456782) is verhuisd maar staat nog op het oude adres in de BRP."


def observe(channel: BlockingChannel, binding: str = "request.#") -> str:
    """A private queue on kcc.events, as any observer of the contract would bind one."""
    channel.exchange_declare("kcc.events", exchange_type="topic", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "kcc.events", routing_key=binding)
    return str(queue)


def drain(channel: BlockingChannel, queue: str, expected: int, timeout: float = 30) -> list[Any]:
    """Consume until `expected` messages arrived (or fail after `timeout` with what came)."""
    got: list[Any] = []
    for method, properties, body in channel.consume(queue, inactivity_timeout=timeout):
        if method is None:
            break
        channel.basic_ack(method.delivery_tag)
        got.append((method, properties, body))
        if len(got) >= expected:
            break
    channel.cancel()
    assert len(got) >= expected, f"only {len(got)} of {expected} messages arrived"
    return got


def make_app(database_url: str, broker_url: str) -> Flask:
    return create_app(
        Config(
            database_url=database_url,
            broker_url=broker_url,
            outbox_poll_interval=0.2,
            publish_timeout=2,
        )
    )


@pytest.fixture
def app(database_url: str, broker_url: str) -> Iterator[Flask]:
    app = make_app(database_url, broker_url)
    yield app
    app.extensions["kcc.intake"].relay.stop()


def token(app: Flask, user: str = "agent-anna") -> dict[str, str]:
    secret, _ = app.extensions["kcc.tokens"].create(role="agent", user_id=user, team="kcc-noord")
    return {"Authorization": f"Bearer {secret}"}


def test_a_submitted_request_is_on_the_wire_redacted_and_persistent(
    app: Flask, amqp_channel: BlockingChannel
) -> None:
    queue = observe(amqp_channel)
    client = app.test_client()
    created = client.post(
        "/api/v1/requests",
        json={"question": QUESTION, "priority": "high", "category": "documenten"},
        headers=token(app),
    ).get_json()

    [(method, properties, body)] = drain(amqp_channel, queue, expected=1)
    event = json.loads(body)

    assert method.exchange == "kcc.events"
    assert method.routing_key == "request.submitted"
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == 2
    assert properties.message_id == event["id"]
    assert event["type"] == "request.submitted"
    assert event["request_id"] == created["id"]
    assert event["schema_version"] == 1
    assert event["actor"] == {"kind": "agent", "id": "agent-anna"}
    assert event["data"]["priority"] == "high"
    assert event["data"]["category"] == "documenten"
    assert "[BSN]" in event["data"]["question"]
    assert "123456782" not in body.decode()


def test_router_work_exists_before_the_router_starts(
    app: Flask, amqp_channel: BlockingChannel, wait_for: Callable[..., None]
) -> None:
    client = app.test_client()
    client.post("/api/v1/requests", json={"question": QUESTION}, headers=token(app))
    engine = app.extensions["kcc.intake"].store.engine
    wait_for(lambda: outbox_backlog(engine, outbox, utcnow()).unsent == 0)

    # Confirmed means queued: the request waits in router.work until a router consumes it.
    declared = amqp_channel.queue_declare("router.work", passive=True)
    assert declared.method.message_count == 1


def test_nothing_is_lost_while_the_broker_is_unreachable(
    database_url: str,
    vhost: str,
    broker_proxy: Any,
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    queue = observe(amqp_channel, "request.submitted")
    app = make_app(database_url, f"amqp://guest:guest@127.0.0.1:{broker_proxy.port}/{vhost}")
    client: FlaskClient = app.test_client()
    headers = token(app)
    context = app.extensions["kcc.intake"]
    try:

        def backlog() -> int:
            return outbox_backlog(context.store.engine, outbox, utcnow()).unsent

        # Connected and publishing first, so the outage cuts a live connection.
        client.post("/api/v1/requests", json={"question": QUESTION}, headers=headers)
        drain(amqp_channel, queue, expected=1)
        wait_for(lambda: backlog() == 0)

        broker_proxy.cut()
        accepted = []
        for n in range(40):
            response = client.post(
                "/api/v1/requests",
                json={"question": f"Vraag {n} over de afvalkalender in wijk Noord."},
                headers={**headers, "Idempotency-Key": str(uuid.uuid4())},
            )
            assert response.status_code == 202
            accepted.append(response.get_json()["id"])

        assert backlog() == 40  # stored and waiting, not dropped
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'kcc_outbox_backlog{service="intake"} 40.0' in metrics

        broker_proxy.restore()
        arrived = drain(amqp_channel, queue, expected=40, timeout=30)
        ids = [json.loads(body)["request_id"] for _, _, body in arrived]
        assert set(ids) == set(accepted)
        wait_for(lambda: backlog() == 0)
    finally:
        context.relay.stop()
