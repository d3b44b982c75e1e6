"""A real Prometheus scrapes the running services: every dashboard query and rule returns data."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest
import yaml
from intake.store import RequestStore
from kcc_shared.db import make_engine
from kcc_shared.events import Actor, new_event

# How long the whole stack may take to become ready on a busy CI machine.
STACK_READY_SECONDS = 120.0

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
RABBITMQ_PROMETHEUS = "127.0.0.1:15692"  # the rabbitmq_prometheus plugin of the shared broker
KCC = [sys.executable, "-c", "from kcc_cli.main import main; main()"]
# Grafana's variables, as the test fills them in: every department, the shortest window.
VARIABLES = {"$__rate_interval": "5m", "$department": ".*", "$window": "1h"}
# Series only the SLA monitor exports (recording rules on them are department(_clock):...).
SLA_SOURCES = (
    "kcc_sla_outcomes_total",
    "kcc_request_first_response_business_seconds",
    "kcc_request_resolution_business_seconds",
    "kcc_requests_open",
    "kcc_request_oldest_open_business_seconds",
    "kcc_request_handoffs_total",
    "kcc_request_handoff_business_seconds",
    "kcc_request_ratings_total",
    "kcc_request_thanks_total",
    "department:kcc_sla",
    "department_clock:kcc_sla",
)
# These need a clock to pass its deadline (hours of business time; a test cannot wait for it):
# they are empty until the first breach, unless the SLA monitor exports the breached series
# at 0 from the start.
NEEDS_A_BREACH = (
    'kcc_sla_outcomes_total{outcome="breached"',
    "department:kcc_sla_breaches:increase1d",
    # A quantile of a rate needs the histogram to move between two scrapes: the one forward
    # below gives a series born at 1, whose rate is 0 and quantile NaN (no data in Grafana).
    "kcc_request_handoff_business_seconds_bucket",
)
QUESTIONS = [
    ("Container is niet geleegd in de Lindelaan.", "phone"),
    ("Mijn paspoort is verlopen, hoe vraag ik een nieuw aan?", "chat"),
    ("Vraag over de WOZ-waarde van mijn woning.", "email"),
    ("Er ligt een losliggende stoeptegel op de stoep.", "counter"),
    ("Ik wil een parkeervergunning voor bezoek.", "phone"),
    ("Ik heb een vraag die nergens bij past.", "chat"),
]


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dashboard = _load(ROOT / "deploy" / "grafana" / "dashboard.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(url, method="POST" if body is not None else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    if data:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, data=data, timeout=10) as response:
        return json.loads(response.read().decode())


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def fill(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def needs_sla_monitor(expr: str) -> bool:
    return any(source in expr for source in SLA_SOURCES)


def recording_rules() -> list[str]:
    names = []
    for path in sorted((ROOT / "deploy/prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names += [r["record"] for r in group["rules"] if "record" in r]
    return sorted(set(names))


def sla_command_exists() -> bool:
    """Whether the `kcc` command has `sla run` (the SLA monitor is being built alongside)."""
    from kcc_cli.main import cli

    group = cli.commands.get("sla")
    return group is not None and "run" in getattr(group, "commands", {})


@dataclass
class Stack:
    """The processes of one test: intake (gunicorn), router, SLA monitor?, and Prometheus."""

    tmp: Path
    env: dict[str, str]
    processes: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)
    intake: str = ""
    prometheus: str = ""
    token: str = ""
    has_sla_monitor: bool = False

    def start(self, name: str, args: list[str], extra_env: dict[str, str]) -> None:
        log = self.tmp / f"{name}.log"
        with log.open("w") as output:
            process = subprocess.Popen(
                args, env={**self.env, **extra_env}, stdout=output, stderr=output
            )
        self.processes.append((name, process, log))

    def assert_alive(self) -> None:
        for name, process, log in self.processes:
            assert process.poll() is None, f"{name} exited:\n{log.read_text()[-3000:]}"

    def stop(self) -> None:
        for _, process, _ in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _, process, _ in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = http_json(url)
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def has_data(self, expr: str) -> bool:
        """At least one series with a number (NaN is what Grafana shows as no data)."""
        for series in self.query(expr):
            value = series["value"][1] if "value" in series else None
            if value is not None and not math.isnan(float(value)):
                return True
        return False


def prometheus_config(stack: Stack, ports: dict[str, int], vhost: str) -> Path:
    """The deploy/ rules at a 1 s evaluation interval, scraping the processes of this test."""
    rules_dir = stack.tmp / "rules"
    rules_dir.mkdir()
    for path in (ROOT / "deploy/prometheus/rules").glob("*.yml"):
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            group["interval"] = "1s"
        (rules_dir / path.name).write_text(yaml.safe_dump(document))
    jobs = [
        {"job_name": f"kcc-{name}", "targets": [f"127.0.0.1:{port}"]}
        for name, port in ports.items()
    ]
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules_dir / "*.yml")],
        "scrape_configs": [
            {"job_name": job["job_name"], "static_configs": [{"targets": job["targets"]}]}
            for job in jobs
        ]
        + [
            {
                "job_name": "rabbitmq-queues",
                "metrics_path": "/metrics/detailed",
                "params": {
                    "family": ["queue_coarse_metrics", "queue_consumer_count"],
                    "vhost": [vhost],
                },
                "static_configs": [{"targets": [RABBITMQ_PROMETHEUS]}],
            }
        ],
    }
    path = stack.tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def stack(
    postgres_url: str, broker_url: str, vhost: str, tmp_path: Path, wait_for: Callable[..., None]
) -> Iterator[Stack]:
    if not Path(PROMETHEUS).exists():
        pytest.fail(f"{PROMETHEUS} is missing: install Debian's prometheus package (.ci/run)")
    if not reachable(f"http://{RABBITMQ_PROMETHEUS}/metrics/detailed?family=queue_coarse_metrics"):
        pytest.fail(
            f"RabbitMQ's prometheus plugin does not answer on {RABBITMQ_PROMETHEUS}: "
            "rabbitmq-plugins enable rabbitmq_prometheus (.ci/run does)"
        )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KCC_", "PROMETHEUS_"))},
        "KCC_DATABASE_URL": postgres_url,
        "KCC_BROKER_URL": broker_url,
        "KCC_OUTBOX_POLL_INTERVAL": "0.2",
    }
    stack = Stack(tmp_path, env)
    stack.token = subprocess.run(
        [*KCC, "token", "create", "--role", "agent", "--user", "agent-anna"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Note: the intake's gunicorn workers each create its tables at start; two at once in a new
    # PostgreSQL database can collide (pg_type unique violation) and kill a worker. Create them
    # once here, as a deployment's migration step would.
    engine = make_engine(postgres_url)
    RequestStore(engine).create_schema()
    engine.dispose()
    ports = {"intake": free_port(), "router": free_port()}
    stack.has_sla_monitor = sla_command_exists()
    if stack.has_sla_monitor:
        ports["sla-monitor"] = free_port()
    prometheus_port = free_port()
    stack.intake = f"http://127.0.0.1:{ports['intake']}"
    stack.prometheus = f"http://127.0.0.1:{prometheus_port}"
    try:
        stack.start(
            "intake",
            [*KCC, "intake", "serve"],
            {
                "KCC_HTTP_BIND": f"127.0.0.1:{ports['intake']}",
                "KCC_HTTP_WORKERS": "2",
                "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "intake-metrics"),
            },
        )
        stack.start("router", [*KCC, "router", "run"], {"KCC_METRICS_PORT": str(ports["router"])})
        if stack.has_sla_monitor:
            stack.start(
                "sla-monitor",
                [*KCC, "sla", "run"],
                {
                    "KCC_METRICS_PORT": str(ports["sla-monitor"]),
                    # Its own store. Note: not the intake's database: two processes creating
                    # their tables in one PostgreSQL database at once can collide (pg_type).
                    "KCC_DATABASE_URL": f"sqlite:///{tmp_path / 'sla.db'}",
                },
            )
        stack.start(
            "prometheus",
            [
                PROMETHEUS,
                f"--config.file={prometheus_config(stack, ports, vhost)}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
                "--log.level=warn",
            ],
            {},
        )

        checks = {
            "intake": f"{stack.intake}/readyz",
            **{n: f"http://127.0.0.1:{p}/readyz" for n, p in ports.items() if n != "intake"},
            "prometheus": f"{stack.prometheus}/-/ready",
        }
        waiting: list[str] = []

        def ready() -> bool:
            stack.assert_alive()
            waiting[:] = [name for name, url in checks.items() if not reachable(url)]
            return not waiting

        # Each process answers its own readiness check; the bound is for a loaded 2-core
        # machine (six processes start at once beside other test files), and an expiry says
        # which of them was not ready.
        try:
            wait_for(ready, timeout=STACK_READY_SECONDS, interval=0.2)
        except pytest.fail.Exception:
            pytest.fail(f"not ready within {STACK_READY_SECONDS}s: {', '.join(waiting)}")
        yield stack
    finally:
        stack.stop()


def submit_questions(stack: Stack) -> list[str]:
    """Every question twice, with a scrape in between.

    Note: a series Prometheus first sees with a count already in it has a rate of 0 (and a
    histogram_quantile of NaN): the second round makes the counters move between scrapes.
    """
    ids: list[str] = []
    for round_ in range(2):
        if round_:
            wait_until_scraped(stack, "sum(kcc_requests_submitted_total)", len(ids))
            wait_until_scraped(stack, "sum(kcc_request_route_seconds_count)", len(ids))
        for question, channel in QUESTIONS:
            body = {"question": question, "channel": channel}
            ids.append(http_json(f"{stack.intake}/api/v1/requests", stack.token, body)["id"])
    return ids


def wait_until_scraped(stack: Stack, expr: str, at_least: float, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = stack.query(expr)
        if result and float(result[0]["value"][1]) >= at_least:
            return
        stack.assert_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"{expr} did not reach {at_least} within {timeout:.0f}s")
        time.sleep(0.2)


def await_queries(stack: Stack, queries: list[str], timeout: float = 30.0) -> None:
    """Poll Prometheus until every query has data; fail listing those that still have none."""
    deadline = time.monotonic() + timeout
    missing = list(queries)
    while missing:
        stack.assert_alive()
        missing = [q for q in missing if not stack.has_data(q)]
        if missing and time.monotonic() > deadline:
            pytest.fail(f"no data after {timeout:.0f}s for:\n  " + "\n  ".join(missing))
        if missing:
            time.sleep(0.5)


def pipeline_queries() -> list[str]:
    return sorted(
        {
            fill(expr)
            for _, expr in dashboard.queries(dashboard.build())
            if not needs_sla_monitor(expr)
        }
    )


# Starting its processes may take minutes on a busy two-core machine (the readiness bounds).
@pytest.mark.timeout(480)
def test_every_pipeline_panel_and_constant_rule_returns_data(stack: Stack) -> None:
    submit_questions(stack)
    constants = [r for r in recording_rules() if not needs_sla_monitor(r)]
    await_queries(stack, pipeline_queries() + constants)
    # The router routed all of them, and Prometheus evaluated the deploy/ rules, alerts included.
    wait_until_scraped(stack, "sum(kcc_requests_routed_total)", 2 * len(QUESTIONS))
    rules = http_json(f"{stack.prometheus}/api/v1/rules")["data"]["groups"]
    assert all(rule["health"] == "ok" for group in rules for rule in group["rules"]), rules


def publish(channel: Any, *events: Any) -> None:
    for event in events:
        channel.basic_publish(
            "kcc.events",
            event.routing_key,
            event.to_json(),
            pika.BasicProperties(
                content_type="application/json", delivery_mode=2, message_id=event.id
            ),
        )


def staff_events(request_id: str, department: str, ids: list[str]) -> list[Any]:
    """Claimed, answered and rated: the score depends on the question, so rounds repeat it."""
    staff, agent = Actor("staff", "staff-1"), Actor("agent", "agent-anna")
    staff_data = {"department": department, "staff_id": "staff-1"}
    score = 4 + ids.index(request_id) % len(QUESTIONS) % 2
    return [
        new_event("request.claimed", request_id=request_id, actor=staff, data=staff_data),
        new_event(
            "request.answered",
            request_id=request_id,
            actor=staff,
            data={**staff_data, "answer": "Dit is het antwoord op uw vraag."},
        ),
        new_event(
            "request.rated",
            request_id=request_id,
            actor=agent,
            data={"score": score, "thanks": True, "department": department},
        ),
    ]


# Starting its processes may take minutes on a busy two-core machine (the readiness bounds).
@pytest.mark.timeout(480)
def test_every_sla_panel_and_recording_rule_returns_data(
    request: pytest.FixtureRequest, vhost: str, wait_for: Callable[..., None]
) -> None:
    if not sla_command_exists():
        pytest.skip(
            "`kcc sla run` does not exist yet: the SLA monitor's panels and the SLA recording "
            "rules cannot be checked against a real scrape"
        )
    stack: Stack = request.getfixturevalue("stack")
    connection = pika.BlockingConnection(
        pika.ConnectionParameters(
            host="127.0.0.1",
            virtual_host=vhost,
            credentials=pika.PlainCredentials("guest", "guest"),
        )
    )
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        routed_queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(routed_queue, "kcc.events", routing_key="request.routed.#")
        ids = submit_questions(stack)
        departments: dict[str, str] = {}
        for method, _, body in channel.consume(routed_queue, inactivity_timeout=20):
            if method is None:
                break
            routed = json.loads(body)
            departments.setdefault(routed["request_id"], routed["data"]["department"])
            if set(departments) >= set(ids):
                break
        channel.cancel()
        assert set(departments) >= set(ids)

        # What the back office and the agents would do: claim and answer, forward one, rate.
        # What the back office and the agents would do: claim, answer and rate, in two rounds
        # over the same departments and scores (round two moves the series Prometheus saw in
        # round one; see submit_questions), then forward the last request.
        answered, forwarded = ids[:-1], ids[-1]
        first_round = answered[: len(QUESTIONS)]
        for request_id in first_round:
            publish(channel, *staff_events(request_id, departments[request_id], ids))
        wait_until_scraped(stack, "sum(kcc_request_ratings_total)", len(first_round))
        wait_until_scraped(stack, "sum(kcc_sla_outcomes_total)", len(first_round))
        for request_id in answered[len(QUESTIONS) :]:
            publish(channel, *staff_events(request_id, departments[request_id], ids))
        staff = Actor("staff", "staff-1")
        source = departments[forwarded]
        target = "belastingen" if source != "belastingen" else "burgerzaken"
        publish(
            channel,
            new_event(
                "request.reroute_requested",
                request_id=forwarded,
                actor=staff,
                data={"from_department": source, "to_department": target, "reason": "hoort daar"},
            ),
        )
    finally:
        connection.close()

    sla_queries = sorted(
        {fill(e) for _, e in dashboard.queries(dashboard.build()) if needs_sla_monitor(e)}
        | {r for r in recording_rules() if needs_sla_monitor(r)}
    )
    await_queries(stack, [q for q in sla_queries if not any(n in q for n in NEEDS_A_BREACH)])
