"""/healthz (the process lives: every part running and making progress) and /readyz (its
store and broker answer, so it can do its work now)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from flask import Blueprint, Response, jsonify
from kombu.connection import Connection
from sqlalchemy import Engine, text

from kcc_shared.headers import SECURITY_HEADERS
from kcc_shared.metrics import metrics_app
from kcc_shared.publisher import connect_once, connection_factory
from kcc_shared.runner import Part

__all__ = [
    "Check",
    "HealthServer",
    "broker_check",
    "database_check",
    "dependency_checks",
    "health_app",
    "health_blueprint",
]

log = logging.getLogger(__name__)

Check = Callable[[], None]


def database_check(engine: Engine) -> Check:
    def check() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return check


def broker_check(connection_factory: Callable[[], Connection]) -> Check:
    def check() -> None:
        connection = connection_factory()
        try:
            connect_once(connection)
        finally:
            connection.release()

    return check


def run_checks(
    checks: Mapping[str, Check], *, say_why: bool = False
) -> tuple[bool, dict[str, str]]:
    """Every check's outcome: "ok" or "failing: <error class>" (with `say_why`, for liveness
    checks whose messages are our own words, the message too)."""
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # readiness reports any failure instead of raising it
            results[name] = f"failing: {exc}" if say_why else f"failing: {type(exc).__name__}"
            log.warning("readiness_check_failed", extra={"check": name, "error": str(exc)[:200]})
    return all(v == "ok" for v in results.values()), results


def dependency_checks(engine: Engine, broker_url: str, timeout: float) -> dict[str, Check]:
    """/readyz of a process with a database and a broker: both answer, each bounded."""
    return {
        "database": database_check(engine),
        "broker": broker_check(connection_factory(broker_url, timeout=timeout)),
    }


def health_blueprint(checks: Mapping[str, Check]) -> Blueprint:
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @blueprint.get("/readyz")
    def readyz() -> tuple[Response, int]:
        ready, results = run_checks(checks)
        return jsonify(status="ready" if ready else "not ready", checks=results), (
            200 if ready else 503
        )

    return blueprint


StartResponse = Callable[..., Any]


def health_app(
    checks: Mapping[str, Check],
    *,
    liveness: Mapping[str, Check] | None = None,
    metrics_token: str | None = None,
    before_scrape: Iterable[Callable[[], None]] = (),
) -> Callable[[dict[str, Any], StartResponse], Any]:
    """The small HTTP port of a consumer process: /metrics (behind `metrics_token` when set;
    `before_scrape` refreshes gauges read from a store), /healthz (`liveness`: 503 when a part
    died or is stuck; restart the process) and /readyz (`checks`: 503 while a dependency is
    down; wait)."""
    metrics = metrics_app(before_scrape, token=metrics_token)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return list(metrics(environ, start_response))
        if path == "/healthz":
            alive, parts = run_checks(liveness or {}, say_why=True)
            status = "200 OK" if alive else "503 Service Unavailable"
            return _json(
                start_response, status, {"status": "ok" if alive else "unhealthy", "parts": parts}
            )
        if path == "/readyz":
            ready, results = run_checks(checks)
            status = "200 OK" if ready else "503 Service Unavailable"
            body = {"status": "ready" if ready else "not ready", "checks": results}
            return _json(start_response, status, body)
        return _json(start_response, "404 Not Found", {"status": "not found"})

    return app


def _json(start_response: StartResponse, status: str, body: Mapping[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *SECURITY_HEADERS.items(),
        ],
    )
    return [data]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        # Probes every few seconds would drown the log; requests are counted, not logged.
        pass


class HealthServer:
    """Serves health_app on host:port in a daemon thread; port 0 picks a free port."""

    def __init__(
        self,
        host: str,
        port: int,
        checks: Mapping[str, Check],
        *,
        liveness: Mapping[str, Check] | None = None,
        name: str = "health",
        metrics_token: str | None = None,
        before_scrape: Iterable[Callable[[], None]] = (),
    ) -> None:
        self._server = make_server(
            host,
            port,
            health_app(
                checks,
                liveness=liveness,
                metrics_token=metrics_token,
                before_scrape=before_scrape,
            ),
            server_class=_Server,
            handler_class=_QuietHandler,
        )
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"{self._name}-http", daemon=True
        )
        self._thread.start()
        log.info("http_server_started", extra={"service": self._name, "port": self.port})

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def part(self) -> Part:
        """This server as a part of its process (kcc_shared.runner)."""
        return Part("http", self.start, self.stop, lambda: self.running)
