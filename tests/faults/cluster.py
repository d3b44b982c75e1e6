"""A private three-node RabbitMQ cluster, and second replicas of the pipeline's workers.

The cluster is three nodes of the machine's own rabbitmq-server (tests/faults/servers.py), each
on its own ports with its own data, joined as one cluster with a shared Erlang cookie. Clients
get all three in one KCC_BROKER_URL, separated by ';' (kombu's failover syntax).

A `Replica` is one more process of a stack's worker (router, a consumer, the SLA monitor) on the
same databases and broker, as a second pod of the same Deployment is.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from servers import PrivateRabbitMQ, free_port

# The department whose norms are seconds, on a calendar that never closes: its requests breach
# while the stream and the faults go on, whatever the day and hour the test runs.
FAST_DEPARTMENT = "afval"
FAST_NORM = {"first_response": "15s", "resolution": "30s"}
FAST_NORM_SECONDS = 30


class PrivateRabbitCluster:
    """Three `PrivateRabbitMQ` nodes joined as one cluster."""

    def __init__(self, base: Path, size: int = 3) -> None:
        cookie = secrets.token_hex(20)
        self.base = base
        self.nodes = [
            PrivateRabbitMQ(base / f"node{n}", name=f"kcccluster{n}", cookie=cookie)
            for n in range(1, size + 1)
        ]

    def start(self, timeout: float = 120) -> None:
        """Boot every node side by side, then join the others to the first."""
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_started(timeout)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
        running = self.running_nodes()
        if sorted(running) != sorted(n.node for n in self.nodes):
            raise RuntimeError(f"cluster did not form: running nodes {running}")

    def running_nodes(self, via: PrivateRabbitMQ | None = None) -> list[str]:
        node = via or self.alive()[0]
        listed = node.ctl("eval", "rabbit_nodes:all_running().").strip()
        return [name.strip(" '[]\n") for name in listed.split(",") if name.strip(" '[]\n")]

    def alive(self) -> list[PrivateRabbitMQ]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def url(self, vhost: str) -> str:
        """KCC_BROKER_URL for every node of the cluster, in node order (kombu failover)."""
        return ";".join(node.vhost_url(vhost) for node in self.nodes)

    def add_vhost(self, vhost: str) -> str:
        self.nodes[0].add_vhost(vhost)
        return self.url(vhost)

    def queues(self, vhost: str) -> dict[str, dict[str, Any]]:
        """Per queue: its type, leader node, member nodes and message count, as a live node
        sees them now."""
        node = self.alive()[0]
        listing = node.ctl(
            "list_queues",
            "-p",
            vhost,
            "name",
            "type",
            "leader",
            "members",
            "messages",
            "--formatter",
            "json",
        )
        return {row["name"]: row for row in json.loads(listing)}

    def leader(self, vhost: str) -> PrivateRabbitMQ:
        """The node that leads most of the vhost's quorum queues."""
        leaders = Counter(
            row["leader"] for row in self.queues(vhost).values() if row["type"] == "quorum"
        )
        if not leaders:
            raise RuntimeError(f"no quorum queue in vhost {vhost}")
        name = leaders.most_common(1)[0][0]
        return next(n for n in self.nodes if n.node == name)

    def close(self) -> None:
        for node in self.nodes:
            node.close()


# The workers that run as several replicas, and the `kcc` command of each (tests/stack.py's).
REPLICATED: Final[Mapping[str, tuple[tuple[str, ...], str | None]]] = {
    "router": (("router", "run"), None),
    "intake-consumer": (("intake", "consume"), "intake"),
    "backoffice-consumer": (("backoffice", "consume"), "backoffice"),
    "sla-monitor": (("sla", "run"), "sla-monitor"),
}


class Replica:
    """One more process of a stack's worker, on the stack's databases and broker.

    Started with the settings a stack's own process gets (its database, the auth database,
    a metrics port of its own) plus `env`, in its own process group, its output in `log`."""

    def __init__(self, stack: Any, name: str, env: Mapping[str, str], log: Path) -> None:
        command, database = REPLICATED[name]
        self.name = f"{name} (2)"
        self.port = free_port()
        self.log = log
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KCC_")},
            **env,
            "KCC_BROKER_URL": stack.broker_url,
            "KCC_AUTH_DATABASE_URL": stack.database_url("auth"),
            "KCC_METRICS_PORT": str(self.port),
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if database is not None:
            self.env["KCC_DATABASE_URL"] = stack.database_url(database)
        self.command = [*_kcc_command(stack), *command]
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("a") as output:
            self.popen = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.log.parent,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def ready(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}/readyz", timeout=2
            ) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.popen is None or self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited before it was ready:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready within {timeout} s:\n{self.tail()}")
            time.sleep(0.1)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


def _kcc_command(stack: Any) -> list[str]:
    # The harness module knows where this environment's `kcc` is.
    import sys

    return list(sys.modules[type(stack).__module__].kcc_command())


class Replicated:
    """A stack on the cluster, and a second replica of each worker (`REPLICATED`)."""

    def __init__(self, stack: Any, replicas: dict[str, Replica], vhost: str) -> None:
        self.stack = stack
        self.replicas = replicas
        self.vhost = vhost

    def database_dsn(self, service: str) -> str:
        return str(self.stack.database_dsn(service))

    def assert_alive(self) -> None:
        self.stack.assert_alive()
        dead = [r for r in self.replicas.values() if not r.running()]
        assert not dead, "\n".join(f"{r.name} exited:\n{r.tail()}" for r in dead)


def organisation_with_a_fast_department(folder: Path) -> Path:
    """The shipped organisation file, except that one department's clocks run day and night
    with norms of seconds. Same departments and rules, so the router decides as it ships."""
    shipped = Path(str(__import__("kcc_shared").__file__)).parent / "organisation.yaml"
    data = yaml.safe_load(shipped.read_text())
    data["calendars"]["altijd"] = {
        "timezone": "Europe/Amsterdam",
        "opening_hours": {
            day: ["00:00-24:00"]
            for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
        }
        | {"sunday": ["00:00-24:00"]},
    }
    for department in data["departments"]:
        if department["id"] == FAST_DEPARTMENT:
            department["calendar"] = "altijd"
            department["sla"] = {p: dict(FAST_NORM) for p in department["sla"]}
    path = folder / "organisation.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path
