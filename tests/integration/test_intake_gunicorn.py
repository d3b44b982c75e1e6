"""The intake as it runs in production: gunicorn workers, PostgreSQL, RabbitMQ, one /metrics."""

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
from pathlib import Path
from typing import Any

import pytest
from pika.adapters.blocking_connection import BlockingChannel


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, method="POST" if body is not None else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    if data:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data=data, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    return status, (json.loads(text) if text.startswith("{") else text)


@pytest.fixture
def intake_server(
    postgres_url: str, broker_url: str, tmp_path: Path, wait_for: Callable[..., None]
) -> Iterator[tuple[str, str]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KCC_")},
        "KCC_DATABASE_URL": postgres_url,
        "KCC_BROKER_URL": broker_url,
        "KCC_HTTP_WORKERS": "2",
        "KCC_HTTP_BIND": f"127.0.0.1:{free_port()}",
    }
    kcc = [sys.executable, "-c", "from kcc_cli.main import main; main()"]
    token = subprocess.run(
        [*kcc, "token", "create", "--role", "agent", "--user", "agent-anna"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    log = tmp_path / "gunicorn.log"
    # gunicorn_conf creates (and wipes) this folder when the master starts.
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    with log.open("w") as output:
        server = subprocess.Popen([*kcc, "intake", "serve"], env=env, stdout=output, stderr=output)
    base = f"http://{env['KCC_HTTP_BIND']}"

    def ready() -> bool:
        assert server.poll() is None, log.read_text()
        try:
            return http(f"{base}/readyz")[0] == 200
        except OSError:
            return False

    try:
        wait_for(ready, timeout=60)
        yield base, token
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, log.read_text()


def test_gunicorn_workers_accept_publish_and_report_one_set_of_metrics(
    intake_server: tuple[str, str], amqp_channel: BlockingChannel, wait_for: Callable[..., None]
) -> None:
    base, token = intake_server
    amqp_channel.exchange_declare("kcc.events", exchange_type="topic", durable=True)
    queue = amqp_channel.queue_declare("", exclusive=True).method.queue
    amqp_channel.queue_bind(queue, "kcc.events", routing_key="request.submitted")

    ids = set()
    for n in range(30):
        status, body = http(
            f"{base}/api/v1/requests",
            token,
            {"question": f"Vraag {n}: container niet geleegd in de Lindelaan.", "channel": "chat"},
        )
        assert status == 202
        ids.add(body["id"])

    arrived = set()
    for method, _, body in amqp_channel.consume(queue, inactivity_timeout=20):
        if method is None:
            break
        amqp_channel.basic_ack(method.delivery_tag)
        arrived.add(json.loads(body)["request_id"])
        if arrived == ids:
            break
    amqp_channel.cancel()
    assert arrived == ids

    # Both workers served requests; /metrics (answered by either) sums them all.
    status, metrics = http(f"{base}/metrics")
    assert status == 200
    assert 'kcc_requests_submitted_total{channel="chat",priority="normal"} 30.0' in metrics
    # A row is marked sent just after its confirm, so the backlog reaches 0 a moment later.
    wait_for(lambda: 'kcc_outbox_backlog{service="intake"} 0.0' in http(f"{base}/metrics")[1])


def test_each_worker_logs_in_the_configured_format(
    intake_server: tuple[str, str], tmp_path: Path, wait_for: Callable[..., None]
) -> None:
    # The JSON lines operators ship to their log store, with every field, from the workers
    # too (they once printed bare event names through Python's last-resort handler).
    def started() -> list[dict[str, object]]:
        text = (tmp_path / "gunicorn.log").read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        return [line for line in lines if line["event"] == "http_worker_started"]

    wait_for(lambda: len(started()) == 2)
    assert [line["service"] for line in started()] == ["intake", "intake"]
    assert len({line["worker_pid"] for line in started()}) == 2


def test_a_bad_token_and_bad_body_are_refused_by_the_real_server(
    intake_server: tuple[str, str],
) -> None:
    base, token = intake_server
    assert http(f"{base}/api/v1/requests", "kcc_" + uuid.uuid4().hex, {"question": "x"})[0] == 401
    status, problem = http(f"{base}/api/v1/requests", token, {"question": "kort"})
    assert status == 400
    assert "question" in problem["errors"]
