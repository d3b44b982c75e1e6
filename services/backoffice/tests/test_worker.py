"""The consumer on the real RabbitMQ: department queues and agent events into the inboxes,
duplicates and out-of-order delivery included; poison parked with a reason."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from backoffice.errors import ItemNotFound
from backoffice.store import InboxStore
from backoffice.worker import InboxWorker
from kcc_shared.config import Config
from kcc_shared.db import make_engine
from kcc_shared.events import Event
from kcc_shared.organisation import load_organisation
from kcc_shared.topology import DEAD_QUEUE, DEAD_REASON_HEADER, EVENTS_EXCHANGE, declare
from kombu.connection import Connection

from conftest import wait_for  # the repository's root conftest (pythonpath ".")


@pytest.fixture
def inbox_store(database_url: str) -> Iterator[InboxStore]:
    store = InboxStore(make_engine(database_url), load_organisation())
    store.create_schema()
    yield store
    store.engine.dispose()


@pytest.fixture
def worker(broker_url: str, inbox_store: InboxStore) -> Iterator[InboxWorker]:
    with Connection(broker_url) as connection:
        declare(connection)  # the exchanges and the parking lot, as every publisher does
    worker = InboxWorker(Config(broker_url=broker_url, backoffice_prefetch=10), inbox_store)
    worker.start()
    assert worker.consumer.wait_until_consuming(20)
    yield worker
    worker.stop()


def publish(channel: Any, event: Event, *, times: int = 1) -> None:
    for _ in range(times):
        channel.basic_publish(
            EVENTS_EXCHANGE,
            event.routing_key,
            event.to_json().encode(),
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=event.id
            ),
        )


def state_of(store: InboxStore, request_id: str) -> str | None:
    try:
        return store.get(request_id).state
    except ItemNotFound:
        return None


def test_routed_and_submitted_land_in_the_inbox_once(
    worker: InboxWorker, inbox_store: InboxStore, amqp_channel: Any, make: Any
) -> None:
    rid = str(uuid.uuid4())
    routed = make.routed(rid)
    publish(amqp_channel, routed, times=3)  # redelivery / duplicate publish
    publish(amqp_channel, make.submitted(rid), times=2)
    wait_for(lambda: inbox_store.get(rid).question if state_of(inbox_store, rid) else None)
    wait_for(lambda: len(inbox_store.timeline(rid)) == 2)
    item = inbox_store.get(rid)
    assert (item.department, item.state, item.question) == (
        "burgerzaken",
        "waiting",
        "Paspoort kwijt, wat nu?",
    )
    assert [e.type for e in inbox_store.timeline(rid)] == ["request.submitted", "request.routed"]


def test_out_of_order_cancel_and_forward(
    worker: InboxWorker, inbox_store: InboxStore, amqp_channel: Any, make: Any
) -> None:
    cancelled_first = str(uuid.uuid4())
    publish(amqp_channel, make.agent_event("request.cancelled", cancelled_first, reason=None))
    wait_for(lambda: len(inbox_store.timeline(cancelled_first)) == 1)
    publish(amqp_channel, make.routed(cancelled_first))
    wait_for(lambda: state_of(inbox_store, cancelled_first) == "cancelled")
    assert inbox_store.inbox("burgerzaken") == []

    forwarded = str(uuid.uuid4())
    # The forward's routing (handoff 1) overtakes the first routing (handoff 0).
    publish(
        amqp_channel,
        make.routed(forwarded, "belastingen", handoff_count=1, from_department="burgerzaken"),
    )
    wait_for(lambda: state_of(inbox_store, forwarded) == "waiting")
    publish(amqp_channel, make.routed(forwarded))
    wait_for(lambda: len(inbox_store.timeline(forwarded)) == 2)
    assert inbox_store.get(forwarded).department == "belastingen"
    assert [i.request_id for i in inbox_store.inbox("belastingen")] == [forwarded]
    assert inbox_store.inbox("burgerzaken") == []


def test_poison_is_parked_with_a_reason(
    worker: InboxWorker, inbox_store: InboxStore, amqp_channel: Any, make: Any
) -> None:
    amqp_channel.basic_publish(
        EVENTS_EXCHANGE,
        "request.routed.burgerzaken",
        json.dumps({"id": "nope"}).encode(),
        pika.BasicProperties(content_type="application/json", delivery_mode=2),
    )
    reasons: list[str] = []

    def parked() -> bool:
        method, properties, _ = amqp_channel.basic_get(DEAD_QUEUE, auto_ack=True)
        if method is not None:
            reasons.append(properties.headers[DEAD_REASON_HEADER])
        return bool(reasons)

    wait_for(parked, timeout=20, interval=0.2)
    assert reasons[0].startswith("invalid_event")
    # The consumer goes on: the next good event still arrives.
    rid = str(uuid.uuid4())
    publish(amqp_channel, make.routed(rid))
    wait_for(lambda: state_of(inbox_store, rid) == "waiting")
