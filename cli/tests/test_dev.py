"""`kcc dev` (what `make run` starts): one process in which a question is filed, routed, lands
in the inbox and is timed; it stops cleanly and keeps its data across a restart. It prints login
links that log each demo user in, and with --demo-traffic demo people keep every page busy."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from intake.app import create_app as create_intake
from kcc_cli.demo_questions import SCRIPTS
from kcc_cli.dev import dev
from kcc_shared.config import Config
from prometheus_client.parser import text_string_to_metric_families

KCC = [sys.executable, "-c", "from kcc_cli.main import main; main()"]
LOGIN_LINK = re.compile(r"^\s+\S+\s+(\S+)\s+kcc_\S+\n\s+(http://\S+/dev/login/\S+)$", re.M)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(url, method="POST" if body is not None else "GET")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        request.add_header("Content-Type", "application/json")
        data = json.dumps(body).encode()
    with urllib.request.urlopen(request, data=data, timeout=10) as response:
        text = response.read().decode()
    return json.loads(text) if text.startswith(("{", "[")) else text


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def refused(request: str | urllib.request.Request) -> tuple[int, Any, str]:
    """Status, headers and body of a request that must fail."""
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    with caught.value as error:
        return error.code, error.headers, error.read().decode()


def login_links(data: Path) -> dict[str, str]:
    """The login link `kcc dev` printed (last) for each demo user."""
    return dict(LOGIN_LINK.findall((data / "dev.log").read_text()))


@contextmanager
def running(
    data: Path, port: int, wait_for: Callable[..., None], *options: str
) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCC_")}
    log = data / "dev.log"
    with log.open("a") as output:
        process = subprocess.Popen(
            [*KCC, "dev", "--port", str(port), "--data", str(data), *options],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def up() -> bool:
        try:
            return bool(call(f"http://127.0.0.1:{port}/healthz") == {"status": "ok"})
        except OSError:
            assert process.poll() is None, log.read_text()
            return False

    try:
        wait_for(up, timeout=60)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_dev_files_routes_stops_on_ctrl_c_and_keeps_data(
    tmp_path: Path, wait_for: Callable[..., None]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(tmp_path, port, wait_for) as process:
        tokens = json.loads((tmp_path / "demo-tokens.json").read_text())
        anna = tokens["agent-anna"]
        assert "agent-anna" in call(f"{base}/")  # the start page shows the demo users
        created = call(
            f"{base}/api/v1/requests",
            anna,
            {"question": "Grofvuil afspraak gemaakt maar niet opgehaald, bank staat nog buiten."},
        )

        def routed_to_afval() -> bool:
            metrics = call(f"{base}/metrics")
            return 'kcc_requests_routed_total{department="afval",reason="rule"} 1.0' in metrics

        wait_for(routed_to_afval)

        def in_the_afval_inbox() -> bool:
            inbox = call(f"{base}/backoffice/api/v1/departments/afval/inbox", tokens["staff-femke"])
            return created["id"] in [item["request_id"] for item in inbox["items"]]

        wait_for(in_the_afval_inbox)
        # The agent's own view follows the routing; the SLA monitor has started a clock.
        wait_for(
            lambda: call(f"{base}/api/v1/requests/{created['id']}", anna)["status"] == "routed"
        )
        wait_for(
            lambda: (
                'kcc_requests_open{department="afval",state="waiting"} 1.0'
                in call(f"{base}/sla-monitor/metrics")
            )
        )
        first_link = login_links(tmp_path)["agent-anna"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0

    with running(tmp_path, port, wait_for):
        again = call(f"{base}/api/v1/requests/{created['id']}", anna)
        assert again["id"] == created["id"]
        assert json.loads((tmp_path / "demo-tokens.json").read_text()) == tokens
        # Login links hold only while the process that printed them runs.
        assert login_links(tmp_path)["agent-anna"] != first_link
        assert refused(first_link)[0] == 404


def test_dev_refuses_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KCC_")}
        result = subprocess.run(
            [*KCC, "dev", "--port", str(port), "--data", str(tmp_path)],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def browser() -> urllib.request.OpenerDirector:
    """A client that keeps cookies and follows redirects, as a browser does."""
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )


def test_printed_login_links_log_each_demo_user_in_where_their_role_may_go(
    tmp_path: Path, wait_for: Callable[..., None]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(tmp_path, port, wait_for):
        links = login_links(tmp_path)
        assert set(links) == {
            "agent-anna", "agent-bram", "agent-chris", "staff-eva", "staff-femke", "staff-gijs",
            "ops-dana",
        }  # fmt: skip
        assert len(set(links.values())) == len(links)
        # The start page offers the same links.
        start = call(f"{base}/")
        assert all(link.removeprefix(base) in start for link in links.values())

        anna = browser()
        with anna.open(links["agent-anna"], timeout=10) as landed:
            assert landed.url == f"{base}/balie"
            assert "Ingelogd als agent-anna" in landed.read().decode()
        # An agent's login opens the desk, not the department inbox.
        with anna.open(f"{base}/backoffice/inbox", timeout=10) as elsewhere:
            assert elsewhere.url.startswith(f"{base}/backoffice/login")

        femke = browser()
        with femke.open(links["staff-femke"], timeout=10) as landed:
            assert landed.url == f"{base}/backoffice/inbox"
            assert "Ingelogd als staff-femke" in landed.read().decode()
        with femke.open(links["ops-dana"], timeout=10) as switched:
            assert "Ingelogd als ops-dana" in switched.read().decode()

        # A made-up link logs nobody in and sets no cookie; only GET opens a link.
        status, headers, body = refused(f"{base}/dev/login/{'x' * 32}")
        assert status == 404
        assert "Set-Cookie" not in headers
        assert "Deze inloglink werkt niet" in body
        posted = urllib.request.Request(links["agent-anna"], data=b"", method="POST")
        assert refused(posted)[0] == 405


def test_the_services_themselves_serve_no_login_links(tmp_path: Path) -> None:
    # The same app gunicorn serves in production, with its pages on.
    config = Config(
        database_url=f"sqlite:///{tmp_path / 'intake.db'}",
        broker_url="memory://",
        outbox_relay=False,
        secret_key="a-secret-key-for-this-test-only",
    )
    app = create_intake(config)
    try:
        client = app.test_client()
        assert client.get("/login").status_code == 200  # the pages are there...
        assert client.get("/dev/login/anything").status_code == 404  # ...the shortcut is not
    finally:
        app.extensions["kcc.intake"].store.engine.dispose()


def test_demo_pace_without_demo_traffic_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(dev, ["--data", str(tmp_path), "--demo-pace", "1"], obj=Config())
    assert result.exit_code == 2
    assert "--demo-pace sets the pace of --demo-traffic; add --demo-traffic" in result.output
    assert not (tmp_path / "demo-tokens.json").exists()  # refused before anything started


def test_demo_traffic_keeps_every_side_busy_leaves_anna_alone_and_stops_cleanly(
    tmp_path: Path, wait_for: Callable[..., None]
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running(tmp_path, port, wait_for, "--demo-traffic", "--demo-pace", "0.1") as process:
        tokens = json.loads((tmp_path / "demo-tokens.json").read_text())
        # Anna's question, urgent in a department the bot works: first in line if the bot
        # took anyone's work.
        mine = call(
            f"{base}/api/v1/requests",
            tokens["agent-anna"],
            {
                "question": f"Container {uuid.uuid4().hex[:6]} is niet geleegd, hele straat.",
                "category": "afval",
                "priority": "urgent",
            },
        )
        anna_status = f"{base}/api/v1/requests/{mine['id']}"
        wait_for(lambda: call(anna_status, tokens["agent-anna"])["status"] == "routed")

        def afval_claims() -> float:
            text = call(f"{base}/backoffice/metrics")
            return metric(text, "kcc_backoffice_actions_total", action="claim", department="afval")

        claims_before = afval_claims()

        def every_step_happened() -> bool:
            intake = call(f"{base}/metrics")
            backoffice = call(f"{base}/backoffice/metrics")
            sla = call(f"{base}/sla-monitor/metrics")
            return (
                metric(intake, "kcc_requests_submitted_total") >= 5
                and metric(backoffice, "kcc_backoffice_actions_total", action="claim") >= 3
                and metric(backoffice, "kcc_backoffice_actions_total", action="answer") >= 2
                and metric(
                    backoffice, "kcc_backoffice_actions_total", action="clarification_request"
                ) >= 1
                and metric(intake, "kcc_intake_clarifications_total") >= 1
                and metric(intake, "kcc_intake_ratings_total") >= 2
                and metric(sla, "kcc_request_ratings_total") >= 2
            )  # fmt: skip

        wait_for(every_step_happened, timeout=120, interval=0.5)
        # The bot claimed afval work after Anna's urgent question was waiting there...
        wait_for(lambda: afval_claims() >= claims_before + 1, timeout=120, interval=0.5)
        # ...and left hers for a person.
        assert call(anna_status, tokens["agent-anna"])["status"] == "routed"
        inbox = call(f"{base}/backoffice/api/v1/departments/afval/inbox", tokens["staff-femke"])
        waiting = [i["request_id"] for i in inbox["items"] if i["state"] == "waiting"]
        assert mine["id"] in waiting

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    log = (tmp_path / "dev.log").read_text()
    assert "Demo traffic: every 0.1s" in log
    assert "demo_traffic_stopped" in log
    assert "Traceback" not in log
    assert "demo_traffic_step_failed" not in log
    # The questions and answers are in the stores, never in the log.
    for script in SCRIPTS:
        assert script.question not in log
        assert script.answer not in log
