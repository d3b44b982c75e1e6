"""The feedback loop end to end: intake, router and back office as real processes on the real
RabbitMQ (a fresh vhost) and PostgreSQL. An agent files a question, staff of the right
department claim it, ask for clarification, the agent answers, staff answer, the agent sees
the answer on the live stream and rates it, and both timelines show every step in order."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from kcc_shared.auth import TokenStore, tokens_table
from kcc_shared.db import make_engine
from sqlalchemy import MetaData

from conftest import POSTGRES_ADMIN_DSN, wait_for

PYTHON = sys.executable
KCC = [str(Path(sys.executable).parent / "kcc")]
QUESTION = "Paspoort verlopen en de burger vertrekt over tien dagen naar Spanje. Kan dat nog?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    processes: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, name: str, args: list[str], **extra_env: str) -> None:
        log = self.tmp / f"{name}.log"
        metrics_dir = self.tmp / f"metrics-{name}"
        metrics_dir.mkdir()
        with log.open("w") as output:
            process = subprocess.Popen(
                args,
                env={**self.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), **extra_env},
                stdout=output,
                stderr=output,
            )
        self.processes.append((name, process, log))

    def assert_alive(self) -> None:
        for name, process, log in self.processes:
            assert process.poll() is None, f"{name} exited:\n{log.read_text()[-3000:]}"

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{log.read_text()[-2000:]}" for n, _, log in self.processes)

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


def ready(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def backoffice_db(postgres_url: str) -> Iterator[str]:
    """A database of its own for the back office (the intake has postgres_url)."""
    name = f"kcc_test_bo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def stack(
    tmp_path: Path, broker_url: str, postgres_url: str, backoffice_db: str
) -> Iterator[dict[str, Any]]:
    env = {
        **os.environ,
        "KCC_BROKER_URL": broker_url,
        "KCC_AUTH_DATABASE_URL": postgres_url,
        "KCC_SECRET_KEY": "e2e-secret-key-0123456789abcdef",
        "KCC_LOG_FORMAT": "text",
        "KCC_OUTBOX_POLL_INTERVAL": "0.2",
        "KCC_AUTH_CACHE_SECONDS": "0",
        "KCC_HTTP_WORKERS": "2",
    }
    # Tokens live in one store every service reads (KCC_AUTH_DATABASE_URL).
    engine = make_engine(postgres_url)
    metadata = MetaData()
    tokens = TokenStore(engine, tokens_table(metadata))
    metadata.create_all(engine)
    agent, _ = tokens.create(role="agent", user_id="agent-anna", team="kcc-noord")
    staff, _ = tokens.create(role="staff", user_id="staff-eva", departments=["burgerzaken"])
    engine.dispose()

    s = Stack(tmp_path, env)
    ports = {name: free_port() for name in ("intake", "backoffice", "bo_metrics", "in_metrics")}
    ports["router_metrics"] = free_port()
    try:
        # The back-office consumer first: it declares backoffice.events, which must exist
        # before the intake publishes the first request.submitted.
        s.start(
            "backoffice-consume",
            [PYTHON, "-m", "backoffice", "consume"],
            KCC_DATABASE_URL=backoffice_db,
            KCC_METRICS_PORT=str(ports["bo_metrics"]),
        )
        s.start(
            "backoffice-api",
            [PYTHON, "-m", "backoffice", "serve", "--bind", f"127.0.0.1:{ports['backoffice']}"],
            KCC_DATABASE_URL=backoffice_db,
        )
        s.start("router", [*KCC, "router", "run"], KCC_METRICS_PORT=str(ports["router_metrics"]))
        s.start(
            "intake-consume",
            [*KCC, "intake", "consume"],
            KCC_DATABASE_URL=postgres_url,
            KCC_METRICS_PORT=str(ports["in_metrics"]),
        )
        s.start(
            "intake-api",
            [*KCC, "intake", "serve", "--bind", f"127.0.0.1:{ports['intake']}"],
            KCC_DATABASE_URL=postgres_url,
        )
        for _name, url in (
            ("backoffice-consume", f"http://127.0.0.1:{ports['bo_metrics']}/readyz"),
            ("router", f"http://127.0.0.1:{ports['router_metrics']}/readyz"),
            ("intake-consume", f"http://127.0.0.1:{ports['in_metrics']}/readyz"),
            ("backoffice-api", f"http://127.0.0.1:{ports['backoffice']}/readyz"),
            ("intake-api", f"http://127.0.0.1:{ports['intake']}/readyz"),
        ):

            def up(url: str = url) -> bool:
                s.assert_alive()
                return ready(url)

            wait_for(up, timeout=60, interval=0.2)
        yield {
            "intake": f"http://127.0.0.1:{ports['intake']}",
            "backoffice": f"http://127.0.0.1:{ports['backoffice']}",
            "agent": {"Authorization": f"Bearer {agent}"},
            "staff": {"Authorization": f"Bearer {staff}"},
            "stack": s,
        }
    finally:
        s.stop()


class StreamReader:
    """Reads the agent's Server-Sent Events in a thread and keeps every `data` object."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.updates: list[dict[str, Any]] = []
        self._response = requests.get(url, headers=headers, stream=True, timeout=(5, 120))
        assert self._response.status_code == 200, self._response.text
        assert self._response.headers["Content-Type"].startswith("text/event-stream")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    self.updates.append(json.loads(line[5:].strip()))
        except (requests.RequestException, AttributeError, ValueError):
            return

    def close(self) -> None:
        self._response.close()


def test_question_to_answer_to_rating(stack: dict[str, Any]) -> None:
    intake, backoffice = stack["intake"], stack["backoffice"]
    agent, staff = stack["agent"], stack["staff"]
    s: Stack = stack["stack"]

    # The agent opens the live stream first, then files the question.
    stream = StreamReader(f"{intake}/api/v1/stream", agent)
    try:
        filed = requests.post(
            f"{intake}/api/v1/requests",
            headers={**agent, "Idempotency-Key": str(uuid.uuid4())},
            json={"question": QUESTION, "category": "documenten", "priority": "normal"},
            timeout=10,
        )
        assert filed.status_code == 202, filed.text
        rid = filed.json()["id"]

        # It lands in the right inbox, with the question text.
        inbox_url = f"{backoffice}/api/v1/departments/burgerzaken/inbox"

        def in_inbox() -> bool:
            s.assert_alive()
            items = requests.get(inbox_url, headers=staff, timeout=5).json()["items"]
            return any(i["request_id"] == rid and i["question"] == QUESTION for i in items)

        wait_for(in_inbox, timeout=30, interval=0.2)

        def staff_post(action: str, body: Any = None) -> dict[str, Any]:
            response = requests.post(
                f"{backoffice}/api/v1/items/{rid}/{action}", headers=staff, json=body, timeout=10
            )
            assert response.status_code == 200, response.text
            result: dict[str, Any] = response.json()
            return result

        staff_post("claim")
        asked = staff_post("clarification-request", {"text": "Heeft de burger een afspraak?"})
        assert asked["state"] == "awaiting_clarification"

        def agent_status() -> str:
            detail = requests.get(f"{intake}/api/v1/requests/{rid}", headers=agent, timeout=5)
            return str(detail.json()["status"])

        wait_for(lambda: agent_status() == "awaiting_clarification", timeout=30, interval=0.2)
        clarified = requests.post(
            f"{intake}/api/v1/requests/{rid}/clarification",
            headers=agent,
            json={"text": "Ja, morgen om 9 uur aan de balie."},
            timeout=10,
        )
        assert clarified.status_code == 200, clarified.text

        def item_state() -> str:
            item = requests.get(f"{backoffice}/api/v1/items/{rid}", headers=staff, timeout=5)
            return str(item.json()["state"])

        wait_for(lambda: item_state() == "claimed", timeout=30, interval=0.2)
        answer = "Ja: vraag met de afspraak een spoedpaspoort aan; het is binnen 2 dagen klaar."
        staff_post("answer", {"text": answer})

        # The agent sees the answer arrive on the stream.
        def answered_on_stream() -> bool:
            return any(
                u.get("request_id") == rid and u.get("status") == "answered" for u in stream.updates
            )

        wait_for(answered_on_stream, timeout=30, interval=0.2)
    finally:
        stream.close()
    detail = requests.get(f"{intake}/api/v1/requests/{rid}", headers=agent, timeout=5).json()
    assert detail["answer"] == answer
    assert detail["department"] == "burgerzaken"

    rated = requests.post(
        f"{intake}/api/v1/requests/{rid}/rating",
        headers=agent,
        json={"score": 5, "thanks": True},
        timeout=10,
    )
    assert rated.status_code == 200, rated.text
    wait_for(lambda: item_state() == "closed", timeout=30, interval=0.2)

    steps = [
        "request.submitted",
        "request.routed",
        "request.claimed",
        "request.clarification_requested",
        "request.clarified",
        "request.answered",
        "request.rated",
    ]

    def agent_timeline() -> list[str]:
        detail = requests.get(f"{intake}/api/v1/requests/{rid}", headers=agent, timeout=5)
        return [e["type"] for e in detail.json()["timeline"]]

    wait_for(lambda: agent_timeline() == steps, timeout=30, interval=0.2)
    staff_view = requests.get(f"{backoffice}/api/v1/items/{rid}", headers=staff, timeout=5)
    assert [e["type"] for e in staff_view.json()["timeline"]] == steps
    assert staff_view.json()["rating"] == 5
    s.assert_alive()
