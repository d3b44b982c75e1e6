"""The whole pipeline under load: intake, router, back office and SLA monitor as real processes.

Usage: .venv/bin/python bench/pipeline.py [--quick] [--requests 1000] [--connections 16]
                                          [--rate 200] [--duration 60] [--max-in-flight 64]

A fresh RabbitMQ vhost and one PostgreSQL database per service; every service as its own
process (tests/stack.py: the APIs under gunicorn with their own settings, the consumers with
theirs). A load generator in this process posts dev-set questions
(data/routing-dev.jsonl), each with its own Idempotency-Key, and a tap queue
(pika) bound to kcc.events with `request.routed.#` sees each routed event the moment the
broker delivers it to the department queue. Two phases on one stack:

  saturation   --requests POSTs from --connections keep-alive connections, each sending the
               next as soon as the last is answered: intake accepted/s and latency, router
               routed/s, end-to-end submit -> department queue, SLA monitor events/s.
  fixed rate   open loop: one POST due every 1/--rate s for --duration s, whatever the answers
               (at most --max-in-flight at once); the same figures, and whether the system kept
               the rate.

And in the same run, before the stack starts, the baselines on this machine: a bare Flask POST
under the intake's gunicorn settings (bench/baselines/bare_flask.py, driven by the same
saturation client) and the router bench's no-op consume -> publish -> ack loop on the same
broker (bench/router.py). Prints one JSON object; vhosts and databases are removed at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Note: run as a script, this file's folder comes first on sys.path, where intake.py and
# router.py would hide the intake and router packages. Import the benches as `bench.*` and the
# harness as `tests.stack` from the repository root instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
if str(Path(__file__).resolve().parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import http.client
import json
import math
import os
import resource
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from typing import Any

import pika
from kcc_shared.topology import declare, department_queue, service_queue
from kombu.connection import Connection

from bench.intake import PG_ADMIN, gunicorn, rabbitmq_vhost
from bench.router import baseline_drain, questions
from tests.stack import PROCESSES, SERVICES, Stack, free_port

# The queues whose depth shows which consumer fell behind.
SERVICE_QUEUES = ("router.work", "intake.events", "backoffice.events", "sla-monitor.events")


@dataclass
class Sample:
    """One POST: when it was due, sent and answered (monotonic seconds), and the outcome."""

    due: float
    sent: float
    done: float
    status: int
    request_id: str | None
    retried: bool


class Poster:
    """One keep-alive connection posting questions as an agent of the KCC would."""

    def __init__(self, port: int, token: str, rows: list[dict[str, Any]]) -> None:
        self.port = port
        self.rows = rows
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, n: int, due: float) -> Sample:
        row = self.rows[n % len(self.rows)]
        body = json.dumps(
            {"question": row["question"], "channel": row.get("channel", "phone")}
        ).encode()
        headers = {**self.headers, "Idempotency-Key": str(uuid.uuid4())}
        sent = time.monotonic()
        retried = False
        try:
            status, answer = self._send(body, headers)
        except (OSError, http.client.HTTPException):
            # A closed keep-alive connection: resending with the same Idempotency-Key is
            # exactly the retry the key makes safe (never a second request).
            retried = True
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                status, answer = self._send(body, headers)
            except (OSError, http.client.HTTPException):
                status, answer = 0, b""
        done = time.monotonic()
        request_id = None
        if status == 202:
            request_id = str(json.loads(answer).get("id"))
        return Sample(due, sent, done, status, request_id, retried)

    def _send(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        self.connection.request("POST", "/api/v1/requests", body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


def closed_loop(
    port: int, token: str, rows: list[dict[str, Any]], count: int, connections: int
) -> list[Sample]:
    """`count` POSTs; each connection sends its next one as soon as the last is answered."""
    samples: list[Sample] = []
    lock = threading.Lock()
    counter = iter(range(count))

    def worker() -> None:
        poster = Poster(port, token, rows)
        try:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                sample = poster.post(n, time.monotonic())
                with lock:
                    samples.append(sample)
        finally:
            poster.close()

    run_threads(worker, connections)
    return samples


def open_loop(
    port: int,
    token: str,
    rows: list[dict[str, Any]],
    rate: float,
    duration: float,
    max_in_flight: int,
) -> list[Sample]:
    """POST n is due at start + n/rate whatever the answers; at most `max_in_flight` at once,
    so a system that falls behind shows as POSTs sent late (the lag is measured). The offer
    ends after `duration`: what could not be sent by then is not sent at all (the caller sees
    fewer samples than rate x duration), so a slow system does not stretch the run."""
    count = int(rate * duration)
    samples: list[Sample] = []
    lock = threading.Lock()
    counter = iter(range(count))
    start = time.monotonic() + 0.2
    end = start + duration

    def worker() -> None:
        poster = Poster(port, token, rows)
        try:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None or time.monotonic() > end:
                    return
                due = start + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                sample = poster.post(n, due)
                with lock:
                    samples.append(sample)
        finally:
            poster.close()

    run_threads(worker, max_in_flight)
    return samples


def run_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class Tap:
    """An exclusive queue bound to kcc.events with `request.routed.#`, read with pika in a
    thread: when each request's routed event reached the department queues."""

    def __init__(self, broker_url: str) -> None:
        self.params = pika.URLParameters(broker_url)
        self.arrivals: dict[str, float] = {}
        self.messages = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tap", daemon=True)
        self._thread.start()
        if not self._bound.wait(30) or self._error is not None:
            raise RuntimeError(f"the tap queue could not be bound: {self._error!r}")

    def _run(self) -> None:
        try:
            connection = pika.BlockingConnection(self.params)
            channel = connection.channel()
            # The routers declared the exchange; passive, so a wrong vhost fails here.
            channel.exchange_declare("kcc.events", passive=True)
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue, "kcc.events", routing_key="request.routed.#")
            channel.basic_consume(queue, self._on_message, auto_ack=True)
        except Exception as exc:  # reported to the constructor, which raises it
            self._error = exc
            self._bound.set()
            return
        self._bound.set()
        try:
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.1)
        finally:
            with suppress(Exception):
                connection.close()

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        arrived = time.monotonic()
        request_id = str(json.loads(body)["request_id"])
        with self._lock:
            self.messages += 1
            # A redelivered routed event counts once: the first arrival is the latency.
            self.arrivals.setdefault(request_id, arrived)

    def arrived(self, request_ids: list[str]) -> dict[str, float]:
        with self._lock:
            return {r: self.arrivals[r] for r in request_ids if r in self.arrivals}

    def wait_for(self, request_ids: list[str], timeout: float) -> dict[str, float]:
        """The arrivals of these requests, once all arrived or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.arrived(request_ids)
            if len(seen) == len(request_ids) or time.monotonic() > deadline:
                return seen
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def queue_depths(broker_url: str, departments: list[str]) -> dict[str, int]:
    """Ready messages per service queue, and in all department queues together."""
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        channel = connection.channel()

        def depth(queue: str) -> int:
            return int(channel.queue_declare(queue, passive=True).method.message_count)

        depths = {q: depth(q) for q in SERVICE_QUEUES}
        depths["kcc.dept.*"] = sum(depth(f"kcc.dept.{d}") for d in departments)
        return depths
    finally:
        connection.close()


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) and max, in milliseconds."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return round(ordered[max(0, math.ceil(p * len(ordered)) - 1)] * 1000, 1)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": rank(1.0)}


def statuses(samples: list[Sample]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in samples:
        key = str(s.status) if s.status else "connection_failed"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def post_figures(samples: list[Sample]) -> dict[str, Any]:
    """What the client saw: accepted/s over the whole send window and latency."""
    accepted = [s for s in samples if s.status == 202]
    window = max(s.done for s in samples) - min(s.due for s in samples)
    return {
        "posted": len(samples),
        "accepted": len(accepted),
        "accepted_per_s": round(len(accepted) / window, 1),
        "latency_ms": percentiles([s.done - s.sent for s in accepted]),
        "statuses": statuses(samples),
        "retried_after_closed_connection": sum(s.retried for s in samples),
    }


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU (user + system) used so far by each running process of the stack with everything
    in its process group (gunicorn's workers), by the PostgreSQL backends serving its
    databases, and by this client (load generator and tap)."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = {stack.pid(n): n for n in PROCESSES if stack.running(n)}
    databases = [stack.database_dsn(s).rsplit("/", 1)[1] for s in SERVICES]
    totals = dict.fromkeys([*groups.values(), "postgresql"], 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            # state, ppid, pgrp, ... utime and stime are fields 14 and 15 of the whole line.
            used = (int(fields[11]) + int(fields[12])) / tick
            pgrp = int(fields[2])
            if pgrp in groups:
                totals[groups[pgrp]] += used
            elif any(d in (entry / "cmdline").read_text() for d in databases):
                totals["postgresql"] += used
        except (OSError, IndexError, ValueError):
            continue  # a process that ended while being read
    own = resource.getrusage(resource.RUSAGE_SELF)
    totals["bench client"] = own.ru_utime + own.ru_stime
    return totals


@dataclass
class Counters:
    at: float
    sla_events: float
    routed: float
    cpu: dict[str, float]

    @classmethod
    def read(cls, stack: Stack) -> Counters:
        return cls(
            time.monotonic(),
            stack.metric("sla-monitor", "kcc_sla_events_ingested_total"),
            stack.metric("router", "kcc_requests_routed_total"),
            cpu_seconds(stack),
        )


def pipeline_phase(
    stack: Stack,
    tap: Tap,
    departments: list[str],
    run: Callable[[], list[Sample]],
    drain_timeout: float,
) -> dict[str, Any]:
    """Run one load, wait until every accepted request was routed (or the timeout), and
    measure every stage over the same window."""
    before = Counters.read(stack)
    samples = run()
    accepted = [s for s in samples if s.status == 202 and s.request_id]
    ids = [s.request_id for s in accepted if s.request_id]
    arrivals = tap.wait_for(ids, drain_timeout)
    after = Counters.read(stack)
    stack.assert_alive()
    start = min(s.due for s in samples)
    routed_window = (max(arrivals.values()) - start) if arrivals else 0.0
    sent_at = {s.request_id: s for s in accepted}
    end_to_end = [arrivals[r] - sent_at[r].sent for r in arrivals]
    from_due = [arrivals[r] - sent_at[r].due for r in arrivals]
    seconds = after.at - before.at
    cpu = {k: after.cpu[k] - before.cpu.get(k, 0.0) for k in after.cpu}
    return {
        "intake": post_figures(samples),
        "router": {
            "routed": len(arrivals),
            "routed_per_s": round(len(arrivals) / routed_window, 1) if routed_window else 0.0,
            "routed_by_router_metric": int(after.routed - before.routed),
            "not_routed_within_drain": len(ids) - len(arrivals),
        },
        "end_to_end_ms": percentiles(end_to_end),
        "end_to_end_from_due_ms": percentiles(from_due),
        "sla_monitor": {
            "events_ingested": int(after.sla_events - before.sla_events),
            "events_per_s": round((after.sla_events - before.sla_events) / seconds, 1),
        },
        "queues_after": queue_depths(stack.broker_url, departments),
        # Where the machine's time went: CPU ms per accepted request, and the share of all
        # cores the pipeline and this client used over the phase.
        "cpu_ms_per_request": {
            k: round(v * 1000 / max(1, len(accepted)), 1) for k, v in sorted(cpu.items())
        },
        "cpu_share_of_machine": round(sum(cpu.values()) / (seconds * (os.cpu_count() or 1)), 2),
        "seconds": round(seconds, 1),
        "_samples": samples,
    }


def verdict(
    phase: dict[str, Any], args: argparse.Namespace
) -> tuple[bool, list[str], dict[str, float]]:
    """Whether the system kept the offered rate, where it fell behind, and how late the
    client sent (due -> sent)."""
    samples: list[Sample] = phase["_samples"]
    lag = percentiles([s.sent - s.due for s in samples])
    reasons = []
    if lag["p99"] > 500:
        reasons.append(
            f"the client could not send on time (p99 {lag['p99']} ms late): every "
            "connection was waiting for an answer, so the intake answered slower than offered"
        )
    intake, router = phase["intake"], phase["router"]
    rate, drain_timeout = args.rate, args.drain_timeout
    offered = int(rate * args.duration)
    if intake["posted"] < offered:
        reasons.append(
            f"{offered - intake['posted']} of {offered} POSTs could not be sent within the "
            f"{args.duration:g} s: all {args.max_in_flight} connections were waiting for answers"
        )
    if intake["accepted_per_s"] < 0.95 * rate:
        reasons.append(f"the intake accepted {intake['accepted_per_s']}/s of {rate:g}/s offered")
    if intake["accepted"] < intake["posted"]:
        reasons.append(f"not every POST was accepted: {intake['statuses']}")
    if router["routed_per_s"] < 0.95 * rate:
        reasons.append(f"the router routed {router['routed_per_s']}/s of {rate:g}/s offered")
    if router["not_routed_within_drain"]:
        reasons.append(
            f"{router['not_routed_within_drain']} accepted requests were not routed within "
            f"{drain_timeout:g} s of the last POST"
        )
    return not reasons, reasons, lag


def bare_flask_baseline(
    token: str, rows: list[dict[str, Any]], warmup: int, count: int, connections: int
) -> dict[str, Any]:
    port = free_port()
    with gunicorn("bare_flask:create_app()", {}, port):
        closed_loop(port, token, rows, warmup, connections)
        return post_figures(closed_loop(port, token, rows, count, connections))


def noop_loop_baseline(departments: list[str], rows: list[dict[str, Any]], count: int) -> Any:
    with rabbitmq_vhost() as url:
        with Connection(url) as connection:
            declare(connection, [service_queue("router.work"), *map(department_queue, departments)])
        prefetch = 200  # the router's default (KCC_PREFETCH)
        return baseline_drain(url, departments, rows, count, prefetch)


def router_backlog_phase(
    stack: Stack,
    tap: Tap,
    rows: list[dict[str, Any]],
    count: int,
    connections: int,
    drain_timeout: float,
) -> dict[str, Any]:
    """The router's own pace, comparable to the no-op loop: with the router stopped, `count`
    questions pile up in router.work; then it starts and drains them."""
    stack.stop("router")
    port = int(stack.intake_url.rsplit(":", 1)[1])
    samples = closed_loop(port, stack.agent_token, rows, count, connections)
    ids = [s.request_id for s in samples if s.status == 202 and s.request_id]

    def queued() -> int:
        return queue_depths(stack.broker_url, [])["router.work"]

    deadline = time.monotonic() + drain_timeout
    while queued() < len(ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    backlog = queued()
    stack.start("router")
    stack.wait_ready("router", timeout=120)
    arrivals = sorted(tap.wait_for(ids, drain_timeout).values())
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else 0.0
    return {
        "backlog": backlog,
        "routed": len(arrivals),
        # First to last arrival: the router's start-up is not part of its pace.
        "routed_per_s": round((len(arrivals) - 1) / span, 1) if span else 0.0,
        "not_routed_within_drain": len(ids) - len(arrivals),
    }


def settle(stack: Stack, departments: list[str], timeout: float) -> dict[str, int]:
    """Wait until every queue is empty (or `timeout`), so one phase's backlog does not eat
    the next one's CPU; returns what was left."""
    deadline = time.monotonic() + timeout
    while True:
        depths = queue_depths(stack.broker_url, departments)
        if not any(depths.values()) or time.monotonic() > deadline:
            return depths
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (~2 minutes)")
    parser.add_argument("--requests", type=int, default=1000, help="saturation: POSTs")
    parser.add_argument("--connections", type=int, default=16, help="saturation: connections")
    parser.add_argument("--rate", type=float, default=200.0, help="fixed rate: POSTs per second")
    parser.add_argument("--duration", type=float, default=60.0, help="fixed rate: seconds")
    parser.add_argument("--max-in-flight", type=int, default=64, help="fixed rate: connections")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured POSTs first")
    parser.add_argument("--baseline-messages", type=int, default=5000, help="no-op loop")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=30.0, help="max wait between phases")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.rate, args.duration = 300, 50.0, 10.0
        args.warmup, args.baseline_messages, args.settle = 30, 1000, 10.0
    problems = [
        f"--{name.replace('_', '-')} must be positive"
        for name in ("requests", "connections", "rate", "duration", "max_in_flight")
        if getattr(args, name) <= 0
    ]
    if problems:
        parser.error("; ".join(problems))
    try:
        rows = questions()
    except FileNotFoundError as exc:
        raise SystemExit(f"the dev set of questions is missing: {exc.filename}") from None

    began = time.monotonic()
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="kcc-bench-pipeline-"))
    try:
        result = run(args, rows, tmp)
    except BaseException:
        print(f"the processes' logs are kept in {tmp}", file=sys.stderr)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    result["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    result["total_seconds"] = round(time.monotonic() - began, 1)
    print(json.dumps(result, indent=2))


def run(args: argparse.Namespace, rows: list[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    with ExitStack() as cleanup:
        broker_url = cleanup.enter_context(rabbitmq_vhost())
        # Log at WARNING as bench/intake.py does: the figures are about the work, not log I/O.
        stack = cleanup.enter_context(
            Stack(tmp, broker_url, PG_ADMIN, name="bench", env={"KCC_LOG_LEVEL": "WARNING"})
        )
        departments = list(stack.organisation.departments)
        token = stack.agent_token

        # The baselines first, while none of the stack's processes runs.
        baselines = {
            "bare_flask": bare_flask_baseline(
                token, rows, args.warmup, args.requests, args.connections
            ),
            "noop_loop": noop_loop_baseline(departments, rows, args.baseline_messages),
        }
        stack.start_all(timeout=180)
        port = int(stack.intake_url.rsplit(":", 1)[1])
        tap = Tap(broker_url)
        cleanup.callback(tap.close)

        closed_loop(port, token, rows, args.warmup, args.connections)
        settle(stack, departments, args.settle)
        saturation = pipeline_phase(
            stack,
            tap,
            departments,
            lambda: closed_loop(port, token, rows, args.requests, args.connections),
            args.drain_timeout,
        )
        settle(stack, departments, args.settle)
        router_backlog = router_backlog_phase(
            stack, tap, rows, args.requests, args.connections, args.drain_timeout
        )
        left_before_rate = settle(stack, departments, args.settle)
        fixed = pipeline_phase(
            stack,
            tap,
            departments,
            lambda: open_loop(port, token, rows, args.rate, args.duration, args.max_in_flight),
            args.drain_timeout,
        )
        kept, reasons, lag = verdict(fixed, args)
        stack.assert_alive()

    for phase in (saturation, fixed):
        del phase["_samples"]
    bare = baselines["bare_flask"]["accepted_per_s"]
    noop = baselines["noop_loop"]["msgs_per_s"]
    return {
        "benchmark": "whole pipeline: intake -> router -> department queue, with back office "
        "and SLA monitor consuming, on RabbitMQ and PostgreSQL",
        "settings": {
            k: getattr(args, k)
            for k in ("requests", "connections", "rate", "duration", "max_in_flight", "warmup")
        },
        "baselines": baselines,
        "saturation": {
            **saturation,
            "ratio_intake_to_bare_flask": round(saturation["intake"]["accepted_per_s"] / bare, 3),
        },
        # In the phases above the router only routes what the intake accepts; here it drains a
        # backlog, as the no-op loop does.
        "router_backlog": {
            **router_backlog,
            "ratio_to_noop_loop": round(router_backlog["routed_per_s"] / noop, 3),
        },
        "queues_before_fixed_rate": left_before_rate,
        "fixed_rate": {
            "offered_per_s": args.rate,
            "offered_for_s": args.duration,
            "kept_rate": kept,
            "fell_behind": reasons,
            "send_lag_ms": lag,
            **fixed,
        },
    }


if __name__ == "__main__":
    main()
