"""A rolling upgrade from release 32120a3, on the real RabbitMQ and PostgreSQL.

The databases are the ones release 32120a3 left behind (tests/fixtures/release-32120a3: its
dumps, plus three more questions its intake had filed), the queues hold what its processes
had published and not yet consumed, and an intake replica of the old release goes on filing
questions while `kcc migrate` runs and the new processes start (tests/stack.py). Every
question, old or new, must reach its department's inbox and the SLA monitor, be answered
through the new back office API and reach the agent who asked: none lost, none parked in
kcc.dead, none twice. How the recordings were made: tests/fixtures/release-32120a3/README.md.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pika
import psycopg
import pytest
import requests
from kcc_shared.db import make_engine
from kcc_shared.events import derived_event_id
from router.dispatch import ROUTED_PURPOSE
from sqlalchemy import DateTime, MetaData, Table, insert

from conftest import (
    POSTGRES_ADMIN_DSN,
    RABBITMQ_HOST,
    RABBITMQ_PORT,
    REPO_ROOT,
    _unavailable,
    harness,
    wait_for,
)

if TYPE_CHECKING:
    from tests.stack import PROCESSES, Stack, kcc_command
else:
    Stack, PROCESSES, kcc_command = harness().Stack, harness().PROCESSES, harness().kcc_command

pytestmark = pytest.mark.integration

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "release-32120a3"
RECORDED: Mapping[str, Any] = json.loads((FIXTURES / "messages.json").read_text())
# The dumps' database of each service, by the stack's name for it.
DUMPS = {"intake": "intake", "backoffice": "backoffice", "sla-monitor": "sla"}
# The old intake's tables in the order its rows refer to each other.
INTAKE_TABLES = ("requests", "timeline", "agent_updates", "outbox")


@pytest.fixture
def stack(tmp_path: Path, broker_url: str) -> Iterator[Stack]:
    try:
        s = Stack(
            tmp_path,
            broker_url,
            POSTGRES_ADMIN_DSN,
            name="upgrade",
            env={"KCC_OUTBOX_POLL_INTERVAL": "0.2", "KCC_AUTH_CACHE_SECONDS": "0"},
        )
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    with s:
        yield s


def amqp_parameters(vhost: str) -> pika.ConnectionParameters:
    return pika.ConnectionParameters(
        host=RABBITMQ_HOST,
        port=RABBITMQ_PORT,
        virtual_host=vhost,
        credentials=pika.PlainCredentials("guest", "guest"),
    )


def load_dump(dsn: str, service: str) -> None:
    """A database as release 32120a3 left it (pg_dump of make.py)."""
    script = (FIXTURES / f"{service}.postgresql.sql").read_text()
    # psql's own commands (\restrict) are not SQL.
    sql = "\n".join(line for line in script.splitlines() if not line.startswith("\\"))
    with psycopg.connect(dsn) as connection:
        connection.execute(sql)


def write_old_rows(url: str, rows: Mapping[str, list[dict[str, Any]]]) -> None:
    """The rows release 32120a3's intake wrote for one filing, in one transaction, naming only
    the columns that release knew (whatever schema the database has now)."""
    engine = make_engine(url)
    try:
        metadata = MetaData()
        tables = {n: Table(n, metadata, autoload_with=engine) for n in INTAKE_TABLES}
        with engine.begin() as connection:
            for name in INTAKE_TABLES:
                table = tables[name]
                for row in rows.get(name, []):
                    values = {
                        k: datetime.fromisoformat(v)
                        if isinstance(v, str) and isinstance(table.c[k].type, DateTime)
                        else v
                        for k, v in row.items()
                    }
                    connection.execute(insert(table).values(values))
    finally:
        engine.dispose()


def properties(recorded: Mapping[str, Any]) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type=recorded.get("content_type"),
        content_encoding=recorded.get("content_encoding"),
        delivery_mode=recorded.get("delivery_mode"),
        message_id=recorded.get("message_id"),
        headers=recorded.get("headers") or None,
    )


def leave_old_broker(channel: Any) -> None:
    """Exchanges and queues as release 32120a3 declared them, holding what its processes had
    published and not yet consumed, each message in its queue with its own routing key."""
    for exchange in RECORDED["exchanges"]:
        channel.exchange_declare(exchange["name"], exchange["type"], durable=True)
    for q in RECORDED["topology"]:
        channel.queue_declare(q["queue"], durable=True, arguments=q["arguments"])
        for key in q["bindings"]:
            channel.queue_bind(q["queue"], q["exchange"], key)
    # Through a private exchange bound to one queue at a time: the events exchange would
    # also copy each message into queues whose consumer had already taken it.
    loader = "kcc.fixture-load"
    channel.exchange_declare(loader, "topic")
    for name, messages in RECORDED["queues"].items():
        channel.queue_bind(name, loader, "#")
        for message in messages:
            channel.basic_publish(
                loader,
                message["routing_key"],
                message["body"].encode(),
                properties(message["properties"]),
                mandatory=True,
            )
        channel.queue_unbind(name, loader, "#")
    channel.exchange_delete(loader)


class OldIntake(threading.Thread):
    """An intake replica of release 32120a3 that is not replaced yet: per filing, the rows that
    release's store wrote, then the submitted event as its outbox relay published it (pika,
    publisher confirms), recorded from that release's own code."""

    def __init__(self, vhost: str, database_url: str) -> None:
        super().__init__(daemon=True)
        self._vhost = vhost
        self._database_url = database_url
        self._todo: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
        self.filed: list[str] = []
        self.error: BaseException | None = None
        self._done = threading.Condition()

    def file(self, filings: list[Mapping[str, Any]]) -> None:
        for filing in filings:
            self._todo.put(filing)

    def wait_filed(self, count: int) -> None:
        with self._done:
            self._done.wait_for(lambda: len(self.filed) >= count or self.error is not None, 30)
        self.check()

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError(f"the old intake failed: {self.error!r}") from self.error

    def finish(self) -> None:
        self._todo.put(None)
        self.join(30)
        self.check()

    def run(self) -> None:
        try:
            connection = pika.BlockingConnection(amqp_parameters(self._vhost))
            channel = connection.channel()
            channel.confirm_delivery()
            while (filing := self._todo.get()) is not None:
                write_old_rows(self._database_url, filing["rows"])
                message = filing["message"]
                channel.basic_publish(
                    RECORDED["exchange"],
                    message["routing_key"],
                    message["body"].encode(),
                    properties(message["properties"]),
                    mandatory=True,
                )
                with self._done:
                    self.filed.append(filing["request_id"])
                    self._done.notify_all()
            connection.close()
        except BaseException as exc:  # reported to the test by check()
            with self._done:
                self.error = exc
                self._done.notify_all()


def migrate_command(stack: Stack) -> list[str]:
    return [
        *kcc_command(),
        "migrate",
        "--intake-url",
        stack.database_url("intake"),
        "--backoffice-url",
        stack.database_url("backoffice"),
        "--sla-url",
        stack.database_url("sla-monitor"),
    ]


def count(stack: Stack, service: str, sql: str) -> int:
    with psycopg.connect(stack.database_dsn(service)) as connection:
        row = connection.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


# 2 minutes here (2 cores shared with other test runs; six processes start cold, the
# migration and the consumers wait for CPU): the margin is for a busier machine.
@pytest.mark.timeout(360)
def test_release_32120a3_upgrades_while_its_intake_keeps_filing(stack: Stack, vhost: str) -> None:
    # (a) What release 32120a3 left behind: its databases and its queues.
    for service, dump in DUMPS.items():
        load_dump(stack.database_dsn(service), dump)
    with psycopg.connect(stack.database_dsn("intake")) as connection:
        in_database = [r[0] for r in connection.execute("SELECT id FROM requests ORDER BY id")]
    for rows in RECORDED["queued_requests"].values():
        write_old_rows(stack.database_url("intake"), rows)
    # A connection of its own for each use: an idle pika connection misses its heartbeats.
    with closing(pika.BlockingConnection(amqp_parameters(vhost))) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        leave_old_broker(channel)

    # (b) The rollout: migrate, start the new processes; the old intake files all along.
    old = OldIntake(vhost, stack.database_url("intake"))
    old.start()
    filings = list(RECORDED["rollout"])
    old.file(filings[0:2])
    old.wait_filed(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCC_")}
    migrating = subprocess.Popen(
        migrate_command(stack), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    old.file(filings[2:4])
    output, _ = migrating.communicate(timeout=60)
    assert migrating.returncode == 0, output.decode()
    assert output.decode().count("recognised tables without a version as revision 0001") == 3
    for name in PROCESSES:
        stack.start(name)
    old.file(filings[4:5])
    for name in PROCESSES:
        stack.wait_ready(name, timeout=120)
    old.file(filings[5:])
    old.finish()
    assert old.filed == [f["request_id"] for f in filings]

    # (c) Every question followed to the end.
    questions = [*in_database, *RECORDED["queued_requests"], *old.filed]
    assert len(set(questions)) == 12
    agent = {"Authorization": f"Bearer {stack.agent_token}"}
    staff = {"Authorization": f"Bearer {stack.staff_token}"}

    def detail(rid: str) -> dict[str, Any]:
        stack.assert_alive()
        response = requests.get(
            f"{stack.intake_url}/api/v1/requests/{rid}", headers=agent, timeout=5
        )
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def routed_by_router(rid: str) -> bool:
        # The router's routed event for the question's submission, old or new router's (the
        # id is derived the same way in both), has reached the agent's view.
        timeline = detail(rid)["timeline"]
        submitted = next(e["event_id"] for e in timeline if e["type"] == "request.submitted")
        expected = derived_event_id(submitted, ROUTED_PURPOSE)
        return any(e["event_id"] == expected for e in timeline)

    def item(rid: str) -> dict[str, Any]:
        response = requests.get(
            f"{stack.backoffice_url}/api/v1/items/{rid}", headers=staff, timeout=5
        )
        return response.json() if response.status_code == 200 else {}

    def clocks(rid: str) -> set[tuple[str, str, str]]:
        # The SLA monitor's API shows figures per department; its clocks per question are
        # in its store (kind, department and status: running, paused or closed).
        with psycopg.connect(stack.database_dsn("sla-monitor")) as connection:
            rows = connection.execute(
                "SELECT kind, department, status FROM sla_clocks WHERE request_id = %s", (rid,)
            ).fetchall()
        return {(kind, department, status) for kind, department, status in rows}

    answers = {}
    for rid in questions:
        wait_for(lambda rid=rid: routed_by_router(rid), timeout=60, interval=0.2)
        department = detail(rid)["department"]
        question = detail(rid)["question"]
        wait_for(
            lambda rid=rid, d=department, q=question: (
                item(rid).get("department") == d and item(rid).get("question") == q
            ),
            timeout=60,
            interval=0.2,
        )
        inbox = requests.get(
            f"{stack.backoffice_url}/api/v1/departments/{department}/inbox",
            headers=staff,
            timeout=5,
        ).json()["items"]
        assert [i["request_id"] for i in inbox].count(rid) == 1
        wait_for(
            lambda rid=rid, d=department: any(
                (k, dept) == ("first_response", d) for k, dept, _ in clocks(rid)
            ),
            timeout=60,
            interval=0.2,
        )
        claimed = requests.post(
            f"{stack.backoffice_url}/api/v1/items/{rid}/claim", headers=staff, timeout=10
        )
        assert claimed.status_code == 200, claimed.text
        answers[rid] = f"Antwoord van de afdeling {department} op vraag {rid[:8]}."
        answered = requests.post(
            f"{stack.backoffice_url}/api/v1/items/{rid}/answer",
            headers=staff,
            json={"text": answers[rid]},
            timeout=10,
        )
        assert answered.status_code == 200, answered.text

    for rid, answer in answers.items():
        wait_for(
            lambda rid=rid, a=answer: (
                detail(rid)["status"] == "answered" and detail(rid)["answer"] == a
            ),
            timeout=60,
            interval=0.2,
        )
        # Answered: the first-response clock stopped.
        wait_for(
            lambda rid=rid: all(
                status == "closed" for k, _, status in clocks(rid) if k == "first_response"
            ),
            timeout=60,
            interval=0.2,
        )
    wait_for(
        lambda: (
            stack.metric("sla-monitor", "kcc_sla_events_ingested_total", type="request.answered")
            == len(questions)
        ),
        timeout=60,
        interval=0.2,
    )

    # None lost, none parked, none twice.
    with closing(pika.BlockingConnection(amqp_parameters(vhost))) as connection:
        dead = connection.channel().queue_declare("kcc.dead", passive=True)
        parked = dead.method.message_count
    assert parked == 0, stack.logs(tail=3000)
    assert count(stack, "intake", "SELECT count(*) FROM requests") == len(questions)
    assert count(stack, "backoffice", "SELECT count(*) FROM items") == len(questions)
    assert count(stack, "sla-monitor", "SELECT count(DISTINCT request_id) FROM sla_clocks") == len(
        questions
    )
    for rid in questions:
        timeline = [e["type"] for e in detail(rid)["timeline"]]
        assert (timeline.count("request.submitted"), timeline.count("request.answered")) == (1, 1)
        staff_view = [e["type"] for e in item(rid)["timeline"]]
        assert staff_view.count("request.answered") == 1
    stack.assert_alive()
