"""Intake throughput and latency on PostgreSQL, against a bare Flask POST on the same gunicorn.

Run: `.venv/bin/python bench/intake.py [--seconds 15] [--connections 16]`. Prints JSON.
Both servers run with the intake's gunicorn settings (workers, threads) on this machine, one
after the other, driven by the same closed-loop client; the ratio is what to compare across
machines, the absolute figures only on this one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
DEV_SET = ROOT / "data" / "routing-dev.jsonl"
PG_ADMIN = os.environ.get("KCC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def questions() -> list[str]:
    if DEV_SET.is_file():
        return [json.loads(line)["question"] for line in DEV_SET.read_text().splitlines() if line]
    return [f"Vraag {n} over de afvalkalender en het ophalen van grofvuil." for n in range(100)]


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"kcc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    host = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{host}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    name = f"kcc-bench-{uuid.uuid4().hex[:8]}"
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        [ctl, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"amqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        subprocess.run([ctl, "delete_vhost", name], check=True, capture_output=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(app: str, env: dict[str, str], port: int) -> Iterator[None]:
    metrics_dir = tempfile.mkdtemp(prefix="kcc-bench-metrics-")
    full_env = {
        **os.environ,
        **env,
        "KCC_HTTP_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        "PYTHONPATH": str(ROOT / "bench" / "baselines"),
        "KCC_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:intake.gunicorn_conf", app],
        env=full_env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{app} did not start")
            time.sleep(0.1)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def load(port: int, token: str, seconds: float, connections: int) -> dict[str, Any]:
    """A closed loop: each connection sends the next POST as soon as the last is answered."""
    texts = questions()
    latencies: list[list[float]] = [[] for _ in range(connections)]
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start_at = time.monotonic() + 0.5
    warmup = 2.0
    stop_at = start_at + warmup + seconds

    def worker(n: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        i = n
        while time.monotonic() < start_at:
            time.sleep(0.01)
        while (now := time.monotonic()) < stop_at:
            body = json.dumps({"question": texts[i % len(texts)], "channel": "phone"})
            i += connections
            connection.request("POST", "/api/v1/requests", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = time.monotonic() - now
            if now >= start_at + warmup:
                latencies[n].append(elapsed)
                with lock:
                    statuses[response.status] = statuses.get(response.status, 0) + 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = sorted(x for per in latencies for x in per)
    accepted = statuses.get(202, 0)

    def pct(p: float) -> float:
        return round(flat[min(len(flat) - 1, int(p * len(flat)))] * 1000, 2) if flat else 0.0

    return {
        "accepted_per_s": round(accepted / seconds, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "statuses": statuses,
    }


def create_token(env: dict[str, str]) -> str:
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "kcc"),
            "token",
            "create",
            "--role",
            "agent",
            "--user",
            "bench-agent",
            "--team",
            "bench",
        ],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    with postgres_database() as database_url, rabbitmq_vhost() as broker_url:
        env = {"KCC_DATABASE_URL": database_url, "KCC_BROKER_URL": broker_url}
        token = create_token(env)

        port = free_port()
        with gunicorn("bare_flask:create_app()", env, port):
            baseline = load(port, token, args.seconds, args.connections)

        port = free_port()
        with gunicorn("intake.app:create_app()", env, port):
            intake = load(port, token, args.seconds, args.connections)
            stored, unsent = count_rows(database_url)
            deadline = time.monotonic() + 60
            while unsent and time.monotonic() < deadline:
                time.sleep(0.5)
                stored, unsent = count_rows(database_url)

    print(
        json.dumps(
            {
                "benchmark": "intake POST /api/v1/requests on PostgreSQL",
                "seconds": args.seconds,
                "connections": args.connections,
                "baseline_bare_flask": baseline,
                "intake": intake,
                "ratio_intake_to_baseline": round(
                    intake["accepted_per_s"] / max(baseline["accepted_per_s"], 0.1), 3
                ),
                "stored_requests": stored,
                "unpublished_after_drain": unsent,
            },
            indent=2,
        )
    )


def count_rows(database_url: str) -> tuple[int, int]:
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection:
        stored = connection.execute("SELECT count(*) FROM requests").fetchone()
        unsent = connection.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return int(stored[0]) if stored else 0, int(unsent[0]) if unsent else 0


if __name__ == "__main__":
    main()
