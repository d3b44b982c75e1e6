"""SLA monitor benchmark: events/s ingested and /metrics scrape time with many open requests.

Real RabbitMQ (a fresh vhost) and PostgreSQL (a fresh database). A synthetic organisation of
50 departments x 4 priorities. Ingest: `--requests` requests x 3 events (routed, claimed,
answered) published with pika, consumed by the monitor's EventConsumer into PostgreSQL,
`--batch-size` messages per transaction (KCC_CONSUMER_BATCH_SIZE; 1 = one per message).
`--ingest-only` skips the scrape part.
Scrape: open requests inserted in bulk straight into the store's tables (waiting, with running
clocks), then GET /metrics timed. Prints one JSON object; vhost and database are dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Note: run as a script, this file's folder comes first on sys.path and its name
# (sla_monitor.py) would hide the sla_monitor package; drop the folder before the imports.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import psycopg
from kcc_shared.clocks import business_us_since_epoch
from kcc_shared.config import Config
from kcc_shared.events import Actor, Event, new_event
from kcc_shared.organisation import load_organisation
from kcc_shared.publisher import connection_factory
from kcc_shared.topology import declare, service_queue
from sla_monitor.app import create_app, store_of
from sla_monitor.tables import clocks_table, open_counts_table, processed, requests_table
from sla_monitor.worker import QUEUE, SlaMonitor
from sqlalchemy import delete, func, insert, select

PG_ADMIN = os.environ.get("KCC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
DEPARTMENTS = [f"afdeling-{i:02d}" for i in range(50)]
PRIORITIES = ("urgent", "high", "normal", "low")


def rabbitmqctl(*args: str) -> None:
    binary = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([binary, *args], check=True, capture_output=True, timeout=60)


def organisation_file(folder: Path) -> Path:
    lines = [
        "version: 1",
        "organisation: {name: Benchmark}",
        "calendars:",
        "  kantoor:",
        "    timezone: Europe/Amsterdam",
        "    public_holidays: NL",
        "    opening_hours:",
        *[f'      {d}: ["08:30-17:00"]' for d in ("monday", "tuesday", "wednesday", "thursday",
                                              "friday")],
        "departments:",
    ]  # fmt: skip
    for index, department in enumerate(DEPARTMENTS):
        hours = 1 + index % 4
        lines += [
            f"  - id: {department}",
            f"    name: Afdeling {index}",
            "    calendar: kantoor",
            "    warning_at: 80%",
            "    sla:",
            *[
                f"      {p}: {{first_response: {hours * (k + 1)}h, resolution: "
                f"{hours * (k + 1) * 4}h}}"
                for k, p in enumerate(PRIORITIES)
            ],
        ]
    lines.append(f"fallback_department: {DEPARTMENTS[0]}")
    path = folder / "organisation.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def events_for(count: int, start: datetime) -> list[Event]:
    staff = Actor("staff", "bench")
    result = []
    for n in range(count):
        request_id = str(uuid.uuid4())
        department = DEPARTMENTS[n % len(DEPARTMENTS)]
        priority = PRIORITIES[n % len(PRIORITIES)]
        at = start + timedelta(seconds=n)
        result += [
            new_event("request.routed", request_id=request_id, actor=staff, occurred_at=at, data={
                "department": department, "rule_id": None, "rules_version": "b",
                "reason": "category", "priority": priority, "handoff_count": 0,
                "first_response_due": at, "resolution_due": at}),
            new_event("request.claimed", request_id=request_id, actor=staff,
                      occurred_at=at + timedelta(minutes=10),
                      data={"department": department, "staff_id": "s"}),
            new_event("request.answered", request_id=request_id, actor=staff,
                      occurred_at=at + timedelta(minutes=50),
                      data={"department": department, "staff_id": "s", "answer": "a"}),
        ]  # fmt: skip
    return result


def ingest(config: Config, app: Any, vhost: str, requests: int) -> dict[str, Any]:
    store = store_of(app)
    monitor = SlaMonitor(config, store)
    events = events_for(requests, datetime(2026, 4, 20, 7, 0, tzinfo=UTC))
    # The queue first, filled before the consumer starts: the figure is the drain of a
    # backlog, not the publisher's pace.
    declaring = connection_factory(config.broker_url, timeout=5)()
    declare(declaring, [service_queue(QUEUE)])
    declaring.release()
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(
            "127.0.0.1", virtual_host=vhost, credentials=pika.PlainCredentials("guest", "guest")
        )
    )
    channel = connection.channel()
    channel.confirm_delivery()
    for event in events:
        channel.basic_publish(
            "kcc.events",
            event.routing_key,
            event.to_json().encode(),
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=event.id
            ),
        )
    connection.close()  # fmt: skip
    started = time.perf_counter()
    monitor.consumer.start()
    while True:
        with store.engine.connect() as c:
            done = c.execute(select(func.count()).select_from(processed)).scalar_one()
        if done >= len(events):
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    monitor.stop(5)
    return {"store": store.engine.dialect.name, "batch_size": monitor.consumer.batch_size,
            "prefetch": config.prefetch, "events": len(events), "seconds": round(elapsed, 2),
            "events_per_second": round(len(events) / elapsed)}  # fmt: skip


def fill_open(app: Any, count: int, now: datetime) -> None:
    """Bulk-insert `count` open (waiting) requests with running clocks, then the aggregates."""
    store = store_of(app)
    calendar = store.org.calendar_for(DEPARTMENTS[0])
    with store.engine.begin() as c:
        for table in (clocks_table, requests_table, open_counts_table):
            c.execute(delete(table))
        batch_r: list[dict[str, Any]] = []
        batch_c: list[dict[str, Any]] = []
        for n in range(count):
            request_id = str(uuid.uuid4())
            department = DEPARTMENTS[n % len(DEPARTMENTS)]
            started = now - timedelta(minutes=1 + n % 5000)
            origin = business_us_since_epoch(calendar, started)
            batch_r.append({"request_id": request_id, "department": department,
                            "priority": "normal", "state": "waiting"})  # fmt: skip
            for kind in ("first_response", "resolution"):
                batch_c.append({
                    "request_id": request_id, "segment": request_id, "kind": kind, "round": 0,
                    "department": department, "priority": "normal", "target_s": 3600,
                    "warning_us": 2880 * 10**6, "started_at": started, "status": "running",
                    "elapsed_us": 0, "running_since": started, "origin_us": origin,
                    "closed_at": None, "close_reason": None, "outcome": None,
                    "next_due": now + timedelta(days=1), "warned": False, "breached": False,
                    "breached_at": None, "observed": False})  # fmt: skip
            if len(batch_r) >= 5000:
                c.execute(insert(requests_table), batch_r)
                c.execute(insert(clocks_table), batch_c)
                batch_r, batch_c = [], []
        if batch_r:
            c.execute(insert(requests_table), batch_r)
            c.execute(insert(clocks_table), batch_c)
        rows = c.execute(
            select(requests_table.c.department, requests_table.c.state, func.count()).group_by(
                requests_table.c.department, requests_table.c.state
            )
        ).all()
        c.execute(insert(open_counts_table),
                  [{"department": d, "state": s, "count": k} for d, s, k in rows])  # fmt: skip
        c.exec_driver_sql("ANALYZE")


def scrape(app: Any, runs: int = 30) -> dict[str, float]:
    client = app.test_client()
    client.get("/metrics")  # warm the calendar caches
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get("/metrics")
        timings.append(time.perf_counter() - started)
        assert response.status_code == 200
    timings.sort()
    return {"median_ms": round(statistics.median(timings) * 1000, 1),
            "p90_ms": round(timings[int(len(timings) * 0.9) - 1] * 1000, 1),
            "bytes": len(response.data)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=Config().consumer_batch_size)
    parser.add_argument("--ingest-only", action="store_true")
    args = parser.parse_args()
    vhost = f"kcc-bench-{uuid.uuid4().hex[:8]}"
    database = f"kcc_bench_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    host_part = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        with tempfile.TemporaryDirectory() as folder:
            org_file = organisation_file(Path(folder))
            org = load_organisation(org_file)
            config = Config(
                database_url=f"postgresql+psycopg://{host_part}/{database}",
                broker_url=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                organisation_file=str(org_file),
                consumer_batch_size=args.batch_size,
            )
            app = create_app(config, organisation=org)
            result: dict[str, Any] = {
                "departments": len(DEPARTMENTS), "priorities": len(PRIORITIES),
                "ingest": ingest(config, app, vhost, args.requests), "scrape": {},
            }  # fmt: skip
            now = datetime.now(UTC)
            for open_count in () if args.ingest_only else (1_000, 100_000):
                fill_open(app, open_count, now)
                result["scrape"][f"{open_count}_open"] = scrape(app)
            store_of(app).engine.dispose()
        print(json.dumps(result, indent=2))
    finally:
        rabbitmqctl("delete_vhost", vhost)
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
