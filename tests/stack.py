"""The whole pipeline as real processes on the real RabbitMQ and PostgreSQL: a harness.

Used by the end-to-end test (tests/e2e), the fault-injection suite (tests/faults) and the
pipeline benchmark (bench/pipeline.py). It has no pytest dependency, so a benchmark can use it.

    with Stack(tmp, broker_url, POSTGRES_ADMIN_DSN, name="e2e") as stack:
        stack.start_all()                     # every process, each waited for on /readyz
        requests.post(f"{stack.intake_url}/api/v1/requests",
                      headers={"Authorization": f"Bearer {stack.agent_token}"}, json=...)
        stack.kill("router")                  # SIGKILL of its process group
        stack.start("router"); stack.wait_ready("router")

The API, kept stable for those three users:

- `Stack(tmp, broker_url, postgres_admin_dsn, *, name, env=None)` creates one PostgreSQL
  database per service (`SERVICES`: intake, backoffice, sla-monitor, auth) and three tokens
  through the real token store; `close()` (or leaving the `with`) stops every process and drops
  the databases. Every file it writes (logs, metric samples, the processes' working folder)
  is under `tmp`. `env` is added to every process's environment (e.g. `KCC_BROKER_URL` of a
  proxy, `KCC_OUTBOX_POLL_INTERVAL`); the caller's own `KCC_*` variables are not inherited.
- Processes (`PROCESSES`, in start order): backoffice-consumer, intake-consumer, sla-monitor,
  router, sla-web, backoffice-api, intake-api. The three web sides run under gunicorn
  (`kcc ... serve`, the services' own gunicorn settings, each with its own
  `PROMETHEUS_MULTIPROC_DIR`); the others serve /metrics, /healthz and /readyz on a metrics
  port of their own (the SLA figures: sla-monitor's). Ports are chosen once,
  so a restarted process comes back on the same address.
- `start(name, **env)` (env: extra variables for this process, kept for `restart`),
  `start_all()`, `stop(name)` (SIGTERM, wait; returns the exit status), `kill(name)` (SIGKILL
  to the process group: gunicorn's workers die with their master), `restart(name, **env)`,
  `wait_ready(name)` / `ready(name)` (GET /readyz), `alive()` / `dead()` / `assert_alive()`
  (processes that exited without being stopped or killed here), `running(name)`, `pid(name)`,
  `logs(name=None, tail=None)`, `close()`. `live_members(pgid)`: what of a process group
  still runs.
- Importing it from a test: in a full run pytest has already imported
  services/sla-monitor/tests as the package `tests`, so `from tests.stack import Stack` fails
  there; tests/e2e/test_feedback_loop.py shows how to load this file by path instead (under
  the shared module name `kcc_test_stack`). Benchmarks import `tests.stack` normally.
- Tokens: `agent_token` (agent-anna of team kcc-noord), `staff_token` (staff-eva, every
  department of the organisation), `ops_token`; `create_token(...)` for more. `organisation`
  is the organisation file the processes load.
- Addresses: `intake_url`, `backoffice_url`, `sla_url`, `url(name)`, `metrics_url(name)`,
  and `metric(name, metric, **labels)` for the sum of a metric's samples.
- `database_url(service)` (SQLAlchemy) and `database_dsn(service)` (psycopg) for direct
  accounting queries.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

import psycopg
from kcc_shared.auth import open_token_store
from kcc_shared.db import make_engine
from kcc_shared.organisation import load_organisation
from prometheus_client.parser import text_string_to_metric_families

SERVICES: Final = ("intake", "backoffice", "sla-monitor", "auth")

# Consumers first: each declares its queue, so nothing published early can miss it (the
# publishers declare every service queue as well; this order just does not rely on that).
PROCESSES: Final = (
    "backoffice-consumer",
    "intake-consumer",
    "sla-monitor",
    "router",
    "sla-web",
    "backoffice-api",
    "intake-api",
)


class StackError(RuntimeError):
    """A process of the stack did not start, become ready or stop as it should."""


@dataclass(frozen=True)
class _Spec:
    command: tuple[str, ...]
    database: str | None
    # gunicorn: HTTP on its own port, metric samples of several workers in a folder.
    gunicorn: bool = False


_SPECS: Final[Mapping[str, _Spec]] = {
    "intake-api": _Spec(("intake", "serve"), "intake", gunicorn=True),
    "intake-consumer": _Spec(("intake", "consume"), "intake"),
    "router": _Spec(("router", "run"), None),
    "backoffice-api": _Spec(("backoffice", "serve"), "backoffice", gunicorn=True),
    "backoffice-consumer": _Spec(("backoffice", "consume"), "backoffice"),
    "sla-monitor": _Spec(("sla", "run"), "sla-monitor"),
    "sla-web": _Spec(("sla", "serve"), "sla-monitor", gunicorn=True),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def live_members(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies, already dead, not counted)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # After the command name in parentheses: state, ppid, pgrp, ...
        state, _ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            found.append(int(entry.name))
    return found


def kcc_command() -> list[str]:
    """The `kcc` console script of this interpreter's environment (or the module behind it)."""
    script = Path(sys.executable).parent / "kcc"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from kcc_cli.main import main; main()"]


@dataclass
class _Process:
    name: str
    port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None
    # False once stopped or killed here: its exit is then expected, not a failure.
    wanted: bool = False
    starts: int = 0


class Stack:
    """Intake, router, back office and SLA monitor as separate processes; see the module doc."""

    def __init__(
        self,
        tmp: Path,
        broker_url: str,
        postgres_admin_dsn: str,
        *,
        name: str,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.broker_url = broker_url
        self.name = name
        self._admin_dsn = postgres_admin_dsn
        self._databases: dict[str, str] = {}
        self._processes = {n: _Process(n, free_port(), self.tmp / f"{n}.log") for n in _SPECS}
        self._base_env = self._environment(env or {})
        self.organisation = load_organisation(self._base_env.get("KCC_ORGANISATION_FILE"))
        try:
            self._create_databases()
            self.agent_token = self.create_token("agent", "agent-anna", team="kcc-noord")
            self.staff_token = self.create_token(
                "staff", "staff-eva", departments=list(self.organisation.departments)
            )
            self.ops_token = self.create_token("ops", "ops-olaf")
        except BaseException:
            self._drop_databases()
            raise

    # --- setup -------------------------------------------------------------------------

    def _environment(self, extra: Mapping[str, str]) -> dict[str, str]:
        # The caller's KCC_* settings (a developer's shell, CI) must not leak into a stack
        # that is meant to be exactly what this harness describes.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("KCC_") and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        env = {
            **inherited,
            "KCC_BROKER_URL": self.broker_url,
            "KCC_SECRET_KEY": secrets.token_urlsafe(32),
            "KCC_LOG_FORMAT": "text",
            **extra,
        }
        if env.get("KCC_ORGANISATION_FILE"):
            # The processes run in tmp: a relative path would point somewhere else there.
            env["KCC_ORGANISATION_FILE"] = str(Path(env["KCC_ORGANISATION_FILE"]).resolve())
        return env

    def _create_databases(self) -> None:
        slug = re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")[:20] or "stack"
        suffix = uuid.uuid4().hex[:8]
        host = self._admin_dsn.split("://", 1)[1].rsplit("/", 1)[0]
        with psycopg.connect(self._admin_dsn, autocommit=True, connect_timeout=5) as admin:
            for service in SERVICES:
                database = f"kcc_{slug}_{service.replace('-', '_')}_{suffix}"
                admin.execute(f'CREATE DATABASE "{database}"')
                self._databases[service] = f"postgresql+psycopg://{host}/{database}"

    def _drop_databases(self) -> None:
        if not self._databases:
            return
        with psycopg.connect(self._admin_dsn, autocommit=True, connect_timeout=5) as admin:
            for url in self._databases.values():
                admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        self._databases.clear()

    def create_token(
        self,
        role: str,
        user_id: str,
        *,
        team: str | None = None,
        departments: Iterable[str] = (),
    ) -> str:
        """A token in the store every service reads (what `kcc token create` does)."""
        engine = make_engine(self.database_url("auth"))
        try:
            store = open_token_store(engine)
            token, _ = store.create(
                role=role,
                user_id=user_id,
                team=team,
                departments=departments,
                known_departments=list(self.organisation.departments),
            )
        finally:
            engine.dispose()
        return token

    # --- addresses ---------------------------------------------------------------------

    def database_url(self, service: str) -> str:
        """SQLAlchemy URL of a service's database (intake, backoffice, sla-monitor, auth)."""
        if service not in self._databases:
            raise KeyError(f"no database {service!r}; the stack has {', '.join(SERVICES)}")
        return self._databases[service]

    def database_dsn(self, service: str) -> str:
        """The same database as a libpq URL, for psycopg."""
        return self.database_url(service).replace("postgresql+psycopg://", "postgresql://", 1)

    def _process(self, name: str) -> _Process:
        if name not in self._processes:
            raise KeyError(f"no process {name!r}; the stack has {', '.join(PROCESSES)}")
        return self._processes[name]

    def url(self, name: str) -> str:
        """Base URL of a process: the API of a gunicorn service, else its metrics port."""
        return f"http://127.0.0.1:{self._process(name).port}"

    def metrics_url(self, name: str) -> str:
        return f"{self.url(name)}/metrics"

    @property
    def intake_url(self) -> str:
        return self.url("intake-api")

    @property
    def backoffice_url(self) -> str:
        return self.url("backoffice-api")

    @property
    def sla_url(self) -> str:
        """The SLA overview and summary API (`kcc sla serve`)."""
        return self.url("sla-web")

    def metric(self, name: str, metric: str, **labels: str) -> float:
        """Sum of the samples of `metric` (full sample name, e.g. `..._total`) that carry
        `labels`, as the process exports them now; 0.0 when there are none."""
        with urllib.request.urlopen(self.metrics_url(name), timeout=10) as response:
            text = response.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == metric and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    # --- processes ---------------------------------------------------------------------

    def start(self, name: str, **env: str) -> None:
        """Start one process (not waiting for it; see `wait_ready`). `env` is added to its
        environment for this and later restarts."""
        process = self._process(name)
        if process.popen is not None and process.popen.poll() is None:
            raise StackError(f"{name} is already running (pid {process.popen.pid})")
        spec = _SPECS[name]
        process.env.update(env)
        full_env = dict(self._base_env)
        if spec.database is not None:
            full_env["KCC_DATABASE_URL"] = self.database_url(spec.database)
        full_env["KCC_AUTH_DATABASE_URL"] = self.database_url("auth")
        if spec.gunicorn:
            metrics_dir = self.tmp / f"metrics-{name}"
            metrics_dir.mkdir(exist_ok=True)
            full_env["KCC_HTTP_BIND"] = f"127.0.0.1:{process.port}"
            full_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        else:
            full_env["KCC_METRICS_PORT"] = str(process.port)
        full_env.update(process.env)
        process.starts += 1
        with process.log.open("a") as output:
            output.write(f"=== {name}: start {process.starts}\n")
            output.flush()
            process.popen = subprocess.Popen(
                [*kcc_command(), *spec.command],
                env=full_env,
                cwd=self.tmp,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group: `kill` reaches gunicorn's workers too, and a Ctrl-C
                # in the terminal reaches only this harness, which then stops them in order.
                start_new_session=True,
            )
        process.wanted = True

    def start_all(self, *, timeout: float = 240.0) -> None:
        """Start every process not running yet, then wait until each is ready. The bound
        holds for nine processes starting at once on a busy two-core machine (each imports
        Flask, SQLAlchemy and the models: several CPU seconds)."""
        started = [n for n in PROCESSES if not self.running(n)]
        for name in started:
            self.start(name)
        deadline = time.monotonic() + timeout
        for name in started:
            self.wait_ready(name, timeout=max(1.0, deadline - time.monotonic()))

    def running(self, name: str) -> bool:
        popen = self._process(name).popen
        return popen is not None and popen.poll() is None

    def pid(self, name: str) -> int:
        popen = self._process(name).popen
        if popen is None or popen.poll() is not None:
            raise StackError(f"{name} is not running")
        return popen.pid

    def stop(self, name: str, *, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit; returns the exit status. A process that does not
        exit within `timeout` is killed, and that is reported as an error."""
        self._terminate(name)
        return self._await_exit(name, timeout)

    def _terminate(self, name: str) -> None:
        process = self._process(name)
        process.wanted = False
        if process.popen is None:
            raise StackError(f"{name} was never started")
        if process.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.popen.send_signal(signal.SIGTERM)

    def _await_exit(self, name: str, timeout: float) -> int:
        popen = self._process(name).popen
        assert popen is not None
        try:
            popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(popen)
            raise StackError(
                f"{name} did not exit within {timeout}s of SIGTERM; killed\n"
                + self.logs(name, tail=3000)
            ) from None
        # Anything of its group still there (a stray or orphaned worker) goes with it.
        self._kill_group(popen)
        return int(popen.returncode)

    def kill(self, name: str) -> None:
        """SIGKILL the process and everything in its process group (a crash, a lost node)."""
        process = self._process(name)
        process.wanted = False
        if process.popen is None:
            raise StackError(f"{name} was never started")
        self._kill_group(process.popen)

    @staticmethod
    def _kill_group(popen: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()
        # The workers are the master's children, not ours: wait until the kernel has taken
        # them down too, so a restart never meets a process of the old generation.
        deadline = time.monotonic() + 10
        while live_members(popen.pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    def restart(self, name: str, *, timeout: float = 180.0, **env: str) -> None:
        """Stop (gracefully) if running, start again with the same environment plus `env`,
        and wait until ready."""
        if self.running(name):
            self.stop(name)
        self.start(name, **env)
        self.wait_ready(name, timeout=timeout)

    def ready(self, name: str) -> bool:
        """Whether GET /readyz answers 200 now."""
        return self._readyz(name) == "200"

    def _readyz(self, name: str) -> str:
        """What GET /readyz answers now: "200", or the status with its body, or why none."""
        try:
            with urllib.request.urlopen(f"{self.url(name)}/readyz", timeout=5) as response:
                return str(response.status)
        except urllib.error.HTTPError as exc:
            return f"{exc.code} {exc.read()[:500]!r}"
        except OSError as exc:
            return f"no answer ({exc})"

    def wait_ready(self, name: str, *, timeout: float = 180.0) -> None:
        """Poll /readyz until 200; fails at once, with its log, if the process exits. The
        bound holds for a start on a busy two-core machine (about 3 CPU seconds a process)."""
        deadline = time.monotonic() + timeout
        while (answer := self._readyz(name)) != "200":
            if not self.running(name):
                raise StackError(f"{name} exited before it was ready\n{self.logs(name, 3000)}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{name} not ready within {timeout}s (last /readyz: {answer})\n"
                    f"{self.logs(name, tail=3000)}"
                )
            time.sleep(0.1)

    def dead(self) -> list[str]:
        """Processes that exited although nobody stopped or killed them here."""
        return [
            p.name
            for p in self._processes.values()
            if p.wanted and p.popen is not None and p.popen.poll() is not None
        ]

    def alive(self) -> bool:
        return not self.dead()

    def assert_alive(self) -> None:
        dead = self.dead()
        if dead:
            raise AssertionError(
                "exited unexpectedly: "
                + ", ".join(dead)
                + "\n"
                + "\n".join(self.logs(n, tail=3000) for n in dead)
            )

    def logs(self, name: str | None = None, tail: int | None = None) -> str:
        """A process's log (every start of it), or all of them; `tail` keeps the last chars."""
        names = [name] if name is not None else list(PROCESSES)
        parts = []
        for n in names:
            log = self._process(n).log
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"--- {n}\n{text[-tail:] if tail else text}")
        return "\n".join(parts)

    def close(self) -> None:
        """Stop every process and drop the databases. SIGTERM goes to all at once (each
        shuts down on its own; one after the other took half a minute), then each is waited
        for as `stop` does."""
        started = [n for n in reversed(PROCESSES) if self._processes[n].popen is not None]
        for name in started:
            self._terminate(name)
        problems = []
        for name in started:
            try:
                self._await_exit(name, 30.0)
            except StackError as exc:
                problems.append(str(exc).splitlines()[0])
        self._drop_databases()
        if problems:
            raise StackError("; ".join(problems))

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
