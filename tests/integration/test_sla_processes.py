"""The SLA monitor as it runs in production: `kcc sla run` (consumer, scheduler, relay, and
/metrics, /healthz, /readyz on its metrics port) beside `kcc sla serve` (gunicorn workers with
the summary API and the overview), on one PostgreSQL database and RabbitMQ."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import pytest
from kcc_shared.auth import token_store_for
from kcc_shared.auth_migrations import HISTORY as AUTH
from kcc_shared.config import Config
from kcc_shared.db import make_engine
from kcc_shared.events import Actor, new_event
from kcc_shared.migrations import migrate
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client.parser import text_string_to_metric_families
from sla_monitor.migrations import HISTORY

KCC = [sys.executable, "-c", "from kcc_cli.main import main; main()"]
# Three Python processes (the worker, gunicorn's master and two workers) start per test: on a
# loaded machine that alone can take a minute.
pytestmark = pytest.mark.timeout(300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str, metric: str, **labels: str) -> list[float]:
    """The values of every sample named `metric` that carries `labels`."""
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == metric and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


@dataclass(frozen=True)
class Monitor:
    web: str  # `kcc sla serve`
    worker: str  # `kcc sla run`'s metrics port
    token: str  # role ops


def _ready(url: str) -> bool:
    try:
        return get(f"{url}/readyz")[0] == 200
    except OSError:
        return False


@pytest.fixture
def monitor(
    postgres_url: str, broker_url: str, tmp_path: Path, wait_for: Callable[..., None]
) -> Iterator[Monitor]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KCC_", "PROMETHEUS_"))},
        "KCC_DATABASE_URL": postgres_url,
        "KCC_BROKER_URL": broker_url,
        "KCC_SLA_PUBLIC_PAGE": "true",
    }
    # What `kcc sla migrate` and `kcc token create` do, in this process: each `kcc` start costs
    # seconds on a loaded machine. Migrated first, as the deployments do: the worker and two
    # gunicorn workers creating the tables of a new database at once can collide (pg_type).
    engine = make_engine(postgres_url)
    try:
        migrate(engine, HISTORY)
        migrate(engine, AUTH)
        config = Config(database_url=postgres_url, broker_url=broker_url)
        token, _ = token_store_for(config, engine).create(role="ops", user_id="ops-olaf")
    finally:
        engine.dispose()
    web_bind, worker_port = f"127.0.0.1:{free_port()}", free_port()
    commands = {
        "web": (
            ["sla", "serve"],
            {
                "KCC_HTTP_BIND": web_bind,
                "KCC_HTTP_WORKERS": "2",
                # gunicorn_conf creates (and wipes) this folder when the master starts.
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "web-metrics"),
            },
        ),
        "worker": (["sla", "run"], {"KCC_METRICS_PORT": str(worker_port)}),
    }
    logs = {name: tmp_path / f"{name}.log" for name in commands}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for name, (command, extra) in commands.items():
        with logs[name].open("w") as output:
            processes[name] = subprocess.Popen(
                [*KCC, *command], env={**env, **extra}, stdout=output, stderr=output
            )
    found = Monitor(f"http://{web_bind}", f"http://127.0.0.1:{worker_port}", token)

    def ready() -> bool:
        for name, process in processes.items():
            assert process.poll() is None, logs[name].read_text()
        return _ready(found.web) and _ready(found.worker)

    try:
        wait_for(ready, timeout=180, interval=0.2)
        yield found
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for name, process in processes.items():
            assert process.wait(timeout=30) == 0, logs[name].read_text()


def _publish_routed(broker_url: str, request_id: str) -> None:
    now = datetime.now(UTC)
    event = new_event(
        "request.routed",
        request_id=request_id,
        actor=Actor("system", "router"),
        data={
            "department": "burgerzaken",
            "rule_id": None,
            "rules_version": "t",
            "reason": "category",
            "priority": "normal",
            "handoff_count": 0,
            "first_response_due": now,
            "resolution_due": now,
        },
        occurred_at=now,
    )
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        connection.channel().basic_publish(
            "kcc.events",
            event.routing_key,
            event.to_json().encode(),
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=event.id
            ),
        )
    finally:
        connection.close()


def _open_in_worker(monitor: Monitor) -> float:
    text = get(f"{monitor.worker}/metrics")[1]
    return sum(samples(text, "kcc_requests_open", department="burgerzaken"))


def test_the_worker_counts_what_the_web_side_shows_and_each_figure_is_exported_once(
    monitor: Monitor, broker_url: str, amqp_channel: BlockingChannel, wait_for: Callable[..., None]
) -> None:
    _publish_routed(broker_url, str(uuid.uuid4()))
    wait_for(lambda: _open_in_worker(monitor) == 1.0, timeout=30, interval=0.2)

    # The web side reads the same store: the summary API and the overview page show it.
    status, body = get(f"{monitor.web}/api/v1/sla/summary?window=1d", monitor.token)
    assert status == 200, body
    summary: dict[str, Any] = json.loads(body)
    burgerzaken = next(d for d in summary["departments"] if d["department"] == "burgerzaken")
    assert sum(burgerzaken["open"].values()) == 1
    status, page = get(f"{monitor.web}/sla")
    assert status == 200
    assert "Burgerzaken" in page

    # The SLA figures live on the worker's port only; gunicorn's /metrics is its HTTP latency.
    worker = get(f"{monitor.worker}/metrics")[1]
    assert samples(worker, "kcc_sla_events_ingested_total", type="request.routed") == [1.0]
    assert samples(worker, "kcc_sla_outcomes_total", department="burgerzaken")
    assert samples(worker, "kcc_outbox_backlog", service="sla-monitor") == [0.0]
    web = get(f"{monitor.web}/metrics")[1]
    assert samples(web, "kcc_http_request_duration_seconds_count", endpoint="/sla")
    for metric in ("kcc_requests_open", "kcc_sla_outcomes_total", "kcc_outbox_backlog"):
        assert not samples(web, metric), f"{metric} is exported by the web side too"


def test_the_worker_reports_its_parts_and_dependencies(monitor: Monitor) -> None:
    status, body = get(f"{monitor.worker}/healthz")
    assert status == 200, body
    parts = json.loads(body)["parts"]
    assert set(parts.values()) == {"ok"}
    assert {"outbox-relay", "scheduler", "consumer"} <= set(parts)
    status, body = get(f"{monitor.worker}/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"] == {"database": "ok", "broker": "ok", "consumer": "ok"}
    # The pages and the API are the web side's; the worker's port has none of them.
    assert get(f"{monitor.worker}/sla")[0] == 404
    assert get(f"{monitor.web}/healthz")[0] == 200
