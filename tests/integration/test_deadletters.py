"""`kcc dead-letters list` and `replay` against the real RabbitMQ, checked through pika."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pytest
from click.testing import CliRunner
from kcc_cli.deadletters import dead_letters_group
from kcc_shared.events import Actor, Event, new_event
from kcc_shared.topology import (
    DEAD_AT_HEADER,
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DEAD_QUEUE_HEADER,
    DEAD_REASON_HEADER,
    DEAD_ROUTING_KEY_HEADER,
    DELIVERY_LIMIT,
    EVENTS_EXCHANGE,
    declare,
    department_queue,
    service_queue,
)
from kombu.connection import Connection
from pika.adapters.blocking_connection import BlockingChannel

QUESTION = "Mevrouw Jansen wil haar paspoort verlengen"


def submitted() -> Event:
    return new_event(
        "request.submitted",
        request_id=str(uuid.uuid4()),
        actor=Actor("agent", "agent-1"),
        data={
            "question": QUESTION,
            "priority": "normal",
            "channel": "phone",
            "agent_id": "agent-1",
            "tags": [],
        },
    )


def depth(channel: BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def drain(channel: BlockingChannel, queue: str) -> list[tuple[Any, bytes]]:
    taken: list[tuple[Any, bytes]] = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return taken
        taken.append((properties, body))


def park_as_the_router(
    channel: BlockingChannel, event: Event, reason: str, at: datetime | None = None
) -> None:
    channel.basic_publish(
        DEAD_EXCHANGE,
        "request.submitted",
        event.to_json(),
        pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=event.id,
            headers={
                DEAD_REASON_HEADER: reason,
                DEAD_QUEUE_HEADER: "router.work",
                DEAD_ROUTING_KEY_HEADER: "request.submitted",
                DEAD_AT_HEADER: at.isoformat() if at else "2027-01-08T15:00:00Z",
            },
        ),
    )


def exhaust_delivery_limit(channel: BlockingChannel, event: Event) -> None:
    """Publish to router.work and requeue it until the broker parks it (reason delivery_limit)."""
    channel.basic_publish(
        EVENTS_EXCHANGE,
        "request.submitted",
        event.to_json(),
        pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=event.id),
    )
    for _ in range(DELIVERY_LIMIT + 1):
        method, _, _ = channel.basic_get("router.work")
        assert method is not None
        channel.basic_nack(method.delivery_tag, requeue=True)


@pytest.fixture
def channel(amqp_channel: BlockingChannel, broker_url: str) -> BlockingChannel:
    with Connection(broker_url) as connection:
        declare(connection, [service_queue("router.work"), department_queue("burgerzaken")])
    amqp_channel.confirm_delivery()
    return amqp_channel


@pytest.fixture
def parked(channel: BlockingChannel) -> list[Event]:
    """Three parked messages: two by a consumer, one by the broker's delivery limit."""
    events = [submitted(), submitted(), submitted()]
    park_as_the_router(channel, events[0], "invalid_event: data.tags: Missing data")
    exhaust_delivery_limit(channel, events[1])
    # The broker dead-letters asynchronously: wait, so the three stay in this order.
    deadline = time.monotonic() + 10
    while depth(channel, DEAD_QUEUE) < 2:
        assert time.monotonic() < deadline, "the broker did not park the message"
        time.sleep(0.02)
    park_as_the_router(channel, events[2], "unknown_department: forward to 'sport'")
    assert depth(channel, DEAD_QUEUE) == 3
    return events


@pytest.fixture
def run(broker_url: str) -> Any:
    runner = CliRunner()

    def invoke(*args: str, url: str = broker_url) -> Any:
        return runner.invoke(dead_letters_group, list(args), env={"KCC_BROKER_URL": url})

    return invoke


def test_list_shows_ids_and_reasons_and_loses_nothing(
    run: Any, channel: BlockingChannel, parked: list[Event]
) -> None:
    result = run("list", "--json")

    assert result.exit_code == 0, result.output
    letters = json.loads(result.output)
    assert [d["id"] for d in letters] == [e.id for e in parked]
    assert [d["request_id"] for d in letters] == [e.request_id for e in parked]
    assert [d["type"] for d in letters] == ["request.submitted"] * 3
    assert [d["reason"] for d in letters] == [
        "invalid_event: data.tags: Missing data",
        "delivery_limit",
        "unknown_department: forward to 'sport'",
    ]
    assert [d["source_queue"] for d in letters] == ["router.work"] * 3
    assert [d["routing_key"] for d in letters] == ["request.submitted"] * 3
    assert all(d["dead_at"] for d in letters)
    # Looking changed nothing: same messages, same order.
    assert [p.message_id for p, _ in drain(channel, DEAD_QUEUE)] == [e.id for e in parked]


def test_list_twice_keeps_order_and_count(
    run: Any, channel: BlockingChannel, parked: list[Event]
) -> None:
    first = run("list", "--json")
    second = run("list", "--json")

    ids = [e.id for e in parked]
    assert [d["id"] for d in json.loads(first.output)] == ids
    assert [d["id"] for d in json.loads(second.output)] == ids
    assert depth(channel, DEAD_QUEUE) == 3


def test_list_table_never_shows_the_question(run: Any, parked: list[Event]) -> None:
    result = run("list")

    assert result.exit_code == 0, result.output
    assert "delivery_limit" in result.output
    assert parked[0].id in result.output
    assert "paspoort" not in result.output
    assert "Jansen" not in result.output
    assert "3 parked messages in kcc.dead on amqp://" in result.output


def test_list_of_an_empty_parking_lot_names_the_broker_it_looked_at(
    run: Any, channel: BlockingChannel, vhost: str
) -> None:
    result = run("list")

    assert result.exit_code == 0
    assert f"No parked messages in kcc.dead on amqp://guest:***@127.0.0.1:5672/{vhost}." in (
        result.output
    )
    assert "guest:guest" not in result.output  # never the password


def test_list_shows_how_long_each_message_has_been_parked(
    run: Any, channel: BlockingChannel
) -> None:
    event = submitted()
    parked_at = datetime.now(UTC) - timedelta(hours=3, minutes=5)
    park_as_the_router(channel, event, "invalid_event: x", at=parked_at)

    table = run("list")
    letters = json.loads(run("list", "--json").output)

    assert table.exit_code == 0, table.output
    assert "parked for" in table.output
    assert "3 h 5 min" in table.output
    assert "the oldest parked for 3 h 5 min." in table.output
    [letter] = letters
    assert 3 * 3600 + 5 * 60 <= letter["age_seconds"] < 3 * 3600 + 6 * 60


def test_list_of_one_queue(run: Any, parked: list[Event]) -> None:
    from_router = run("list", "--queue", "router.work", "--json")
    from_inbox = run("list", "--queue", "kcc.dept.burgerzaken")

    assert [d["id"] for d in json.loads(from_router.output)] == [e.id for e in parked]
    assert from_inbox.exit_code == 0, from_inbox.output
    assert "No parked messages from kcc.dept.burgerzaken in kcc.dead on amqp://" in (
        from_inbox.output
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["list", "--queue", "router.werk"], "unknown queue 'router.werk'; known: router.work"),
        (["list", "--queue", "kcc.dept.sport"], "unknown queue 'kcc.dept.sport'"),
        (["list", "--since", "1h"], "No such option '--since'"),
        (["list", "--json=yes"], "Option '--json' does not take a value"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(
    run: Any, channel: BlockingChannel, parked: list[Event], args: list[str], says: str
) -> None:
    result = run(*args)

    assert result.exit_code == 2
    assert says in result.output
    assert depth(channel, DEAD_QUEUE) == 3


def test_a_memory_broker_is_explained() -> None:
    result = CliRunner().invoke(dead_letters_group, ["list"], env={"KCC_BROKER_URL": "memory://"})

    assert result.exit_code == 2
    assert "`kcc dev`" in result.output
    assert "message_dead_lettered" in result.output


@pytest.mark.integration
def test_without_a_broker_url_it_says_kcc_dev_keeps_its_own() -> None:
    # The default broker (127.0.0.1:5672, vhost /) is read; what it holds does not matter.
    result = CliRunner().invoke(dead_letters_group, ["list"], env={"KCC_BROKER_URL": None})

    assert result.exit_code == 0, result.output
    assert "kcc.dead on amqp://guest:***@127.0.0.1:5672//" in result.output
    assert "KCC_BROKER_URL is not set" in result.output
    assert "`kcc dev` does not use RabbitMQ" in result.output


def test_replay_one_sends_it_back_with_its_routing_key(
    run: Any, channel: BlockingChannel, parked: list[Event]
) -> None:
    result = run("replay", "--id", parked[1].id)

    assert result.exit_code == 0, result.output
    assert "1 replayed, 0 kept" in result.output
    [(properties, body)] = drain(channel, "router.work")
    assert properties.message_id == parked[1].id
    assert json.loads(body)["id"] == parked[1].id
    assert "x-death" not in (properties.headers or {})
    assert [p.message_id for p, _ in drain(channel, DEAD_QUEUE)] == [parked[0].id, parked[2].id]


def test_replay_all(run: Any, channel: BlockingChannel, parked: list[Event]) -> None:
    result = run("replay", "--all")

    assert result.exit_code == 0, result.output
    assert [p.message_id for p, _ in drain(channel, "router.work")] == [e.id for e in parked]
    assert depth(channel, DEAD_QUEUE) == 0


def test_replay_of_an_unknown_id_changes_nothing(
    run: Any, channel: BlockingChannel, parked: list[Event]
) -> None:
    result = run("replay", "--id", parked[0].id, "--id", "no-such-id")

    assert result.exit_code == 1
    assert "no-such-id" in result.output
    assert depth(channel, "router.work") == 0
    assert [p.message_id for p, _ in drain(channel, DEAD_QUEUE)] == [e.id for e in parked]


UNREACHABLE = "amqp://guest:guest@127.0.0.1:1//"  # nothing listens on port 1 here


def test_replay_needs_an_id_or_all() -> None:
    result = CliRunner().invoke(dead_letters_group, ["replay"], env={"KCC_BROKER_URL": UNREACHABLE})

    assert result.exit_code == 2
    assert "--id" in result.output


@pytest.mark.parametrize("command", [["list"], ["replay", "--all"], ["replay", "--id", "x"]])
def test_unreachable_broker_is_a_clear_error(command: list[str]) -> None:
    result = CliRunner().invoke(dead_letters_group, command, env={"KCC_BROKER_URL": UNREACHABLE})

    assert result.exit_code == 2
    assert "cannot reach RabbitMQ" in result.output


def test_replay_keeps_a_message_parked_longer_than_the_retention(
    run: Any, channel: BlockingChannel
) -> None:
    old, young = submitted(), submitted()
    now = datetime.now(UTC)
    park_as_the_router(channel, old, "invalid_event: x", at=now - timedelta(days=31))
    park_as_the_router(channel, young, "invalid_event: x", at=now - timedelta(days=29))

    result = run("replay", "--all")

    assert result.exit_code == 1
    assert f"kept {old.id}: parked 31 d 0 h ago, longer than the retention of 30 days" in (
        result.stderr
    )
    assert "could be applied twice" in result.stderr
    assert "1 replayed, 1 kept in the parking lot." in result.stdout
    assert [p.message_id for p, _ in drain(channel, "router.work")] == [young.id]
    # The old one is still parked, exactly as it was: its parking headers too.
    [(properties, body)] = drain(channel, DEAD_QUEUE)
    assert (properties.message_id, json.loads(body)["id"]) == (old.id, old.id)
    assert properties.headers[DEAD_REASON_HEADER] == "invalid_event: x"


def test_the_retention_the_replay_keeps_to_is_kcc_retention_days(
    broker_url: str, channel: BlockingChannel
) -> None:
    event = submitted()
    park_as_the_router(channel, event, "invalid_event: x", at=datetime.now(UTC) - timedelta(days=8))
    env = {"KCC_BROKER_URL": broker_url, "KCC_RETENTION_DAYS": "7"}

    refused = CliRunner().invoke(dead_letters_group, ["replay", "--id", event.id], env=env)

    assert refused.exit_code == 1
    assert "parked 8 d 0 h ago, longer than the retention of 7 days" in refused.stderr
    assert depth(channel, "router.work") == 0
    env["KCC_RETENTION_DAYS"] = "9"
    replayed = CliRunner().invoke(dead_letters_group, ["replay", "--id", event.id], env=env)
    assert replayed.exit_code == 0, replayed.output
    assert [p.message_id for p, _ in drain(channel, "router.work")] == [event.id]
    assert depth(channel, DEAD_QUEUE) == 0
