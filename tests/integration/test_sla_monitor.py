"""The SLA monitor against the real RabbitMQ and PostgreSQL: events in, clocks, API, metrics,
and exactly one breach on the wire."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pika
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.events import Actor, Event, derived_event_id, new_event
from sla_monitor.app import create_app, store_of
from sla_monitor.worker import SlaMonitor

AMS = ZoneInfo("Europe/Amsterdam")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=AMS).astimezone(UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _event(type_: str, request_id: str, at: datetime, **data: Any) -> Event:
    return new_event(
        type_, request_id=request_id, actor=Actor("staff", "s1"), data=data, occurred_at=at
    )


def _routed(request_id: str, at: datetime, department: str, **extra: Any) -> Event:
    return _event(
        "request.routed", request_id, at, department=department, rule_id=None,
        rules_version="t", reason=extra.pop("reason", "category"), priority="urgent",
        handoff_count=0, first_response_due=at, resolution_due=at, **extra,
    )  # fmt: skip


def _publish(channel: Any, events: list[Event]) -> None:
    for event in events:
        channel.basic_publish(
            "kcc.events",
            event.routing_key,
            event.to_json().encode(),
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=event.id
            ),
        )


def _outbox_drained(store: Any) -> bool:
    from sla_monitor.tables import outbox
    from sqlalchemy import func, select

    with store.engine.connect() as connection:
        unsent = connection.execute(
            select(func.count()).where(outbox.c.sent_at.is_(None))
        ).scalar_one()
    return int(unsent) == 0


def test_events_over_the_wire_give_clocks_summary_metrics_and_one_breach(
    broker_url: str, postgres_url: str, amqp_channel: Any, wait_for: Callable[..., None]
) -> None:
    clock = FakeClock(local("2026-04-20 09:00"))
    config = Config(database_url=postgres_url, broker_url=broker_url, outbox_poll_interval=0.1)
    app = create_app(config, clock=clock)
    store = store_of(app)
    monitor = SlaMonitor(config, store, clock=clock)
    # A queue of our own sees what the monitor publishes.
    amqp_channel.exchange_declare("kcc.events", exchange_type="topic", durable=True)
    watch = amqp_channel.queue_declare("", exclusive=True).method.queue
    for key in ("request.sla_warning", "request.sla_breached"):
        amqp_channel.queue_bind(watch, "kcc.events", routing_key=key)
    monitor.relay.start()
    monitor.consumer.start()  # the scheduler is ticked by hand, on the fake clock
    try:
        assert monitor.consumer.wait_until_consuming(15)
        late, quick = str(uuid.uuid4()), str(uuid.uuid4())
        routed_late = _routed(late, local("2026-04-20 09:00"), "burgerzaken")
        claimed_quick = _event(
            "request.claimed", quick, local("2026-04-20 09:20"),
            department="burgerzaken", staff_id="s1",
        )  # fmt: skip
        events = [
            routed_late,
            claimed_quick,  # before its routed event: order-tolerant
            _routed(quick, local("2026-04-20 09:00"), "burgerzaken"),
            _event(
                "request.answered",
                quick,
                local("2026-04-20 10:00"),
                department="burgerzaken",
                staff_id="s1",
                answer="Klaar.",
            ),
            _event(
                "request.rated",
                quick,
                local("2026-04-20 10:05"),
                score=5,
                thanks=True,
                comment=None,
                department="burgerzaken",
            ),
        ]
        _publish(amqp_channel, [*events, events[0]])  # and a duplicate delivery

        wait_for(lambda: len(store.clocks_of(quick)) == 2 and store.clocks_of(quick)[1].closed_at)
        wait_for(lambda: len(store.clocks_of(late)) == 2)
        first, resolution = store.clocks_of(quick)
        assert first.elapsed_us == 20 * 60 * 10**6
        assert resolution.outcome == "met"

        # Past the 1 h first-response target of `late`: the scheduler announces it once.
        clock.now = local("2026-04-20 10:30")
        assert monitor.scheduler.tick() == 2  # its warning and its breach
        assert monitor.scheduler.tick() == 0
        monitor.relay.wake()

        seen: list[dict[str, Any]] = []

        def breach_on_wire() -> bool:
            method, properties, body = amqp_channel.basic_get(watch, auto_ack=True)
            if method is not None:
                seen.append({"key": method.routing_key, "id": properties.message_id,
                             "body": json.loads(body)})  # fmt: skip
            return any(s["key"] == "request.sla_breached" for s in seen)

        wait_for(breach_on_wire)
        # A redelivered routed event and a recompute must not produce another one.
        _publish(amqp_channel, [routed_late])
        store.recompute(clock())
        assert monitor.scheduler.tick() == 0
        clock.now += timedelta(minutes=1)
        monitor.relay.wake()
        wait_for(lambda: store.clocks_of(late) and _outbox_drained(store))
        amqp_channel.connection.sleep(1.0)  # give a (wrong) second breach time to arrive
        for _ in range(10):
            breach_on_wire()
        breaches = [s for s in seen if s["key"] == "request.sla_breached"]
        assert len(breaches) == 1
        assert breaches[0]["id"] == derived_event_id(routed_late.id, "sla_breached:first_response")
        assert breaches[0]["body"]["data"]["clock"] == "first_response"
        assert breaches[0]["body"]["request_id"] == late

        token, _ = app.extensions[TOKENS_EXTENSION].create(role="ops", user_id="ops-o")
        client = app.test_client()
        summary = client.get(
            "/api/v1/sla/summary?window=1d", headers={"Authorization": f"Bearer {token}"}
        ).get_json()
        assert summary is not None
        burgerzaken = next(d for d in summary["departments"] if d["department"] == "burgerzaken")
        assert burgerzaken["clocks"]["first_response"]["met"] == 1
        assert burgerzaken["breaches"] == 1
        assert burgerzaken["open"]["waiting"] == 1
        assert burgerzaken["oldest_open_seconds"] == 5460.0  # 09:00 to 10:31
        assert (burgerzaken["average_rating"], burgerzaken["thanks"]) == (5.0, 1)
        # The truth about the norm: `late` still waits past its deadline, so it counts.
        first = burgerzaken["clocks"]["first_response"]
        assert (first["open_breached"], first["compliance"]) == (1, 0.5)
        assert burgerzaken["late"] == 1
        listed = client.get(
            "/api/v1/sla/departments/burgerzaken/late",
            headers={"Authorization": f"Bearer {token}"},
        ).get_json()
        assert listed is not None
        assert [(q["request_id"], q["level"]) for q in listed["questions"]] == [(late, "late")]

        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'kcc_requests_open{department="burgerzaken",state="waiting"} 1.0' in metrics
        assert (
            'kcc_request_oldest_open_business_seconds{department="burgerzaken"} 5460.0' in metrics
        )
        assert (
            'kcc_messages_consumed_total{outcome="duplicate",queue="sla-monitor.events",'
            'service="sla-monitor"}' in metrics
        )
    finally:
        monitor.stop(5)
        store.engine.dispose()
