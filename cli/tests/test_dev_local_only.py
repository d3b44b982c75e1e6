"""`kcc dev` hands every demo token out on its start page, so that page and the login links
answer only for loopback host names (a web page that rebinds its DNS name to 127.0.0.1 gets
403), and its data folder and databases are for their owner only."""

from __future__ import annotations

import http.client
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from kcc_cli.dev import LoginLinks, dev_site, is_loopback_host, private_folder
from werkzeug.test import Client

KCC = [sys.executable, "-c", "from kcc_cli.main import main; main()"]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:8000", "localhost", "LOCALHOST:65535", "[::1]", "[::1]:8000"],
)
def test_loopback_host_names_are_local(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "evil.example",
        "evil.example:8000",
        "127.0.0.1.evil.example",
        "localhost.evil.example:8000",
        "127.0.0.2:8000",
        "0.0.0.0:8000",
        "192.168.1.10:8000",
        "[::ffff:127.0.0.1]:8000",
        "localhost:8000@evil.example",
        "127.0.0.1:8000:80",
        "[::1",
        "localhost.",
    ],
)
def test_every_other_host_name_is_not(host: str | None) -> None:
    assert not is_loopback_host(host)


def _site() -> tuple[Client, LoginLinks]:
    def services(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"a service page"]

    links = LoginLinks(["agent-anna"])
    site = dev_site(services, b"<p>token kcc_secret-demo-token</p>", links, {"agent-anna": "x"})
    return Client(site), links


@pytest.mark.parametrize("host", ["evil.example:8000", "attacker.example"])
def test_the_start_page_and_login_links_refuse_a_rebound_name(host: str) -> None:
    client, links = _site()
    for path in ("/", links.path("agent-anna")):
        response = client.get(path, headers={"Host": host})
        assert response.status_code == 403
        assert b"kcc_" not in response.data
    # The services' own pages are theirs to protect (tokens, sessions): not refused here.
    assert client.get("/balie", headers={"Host": host}).status_code == 200


def test_the_start_page_answers_on_loopback() -> None:
    client, _ = _site()
    response = client.get("/", headers={"Host": "localhost:8000"})
    assert response.status_code == 200
    assert b"kcc_secret-demo-token" in response.data


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_data_folder_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    data.mkdir(mode=0o755)
    (data / "intake.db").write_bytes(b"")
    (data / "intake.db").chmod(0o644)
    (data / "intake.db-wal").write_bytes(b"")
    (data / "intake.db-wal").chmod(0o644)

    private_folder(data)

    assert _mode(data) == 0o700
    for name in ("auth", "intake", "backoffice", "sla-monitor"):
        assert _mode(data / f"{name}.db") == 0o600, name
    assert _mode(data / "intake.db-wal") == 0o600


def test_kcc_dev_itself(tmp_path: Path, wait_for: Callable[..., None]) -> None:
    """A real `kcc dev`: the start page only on loopback; every file it made is private."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    data = tmp_path / "dev"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCC_")}
    old_umask = os.umask(0o022)  # a usual umask: what kcc dev creates would be 0644 by default
    try:
        log = (tmp_path / "dev.log").open("w")
        process = subprocess.Popen(
            [*KCC, "dev", "--port", str(port), "--data", str(data)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    finally:
        os.umask(old_umask)

    def get(path: str, host: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path, headers={"Host": host})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def up() -> bool:
        assert process.poll() is None, (tmp_path / "dev.log").read_text()
        try:
            return get("/healthz", f"127.0.0.1:{port}")[0] == 200
        except OSError:
            return False

    try:
        wait_for(up, timeout=60)
        status, body = get("/", f"rebind.evil.example:{port}")
        assert status == 403
        assert b"kcc_" not in body
        status, body = get("/", f"localhost:{port}")
        assert status == 200
        assert b"kcc_" in body

        assert _mode(data) == 0o700
        databases = sorted(data.glob("*.db*"))
        assert {p.name for p in databases} >= {
            "auth.db", "intake.db", "backoffice.db", "sla-monitor.db"
        }  # fmt: skip
        for path in databases:
            assert _mode(path) == 0o600, path.name
    finally:
        process.terminate()
        process.wait(30)
        log.close()
