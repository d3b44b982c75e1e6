"""Fault injection on the whole pipeline: every service a real process, on a private RabbitMQ
node and PostgreSQL cluster (tests/faults/servers.py), so the machine's shared ones are never
disturbed; the faults share one stack of them, one after the other. For each fault, agents
file 1,000 questions (KCC_FAULT_REQUESTS) while the fault strikes; afterwards every accepted
request must be in the agent's view, in the right inbox and in the SLA monitor exactly once,
every outbox empty and every queue drained. Each test prints what it counted
(one JSON line) and writes it to var/artefacts/faults/."""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import pytest
from kcc_shared.topology import (
    DEAD_QUEUE,
    EVENTS_EXCHANGE,
    SERVICE_BINDINGS,
    department_queue_name,
    queue_arguments,
)
from ledger import outbox_unsent, settle, take_stock
from servers import PrivatePostgres, PrivateRabbitMQ
from traffic import Traffic

# Minutes, not the default two: a broker restart alone takes ~20 s here.
pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(900)]

# 1,000: a kill or a restart lasts seconds, and a third of the stream before it and 10 % while
# it lasts show what it does; the two faults that last a minute file more (test_long_outages).
COUNT = int(os.environ.get("KCC_FAULT_REQUESTS", "1000"))
# The fault strikes a third of the way in; while it lasts, another tenth must get accepted.
STRIKE = COUNT // 3
DURING = max(1, COUNT // 10)
ARTEFACTS = Path(__file__).resolve().parents[2] / "var" / "artefacts" / "faults"


def drive(
    name: str,
    stack: Any,
    broker: PrivateRabbitMQ,
    questions: list[tuple[str, str, str]],
    inject: Callable[[Traffic], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    after: Callable[[], dict[str, Any]] = dict,
    count: int = COUNT,
) -> Traffic:
    """File `count` questions, strike with `inject` while they flow, and account for them."""
    stack.assert_alive()
    parked_before = parked(broker, stack)
    traffic = Traffic(stack.intake_url, stack.agent_token, questions, count).start()
    details = inject(traffic)
    traffic.join()
    details.update(after())
    ledger = settle(stack, traffic.filed)
    if ledger.complete:
        # Everything arrived; a late duplicate would still be in some queue. Judge once all
        # queues are empty.
        wait_drained(broker, stack)
        ledger = take_stock(stack, traffic.filed)
    parked_now = parked(broker, stack) - parked_before
    line = ledger.summary(
        name,
        parked_in_kcc_dead=parked_now,
        answers={str(k): v for k, v in sorted(traffic.statuses.items())},
        slowest_post_s=round(traffic.slowest, 2),
        **details,
    )
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / f"{name}.json").write_text(line + "\n")
    with capsys.disabled():
        print(f"\n{line}")
    failures = traffic.failures()
    assert not failures, f"{len(failures)} requests never accepted, e.g. {failures[0].error}"
    # No fault may make a POST hang: the intake never waits for the broker (outbox), and a
    # database outage is answered at once (503).
    assert traffic.statuses[-1] == 0, f"{traffic.statuses[-1]} POSTs hung past the timeout"
    assert ledger.complete, f"not every request accounted for: {line}\n{stack.logs(tail=4000)}"
    assert parked_now == 0, f"{parked_now} messages parked in kcc.dead during this fault"
    return traffic


def depths(broker: PrivateRabbitMQ, stack: Any) -> dict[str, int]:
    vhost = stack.broker_url.rsplit("/", 1)[1]
    listing = broker.ctl("list_queues", "-p", vhost, "name", "messages", "--no-table-headers")
    return {
        name: int(count) for name, count in (line.split() for line in listing.splitlines() if line)
    }


def parked(broker: PrivateRabbitMQ, stack: Any) -> int:
    return depths(broker, stack).get(DEAD_QUEUE, 0)


def wait_drained(broker: PrivateRabbitMQ, stack: Any, timeout: float = 120.0) -> None:
    """Every work queue empty (the parking lot is judged on its own: see `parked`)."""
    deadline = time.monotonic() + timeout
    while True:
        busy = [q for q, n in depths(broker, stack).items() if n and q != DEAD_QUEUE]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"queues not drained after {timeout:.0f} s: {busy}")
        time.sleep(0.5)


def test_broker_killed_mid_stream_then_restarted(
    stack: Any,
    private_rabbitmq: PrivateRabbitMQ,
    questions: list[tuple[str, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def inject(traffic: Traffic) -> dict[str, Any]:
        traffic.wait_accepted(STRIKE)
        private_rabbitmq.kill()
        down_at = traffic.accepted
        # The broker is gone, the intake is not: requests go on being accepted (outbox).
        traffic.wait_accepted(down_at + DURING)
        accepted_while_down = traffic.accepted - down_at
        private_rabbitmq.start()
        return {"accepted_while_broker_down": accepted_while_down}

    drive("broker-kill-9", stack, private_rabbitmq, questions, inject, capsys)


def test_broker_graceful_restart(
    stack: Any,
    private_rabbitmq: PrivateRabbitMQ,
    questions: list[tuple[str, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def inject(traffic: Traffic) -> dict[str, Any]:
        traffic.wait_accepted(STRIKE)
        started = time.monotonic()
        private_rabbitmq.restart()
        return {"broker_restart_s": round(time.monotonic() - started, 1)}

    drive("broker-graceful-restart", stack, private_rabbitmq, questions, inject, capsys)


def test_database_restarted_while_intake_accepts(
    stack: Any,
    private_rabbitmq: PrivateRabbitMQ,
    private_postgres: PrivatePostgres,
    questions: list[tuple[str, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def inject(traffic: Traffic) -> dict[str, Any]:
        traffic.wait_accepted(STRIKE)
        started = time.monotonic()
        private_postgres.restart()
        return {"database_restart_s": round(time.monotonic() - started, 1)}

    # Clients retry with the same Idempotency-Key; the ledger counts doubled requests.
    drive("postgresql-restart", stack, private_rabbitmq, questions, inject, capsys)


def test_memory_alarm_blocks_publishers_and_intake_keeps_accepting(
    stack: Any,
    private_rabbitmq: PrivateRabbitMQ,
    questions: list[tuple[str, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def inject(traffic: Traffic) -> dict[str, Any]:
        traffic.wait_accepted(STRIKE)
        private_rabbitmq.memory_alarm(True)
        try:
            assert "memory" in private_rabbitmq.alarms()
            during = traffic.accepted
            traffic.wait_accepted(during + 2 * DURING)
            backlog = outbox_unsent(stack, "intake")
        finally:
            private_rabbitmq.memory_alarm(False)
        # While publishers are blocked, accepted requests wait in the outbox.
        assert backlog > 0
        return {"accepted_during_alarm": traffic.accepted - during, "outbox_backlog": backlog}

    drive("memory-alarm", stack, private_rabbitmq, questions, inject, capsys)


# -- duplicates and reordering ---------------------------------------------------------------


def _topic_matches(pattern: str, key: str) -> bool:
    regex = re.escape(pattern).replace(r"\#", ".*").replace(r"\*", "[^.]+")
    return re.fullmatch(regex, key) is not None


class Echo(threading.Thread):
    """Sees every event on kcc.events (a tap queue) and delivers it once more to every queue
    that got it, the copies shuffled in windows: each consumer sees every event twice, in an
    order that is not the order it happened in."""

    WINDOW = 64

    def __init__(self, url: str, departments: list[str]) -> None:
        super().__init__(daemon=True)
        self.params = pika.URLParameters(url)
        self.departments = departments
        self.stop = threading.Event()
        self.copies = 0
        self.error: BaseException | None = None
        connection = pika.BlockingConnection(self.params)
        channel = connection.channel()
        channel.queue_declare("faults.tap", durable=True, arguments=queue_arguments())
        channel.queue_bind("faults.tap", EVENTS_EXCHANGE, routing_key="#")
        connection.close()

    def remove_tap(self) -> None:
        connection = pika.BlockingConnection(self.params)
        connection.channel().queue_delete("faults.tap")
        connection.close()

    def targets(self, routing_key: str) -> list[str]:
        queues = [
            q
            for q, keys in SERVICE_BINDINGS.items()
            if any(_topic_matches(k, routing_key) for k in keys)
        ]
        for department in self.departments:
            if routing_key == f"request.routed.{department}":
                queues.append(department_queue_name(department))
        return queues

    def run(self) -> None:
        try:
            self._echo()
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc

    def _echo(self) -> None:
        connection = pika.BlockingConnection(self.params)
        channel = connection.channel()
        channel.confirm_delivery()
        shuffle = random.Random(7)
        idle_since = time.monotonic()
        while True:
            window = []
            for method, properties, body in channel.consume("faults.tap", inactivity_timeout=0.2):
                if method is None:
                    break
                window.append((method, properties, body))
                if len(window) >= self.WINDOW:
                    break
            if not window:
                if self.stop.is_set() and time.monotonic() - idle_since > 2:
                    break
                continue
            idle_since = time.monotonic()
            copies = [(m.routing_key, p, b) for m, p, b in window]
            shuffle.shuffle(copies)
            for routing_key, properties, body in copies:
                for queue in self.targets(routing_key):
                    channel.basic_publish("", queue, body, properties)
                    self.copies += 1
            channel.basic_ack(window[-1][0].delivery_tag, multiple=True)
        channel.cancel()
        connection.close()


def test_router_and_consumers_killed_amid_duplicated_and_reordered_deliveries(
    stack: Any,
    private_rabbitmq: PrivateRabbitMQ,
    questions: list[tuple[str, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Three faults in one stream of 1,000 (each of them sees all 1,000 pass): every consumer
    gets every event twice, out of order, throughout; a third of the way in the router is
    killed mid-batch (it publishes and acks batches of 100), and two thirds in the intake and
    back-office consumers are killed mid-message. Each comes back after another tenth."""
    echo = Echo(stack.broker_url, list(stack.organisation.departments))
    echo.start()

    def kill_and_restart(traffic: Traffic, at: int, processes: tuple[str, ...]) -> int:
        traffic.wait_accepted(at)
        for name in processes:
            stack.kill(name)
        down_at = traffic.accepted
        traffic.wait_accepted(down_at + DURING)
        accepted_while_down = traffic.accepted - down_at
        for name in processes:
            stack.start(name)
        for name in processes:
            stack.wait_ready(name)
        return int(accepted_while_down)

    def inject(traffic: Traffic) -> dict[str, Any]:
        return {
            "accepted_while_router_down": kill_and_restart(traffic, STRIKE, ("router",)),
            "accepted_while_consumers_down": kill_and_restart(
                traffic, 2 * STRIKE, ("backoffice-consumer", "intake-consumer")
            ),
        }

    def finish_echo() -> dict[str, Any]:
        # Once the last request is in, the echo goes on until the tap has been quiet a while.
        echo.stop.set()
        echo.join(120)
        assert echo.error is None, repr(echo.error)
        assert not echo.is_alive()
        return {"extra_deliveries": echo.copies}

    drive(
        "router-and-consumers-kill-9-with-duplicates-and-reordering",
        stack,
        private_rabbitmq,
        questions,
        inject,
        capsys,
        after=finish_echo,
    )
    # submitted and routed events alone, once more to at least two consumers each
    assert echo.copies >= 2 * 2 * COUNT
    echo.remove_tap()
