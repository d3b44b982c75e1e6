"""The intake's consumer on the real RabbitMQ: events published with pika update the agent's
view; duplicates and out-of-order deliveries leave it right; poison is parked."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
from flask import Flask
from intake.app import create_app
from intake.store import RequestStore, processed_events, timeline_table
from intake.worker import ViewConsumer
from kcc_shared.config import Config
from kcc_shared.events import SYSTEM, Actor, Event, new_event
from kcc_shared.publisher import connection_factory
from kcc_shared.topology import DEAD_QUEUE, DEAD_REASON_HEADER, declare, service_queue
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import func, select

QUESTION = "Kan mevrouw haar rijbewijs verlengen als ze binnenkort naar het buitenland verhuist?"


@pytest.fixture
def app(database_url: str, broker_url: str) -> Iterator[Flask]:
    # The API process: its relay publishes the agent's own events (and declares intake.events).
    app = create_app(
        Config(
            database_url=database_url,
            broker_url=broker_url,
            outbox_poll_interval=0.2,
            publish_timeout=2,
        )
    )
    yield app
    app.extensions["kcc.intake"].relay.stop()
    app.extensions["kcc.intake"].store.engine.dispose()


@pytest.fixture
def consumer(app: Flask, broker_url: str, database_url: str) -> Iterator[ViewConsumer]:
    # Its own store (engine), as in its own process.
    from kcc_shared.db import make_engine

    store = RequestStore(make_engine(database_url))
    connection = connection_factory(broker_url, timeout=5)()
    declare(connection, [service_queue("intake.events")])  # and the parking lot
    connection.release()
    consumer = ViewConsumer(Config(broker_url=broker_url, publish_timeout=2), store)
    consumer.start()
    assert consumer.wait_until_consuming(20)
    yield consumer
    consumer.stop()
    store.engine.dispose()


def publish(channel: BlockingChannel, event: Event) -> None:
    channel.basic_publish(
        "kcc.events",
        event.routing_key,
        event.to_json(),
        pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=event.id),
    )


def file(app: Flask, user: str = "agent-anna") -> tuple[str, dict[str, str]]:
    secret, _ = app.extensions["kcc.tokens"].create(role="agent", user_id=user, team="kcc-noord")
    headers = {"Authorization": f"Bearer {secret}"}
    response = app.test_client().post(
        "/api/v1/requests", json={"question": QUESTION}, headers=headers
    )
    assert response.status_code == 202
    return str(response.get_json()["id"]), headers


def events_for(request_id: str) -> list[Event]:
    # After the request was filed (its submitted event is stamped with the filing time).
    t0 = datetime.now(UTC)
    due = t0 + timedelta(days=5)
    staff = Actor("staff", "staff-eva")

    def at(minute: int) -> datetime:
        return t0 + timedelta(seconds=minute)

    return [
        new_event(
            "request.routed",
            request_id=request_id,
            actor=SYSTEM,
            occurred_at=at(1),
            data={
                "department": "burgerzaken",
                "rule_id": "rijbewijs",
                "rules_version": "v1",
                "reason": "rule",
                "priority": "normal",
                "handoff_count": 0,
                "first_response_due": due,
                "resolution_due": due,
            },
        ),
        new_event(
            "request.claimed",
            request_id=request_id,
            actor=staff,
            occurred_at=at(2),
            data={"department": "burgerzaken", "staff_id": "staff-eva"},
        ),
        new_event(
            "request.clarification_requested",
            request_id=request_id,
            actor=staff,
            occurred_at=at(3),
            data={"department": "burgerzaken", "text": "Naar welk land?"},
        ),
    ]


def view(app: Flask, request_id: str, headers: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = (
        app.test_client().get(f"/api/v1/requests/{request_id}", headers=headers).get_json()
    )
    return body


def count(app: Flask, table: Any) -> int:
    with app.extensions["kcc.intake"].store.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def test_events_on_the_wire_update_the_view_once_in_any_order(
    app: Flask,
    consumer: ViewConsumer,
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    request_id, headers = file(app)
    routed, claimed, asked = events_for(request_id)
    # Out of order, and everything twice (a redelivery, a republished outbox row).
    for event in (asked, claimed, asked, routed, claimed, routed):
        publish(amqp_channel, event)

    wait_for(lambda: view(app, request_id, headers)["status"] == "awaiting_clarification")
    # Our own request.submitted comes back too: recorded once, not twice.
    wait_for(lambda: count(app, processed_events) >= 4)
    body = view(app, request_id, headers)
    assert body["department"] == "burgerzaken"
    assert [e["type"] for e in body["timeline"]] == [
        "request.submitted",
        "request.routed",
        "request.claimed",
        "request.clarification_requested",
    ]
    assert body["timeline"][3]["details"]["text"] == "Naar welk land?"
    wait_for(
        lambda: amqp_channel.queue_declare("intake.events", passive=True).method.message_count == 0
    )
    assert count(app, timeline_table) == 4


def test_the_agents_answer_goes_out_and_comes_back_without_a_second_entry(
    app: Flask,
    consumer: ViewConsumer,
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    observer = amqp_channel.queue_declare("", exclusive=True).method.queue
    amqp_channel.queue_bind(observer, "kcc.events", routing_key="request.clarified")
    request_id, headers = file(app)
    for event in events_for(request_id):
        publish(amqp_channel, event)
    wait_for(lambda: view(app, request_id, headers)["status"] == "awaiting_clarification")

    response = app.test_client().post(
        f"/api/v1/requests/{request_id}/clarification",
        json={"text": "Naar Spanje, over twee maanden."},
        headers=headers,
    )
    assert response.status_code == 200

    method, properties, body = next(amqp_channel.consume(observer, inactivity_timeout=20))
    assert method is not None
    event = json.loads(body)
    assert event["type"] == "request.clarified"
    assert properties.message_id == event["id"]
    assert properties.delivery_mode == 2
    wait_for(lambda: count(app, processed_events) >= 5)
    timeline = view(app, request_id, headers)["timeline"]
    assert [e["type"] for e in timeline].count("request.clarified") == 1
    assert view(app, request_id, headers)["status"] == "claimed"


def test_an_event_for_a_request_filed_elsewhere_is_acked_and_ignored(
    app: Flask,
    consumer: ViewConsumer,
    amqp_channel: BlockingChannel,
    wait_for: Callable[..., None],
) -> None:
    [routed, *_] = events_for(str(uuid.uuid4()))
    publish(amqp_channel, routed)
    wait_for(lambda: count(app, processed_events) == 1)
    assert count(app, timeline_table) == 0


def test_a_poison_message_is_parked_with_its_reason(
    app: Flask,
    consumer: ViewConsumer,
    amqp_channel: BlockingChannel,
) -> None:
    amqp_channel.basic_publish(
        "kcc.events",
        "request.answered",
        json.dumps({"id": str(uuid.uuid4()), "type": "request.answered"}),
        pika.BasicProperties(content_type="application/json", delivery_mode=2),
    )
    method, properties, _ = next(amqp_channel.consume(DEAD_QUEUE, inactivity_timeout=20))
    assert method is not None
    assert properties.headers[DEAD_REASON_HEADER].startswith("invalid_event")
