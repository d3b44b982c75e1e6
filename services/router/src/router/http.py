"""The router's small HTTP port: /metrics, /healthz (alive) and /readyz (able to route)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from kcc_shared.health import Check, run_checks
from kcc_shared.metrics import metrics_app

__all__ = ["HealthServer", "health_app"]

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


def health_app(
    checks: Mapping[str, Check],
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """A WSGI app: /metrics, /healthz (the process answers) and /readyz (every check passes)."""
    metrics = metrics_app()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return list(metrics(environ, start_response))
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
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
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
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

    def __init__(self, host: str, port: int, checks: Mapping[str, Check]) -> None:
        self._server = make_server(
            host, port, health_app(checks), server_class=_Server, handler_class=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="router-http", daemon=True
        )
        self._thread.start()
        log.info("http_server_started", extra={"port": self.port})

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
