"""Fixtures for every test tier: a private RabbitMQ vhost and PostgreSQL database per use."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pika
import psycopg
import pytest

RABBITMQ_HOST = os.environ.get("KCC_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("KCC_TEST_RABBITMQ_PORT", "5672"))
POSTGRES_ADMIN_DSN = os.environ.get(
    "KCC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# CI sets this: a tier that cannot reach the real broker or database must fail, not skip.
REQUIRE_SERVICES = os.environ.get("KCC_REQUIRE_SERVICES") == "1"

REPO_ROOT = Path(__file__).resolve().parent
# The labelled questions the routing and privacy proofs use: in the project, so a plain clone
# tests itself (data/README.md says where each file came from).
DEV_DATA = REPO_ROOT / "data" / "routing-dev.jsonl"
VALIDATION_DATA = REPO_ROOT / "data" / "routing-validation.jsonl"


def harness() -> Any:
    """tests/stack.py (the pipeline as real processes), loaded by path once.

    Note: services/sla-monitor/tests is a package named `tests` too; once pytest has imported
    it (a full run), `import tests.stack` is looked for there. So the suites that use the
    harness (tests/e2e, tests/faults, tests/test_stack.py) take it from here.
    """
    name = "kcc_test_stack"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "tests" / "stack.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def unavailable(message: str) -> NoReturn:
    """The one way a test skips for want of a tool or a service: a skip on a developer's
    machine, a failure where KCC_REQUIRE_SERVICES=1 (CI), so a missing install step or a
    service that did not start never passes as a silent skip. tests/test_skips.py holds every
    test to it."""
    if REQUIRE_SERVICES:
        pytest.fail(message + "; KCC_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(message)


def require_tool(name: str, where_from: str) -> str:
    """The path of command-line tool `name`, or `unavailable` saying where it comes from."""
    found = shutil.which(name)
    if found is None:
        unavailable(f"{name} is not installed ({where_from})")
    return found


def _unavailable(what: str, exc: Exception) -> NoReturn:
    unavailable(f"{what} is not reachable ({type(exc).__name__}: {exc})")


def _rabbitmqctl(*args: str) -> None:
    rabbitmqctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([rabbitmqctl, *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def vhost() -> Iterator[str]:
    """A fresh, empty RabbitMQ vhost, deleted afterwards: tests never see each other's queues."""
    name = f"kcc-test-{uuid.uuid4().hex[:12]}"
    try:
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        _unavailable("RabbitMQ (rabbitmqctl)", exc)
    yield name
    _rabbitmqctl("delete_vhost", name)


@pytest.fixture
def broker_url(vhost: str) -> str:
    return f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{vhost}"


@pytest.fixture
def amqp_channel(vhost: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    """An independent client (pika, not kombu) to see what is really on the wire."""
    params = pika.ConnectionParameters(
        host=RABBITMQ_HOST,
        port=RABBITMQ_PORT,
        virtual_host=vhost,
        credentials=pika.PlainCredentials("guest", "guest"),
    )
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        _unavailable("RabbitMQ", exc)
    channel = connection.channel()
    yield channel
    if connection.is_open:
        connection.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"kcc_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        _unavailable("PostgreSQL", exc)
    host_part = POSTGRES_ADMIN_DSN.split("://", 1)[1].rsplit("/", 1)[0]
    yield f"postgresql+psycopg://{host_part}/{name}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'kcc.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Both stores the product supports; PostgreSQL cases carry the integration mark."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Anything that touches the real broker or PostgreSQL belongs to the integration tier.
    real = {"vhost", "broker_url", "amqp_channel", "postgres_url"}
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        uses_pg_param = callspec is not None and callspec.params.get("database_url") == "postgresql"
        if fixtures & real or uses_pg_param:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def dev_set_path() -> Path:
    """The labelled KCC questions the rules were written against (data/routing-dev.jsonl)."""
    return DEV_DATA


@pytest.fixture(scope="session")
def validation_set_path() -> Path:
    """The held-out routing validation set: never trained or tuned on."""
    return VALIDATION_DATA


@pytest.fixture(scope="session")
def dev_rows(dev_set_path: Path) -> list[dict[str, object]]:
    import json

    return [json.loads(line) for line in dev_set_path.read_text().splitlines() if line.strip()]


class TcpProxy:
    """A TCP forwarder to RabbitMQ that a test can cut and restore: a broker outage on demand
    without stopping the broker other tests (and other developers) share."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import socket
        import threading

        self._target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self._up.is_set():
                client.close()  # broker "down": connection refused-ish (closed at once)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: object, sink: object) -> None:
        import socket

        assert isinstance(source, socket.socket)
        assert isinstance(sink, socket.socket)
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            # Each socket is the source of exactly one pipe: that pipe closes it, so no thread
            # ever reads a descriptor another thread closed (and the kernel reused).
            source.close()

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until `restore`."""
        import socket

        self._up.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self._up.set()

    def close(self) -> None:
        self.cut()
        self._closing.set()
        self._thread.join(2)
        self._listener.close()


@pytest.fixture
def broker_proxy() -> Iterator[TcpProxy]:
    proxy = TcpProxy(RABBITMQ_HOST, RABBITMQ_PORT)
    yield proxy
    proxy.close()


def wait_for(condition: object, timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll `condition()` until true; fail with its last value. For events with no callback."""
    import time

    assert callable(condition)
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> object:
    return wait_for
