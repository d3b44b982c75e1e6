"""Router throughput against a no-op consume->publish->ack loop, on the real RabbitMQ.

Usage: .venv/bin/python bench/router.py [--messages 20000] [--rounds 2] [--prefetch 200]

Creates a fresh vhost (rabbitmqctl), preloads `--messages` request.submitted events made from
the dev-set questions into router.work, and drains them twice per round:
  baseline: consume -> publish the same body to a department queue -> ack, with the router's
            batching (batch = prefetch/2, the same idle timeout) and batched confirms on a
            second connection;
  router:   the real RouterWorker (parse, rules, due times, routed event, confirms, acks).
A third drain, "machinery", runs the RouterWorker with routing replaced by the baseline's copy:
it shows what the worker's own batching costs, apart from routing.
Then it reads every department queue and counts messages and distinct ids: lost and
duplicated must be 0. Prints one JSON object; the vhost is deleted at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Note: run as a script, this file's folder comes first on sys.path and its name (router.py)
# would hide the router package; drop the folder before importing anything of the project.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from kcc_shared.events import Actor, derived_event_id, new_event
from kcc_shared.organisation import load_organisation
from kcc_shared.publisher import Outgoing, Publisher, connection_factory
from kcc_shared.topology import declare, department_queue, routed_key, service_queue
from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer
from router.worker import DEFAULT_IDLE_TIMEOUT, RouterWorker, _Delivery

DEV_SET = Path(__file__).resolve().parents[1] / "data" / "routing-dev.jsonl"
HOST = "127.0.0.1:5672"


def rabbitmqctl(*args: str) -> None:
    binary = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([binary, *args], check=True, capture_output=True, timeout=60)


def questions() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEV_SET.read_text().splitlines() if line.strip()]


def preload(url: str, count: int, rows: list[dict[str, Any]]) -> list[str]:
    """Publish `count` submitted events into router.work (confirmed); returns their ids."""
    publisher = Publisher(connection_factory(url, timeout=10), timeout=30)
    ids: list[str] = []
    batch: list[Outgoing] = []
    for i in range(count):
        row = rows[i % len(rows)]
        event = new_event(
            "request.submitted",
            request_id=str(uuid.uuid4()),
            actor=Actor("agent", "bench"),
            data={
                "question": row["question"],
                "priority": "normal",
                "channel": row.get("channel", "phone"),
                "agent_id": "bench",
                "tags": [],
            },
        )
        ids.append(event.id)
        batch.append(Outgoing(event.id, event.routing_key, event.to_json()))
        if len(batch) == 500:
            publish_all(publisher, batch)
            batch = []
    publish_all(publisher, batch)
    publisher.close()
    return ids


def publish_all(publisher: Publisher, batch: list[Outgoing]) -> None:
    result = publisher.publish(batch)
    if result.failed:
        raise SystemExit(f"preload failed: {result.failed}")


def depth(connection: Connection, queue: str) -> int:
    _, ready, _ = connection.default_channel.queue_declare(queue, passive=True)
    return int(ready)


def wait_routed(url: str, departments: list[str], count: int, timeout: float) -> float:
    """Poll the department queues until they hold `count` messages; returns the time."""
    with Connection(url) as connection:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(depth(connection, f"kcc.dept.{d}") for d in departments) >= count:
                return time.perf_counter()
            time.sleep(0.02)
    raise SystemExit(f"not all {count} messages arrived within {timeout}s")


def collect(url: str, departments: list[str], count: int) -> list[str]:
    """Take every message off the department queues; returns their message ids."""
    ids: list[str] = []
    with Connection(url) as connection:
        channel = connection.channel()

        def take(body: Any, message: Message) -> None:
            ids.append(message.properties.get("message_id", ""))

        queues = [department_queue(d) for d in departments]
        with Consumer(channel, queues=queues, callbacks=[take], no_ack=True, accept=["json"]):
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 1.0:
                before = len(ids)
                with suppress(TimeoutError):
                    connection.drain_events(timeout=0.2)
                if len(ids) != before:
                    idle_since = time.monotonic()
        with Connection(url) as check:
            left = sum(depth(check, f"kcc.dept.{d}") for d in departments)
    if left:
        raise SystemExit(f"{left} messages left behind after collecting")
    del count
    return ids


class NoopLoop:
    """consume -> publish the same body to a department -> ack; the router's batching."""

    def __init__(self, url: str, prefetch: int, departments: list[str]) -> None:
        self.url = url
        self.prefetch = prefetch
        self.batch_size = max(1, prefetch // 2)
        self.departments = departments
        self.pending: list[Message] = []
        self.last = 0.0
        self.stop = False
        self.publisher = Publisher(connection_factory(url, timeout=10), timeout=10)

    def on_message(self, body: Any, message: Message) -> None:
        self.pending.append(message)
        self.last = time.monotonic()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        out = [
            Outgoing(
                m.properties["message_id"],
                routed_key(self.departments[m.delivery_tag % len(self.departments)]),
                m.body,
            )
            for m in batch
        ]
        result = self.publisher.publish(out)
        if result.failed:
            raise SystemExit(f"baseline publish failed: {result.failed}")
        batch[-1].ack(multiple=True)

    def run(self) -> None:
        with Connection(self.url) as connection:
            channel = connection.channel()
            consumer = Consumer(
                channel,
                queues=[service_queue("router.work")],
                callbacks=[self.on_message],
                accept=["json"],
                prefetch_count=self.prefetch,
            )
            with consumer:
                while not self.stop:
                    if self.pending and (
                        len(self.pending) >= self.batch_size
                        or time.monotonic() - self.last >= DEFAULT_IDLE_TIMEOUT
                    ):
                        self.flush()
                    with suppress(TimeoutError):
                        connection.drain_events(timeout=DEFAULT_IDLE_TIMEOUT)
                if self.pending:
                    self.flush()
        self.publisher.close()


class MachineryOnly(RouterWorker):
    """The router's consume/batch/confirm/ack machinery, routing replaced by a plain copy."""

    # The worker decides a whole batch at once (the model reads it in one pass).
    def _decide_all(self, deliveries: list[_Delivery], now: Any) -> None:
        for delivery in deliveries:
            message = delivery.message
            department = self.bench_departments[message.delivery_tag % len(self.bench_departments)]
            delivery.kind, delivery.department, delivery.reason = "routed", department, "rule"
            delivery.outgoing = Outgoing(
                message.properties["message_id"], routed_key(department), message.body
            )

    bench_departments: list[str] = []


def drain_with(
    name: str,
    start: Callable[[], Callable[[], None]],
    url: str,
    departments: list[str],
    count: int,
    expected_ids: set[str],
) -> dict[str, Any]:
    began = time.perf_counter()
    stop = start()
    finished = wait_routed(url, departments, count, timeout=600)
    stop()
    seconds = finished - began
    ids = collect(url, departments, count)
    distinct = set(ids)
    with Connection(url) as connection:
        left_in_work = depth(connection, "router.work")
    return {
        "name": name,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(count / seconds, 1),
        "received": len(ids),
        "lost": len(expected_ids - distinct),
        "duplicated": len(ids) - len(distinct),
        "unexpected": len(distinct - expected_ids),
        "left_in_router_work": left_in_work,
    }


def baseline_drain(
    url: str, departments: list[str], rows: list[dict[str, Any]], count: int, prefetch: int
) -> dict[str, Any]:
    """Preload `count` events into router.work and drain them with the no-op loop.

    The vhost at `url` must have router.work and the department queues declared (`declare`)
    and no other consumer on them; bench/pipeline.py uses this as its broker baseline.
    """
    ids = preload(url, count, rows)

    def start_baseline() -> Callable[[], None]:
        loop = NoopLoop(url, prefetch, departments)
        thread = threading.Thread(target=loop.run)
        thread.start()

        def stop() -> None:
            loop.stop = True
            thread.join()

        return stop

    return drain_with("baseline", start_baseline, url, departments, count, set(ids))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    organisation = load_organisation(None)
    departments = list(organisation.departments)
    rows = questions()
    vhost = f"kcc-bench-{uuid.uuid4().hex[:8]}"
    url = f"amqp://guest:guest@{HOST}/{vhost}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        with Connection(url) as connection:
            declare(connection, [service_queue("router.work"), *map(department_queue, departments)])
        runs: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            runs.append(baseline_drain(url, departments, rows, args.messages, args.prefetch))

            ids = preload(url, args.messages, rows)

            def start_machinery() -> Callable[[], None]:
                worker = MachineryOnly(url, organisation, prefetch=args.prefetch)
                worker.bench_departments = departments
                worker.start()
                return worker.stop

            runs.append(
                drain_with("machinery", start_machinery, url, departments, args.messages, set(ids))
            )

            ids = preload(url, args.messages, rows)

            def start_router() -> Callable[[], None]:
                worker = RouterWorker(url, organisation, prefetch=args.prefetch)
                worker.start()
                return worker.stop

            routed_ids = {derived_event_id(i, "routed") for i in ids}
            runs.append(
                drain_with("router", start_router, url, departments, args.messages, routed_ids)
            )
            print(json.dumps(runs[-3:]), file=sys.stderr)
    finally:
        rabbitmqctl("delete_vhost", vhost)

    def rate(name: str) -> float:
        return float(statistics.median(r["msgs_per_s"] for r in runs if r["name"] == name))

    baseline, machinery, router = rate("baseline"), rate("machinery"), rate("router")
    print(
        json.dumps(
            {
                "messages": args.messages,
                "rounds": args.rounds,
                "prefetch": args.prefetch,
                "batch_size": max(1, args.prefetch // 2),
                "baseline_msgs_per_s": round(baseline, 1),
                "machinery_msgs_per_s": round(machinery, 1),
                "router_msgs_per_s": round(router, 1),
                "ratio": round(router / baseline, 3),
                "ratio_to_machinery": round(router / machinery, 3),
                "goal_ratio": 0.7,
                "lost": sum(r["lost"] for r in runs if r["name"] == "router"),
                "duplicated": sum(r["duplicated"] for r in runs if r["name"] == "router"),
                "baseline_lost": sum(r["lost"] for r in runs if r["name"] == "baseline"),
                "baseline_duplicated": sum(
                    r["duplicated"] for r in runs if r["name"] == "baseline"
                ),
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
