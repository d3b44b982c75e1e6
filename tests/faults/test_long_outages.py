"""Outages longer than any retry budget: a 60-second broker memory alarm and a 60-second
PostgreSQL outage while agents file 2,000 questions (KCC_OUTAGE_REQUESTS). Work waits while
they last and resumes when they end: 0 lost, 0 parked, 0 duplicated.

Before the one retry policy, the router requeued its whole batch whenever a publish failed: an
alarm longer than ~40 s spent the batch's delivery attempts and parked good requests. Now every
consumer holds its batch (the router while the broker does not confirm, the others while the
database cannot be reached) and tries again after kcc_shared.backoff.RETRY's pause."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from ledger import outbox_unsent
from servers import PrivatePostgres, PrivateRabbitMQ
from test_faults import drive
from traffic import Traffic

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(900)]

OUTAGE_SECONDS = float(os.environ.get("KCC_FAULT_OUTAGE_SECONDS", "60"))
# A minute's outage amid 2,000: the work it holds back is a backlog, not a handful.
COUNT = int(os.environ.get("KCC_OUTAGE_REQUESTS", "2000"))
STRIKE = COUNT // 3
DURING = max(1, COUNT // 10)


def hold(seconds: float) -> float:
    """Let the outage last `seconds` (the fault itself is a length of time); returns it."""
    started = time.monotonic()
    threading.Event().wait(seconds)
    return round(time.monotonic() - started, 1)


def test_a_60_second_memory_alarm_delays_every_request_and_parks_none(
    stack: Any,
    private_rabbitmq: PrivateRabbitMQ,
    questions: list[tuple[str, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()

    def inject(traffic: Traffic) -> dict[str, Any]:
        # The router is away while requests arrive, so router.work holds a backlog when the
        # alarm strikes; it comes back during the alarm and takes batches it cannot publish.
        traffic.wait_accepted(STRIKE)
        stack.stop("router")
        traffic.wait_accepted(STRIKE + DURING)
        private_rabbitmq.memory_alarm(True)
        try:
            assert "memory" in private_rabbitmq.alarms()
            accepted_before = traffic.accepted
            stack.start("router")
            stack.wait_ready("router", timeout=120)
            # A full outage from the moment the router holds work: longer than the ~40 s in
            # which requeueing used to spend a message's deliveries.
            lasted = hold(OUTAGE_SECONDS)
            accepted_during = traffic.accepted - accepted_before
            # Publishers are blocked: what the intake accepted meanwhile waits in its outbox.
            backlog = outbox_unsent(stack, "intake")
        finally:
            private_rabbitmq.memory_alarm(False)
        assert backlog > 0
        return {
            "alarm_s_after_router_ready": lasted,
            "accepted_during_alarm": accepted_during,
            "outbox_backlog_at_end_of_alarm": backlog,
        }

    traffic = drive(
        "memory-alarm-60s", stack, private_rabbitmq, questions, inject, capsys, count=COUNT
    )
    assert len(traffic.filed) == COUNT
    # The router found its publish blocked and held its batch, and parked nothing (drive).
    held = stack.logs("router").count("batch_publish_failed")
    with capsys.disabled():
        print(f"memory-alarm-60s: {time.monotonic() - started:.0f} s wall time, {held} holds")
    assert held > 0


def test_a_60_second_database_outage_delays_every_request_and_parks_none(
    stack: Any,
    private_rabbitmq: PrivateRabbitMQ,
    private_postgres: PrivatePostgres,
    questions: list[tuple[str, str, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()

    def inject(traffic: Traffic) -> dict[str, Any]:
        traffic.wait_accepted(STRIKE)
        private_postgres.stop()
        try:
            lasted = hold(OUTAGE_SECONDS)
        finally:
            private_postgres.start()
        return {"database_down_s": lasted}

    # While the database is down the intake answers 503 and clients retry with the same
    # Idempotency-Key; the consumers hold their batches and keep their connections alive.
    traffic = drive(
        "postgresql-down-60s", stack, private_rabbitmq, questions, inject, capsys, count=COUNT
    )
    assert len(traffic.filed) == COUNT
    with capsys.disabled():
        print(f"postgresql-down-60s: {time.monotonic() - started:.0f} s wall time")
    assert "database_unavailable" in stack.logs()
