"""`kcc dev` (what `make run` starts): one process in which a question is filed, routed, lands
in the inbox and is timed; it stops cleanly and keeps its data across a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

KCC = [sys.executable, "-c", "from kcc_cli.main import main; main()"]


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


@contextmanager
def running(
    data: Path, port: int, wait_for: Callable[..., None]
) -> Iterator[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCC_")}
    log = data / "dev.log"
    with log.open("a") as output:
        process = subprocess.Popen(
            [*KCC, "dev", "--port", str(port), "--data", str(data)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def up() -> bool:
        try:
            return call(f"http://127.0.0.1:{port}/healthz") == {"status": "ok"}
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
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0

    with running(tmp_path, port, wait_for):
        again = call(f"{base}/api/v1/requests/{created['id']}", anna)
        assert again["id"] == created["id"]
        assert json.loads((tmp_path / "demo-tokens.json").read_text()) == tokens


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
