"""The back office's consumer: every department queue and its agent events into the inboxes."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any, Final
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from kcc_shared.consumer import EventConsumer, EventRejected
from kcc_shared.events import Event
from kcc_shared.health import Check, database_check, run_checks
from kcc_shared.metrics import metrics_app
from kcc_shared.topology import department_queue, service_queue
from sqlalchemy import Connection

from backoffice.metrics import SERVICE
from backoffice.store import InboxStore, processed_events

log = logging.getLogger(__name__)

EVENTS_QUEUE: Final = "backoffice.events"
HANDLED: Final = frozenset(
    {
        "request.submitted",
        "request.routed",
        "request.cancelled",
        "request.clarified",
        "request.reopened",
        "request.rated",
    }
)


class InboxWorker:
    """Consumes `backoffice.events` and `kcc.dept.<d>` for every department of the
    organisation into the store: dedupe on the event id and apply in one transaction, ack
    after commit, park what can never apply (EventConsumer does the mechanics)."""

    def __init__(
        self,
        broker_url: str,
        store: InboxStore,
        *,
        prefetch: int = 50,
        publish_timeout: float = 5.0,
    ) -> None:
        self._store = store
        departments = sorted(store.organisation.departments)
        self.consumer = EventConsumer(
            service=SERVICE,
            broker_url=broker_url,
            queue=service_queue(EVENTS_QUEUE),
            extra_queues=[department_queue(d) for d in departments],
            engine=store.engine,
            processed=processed_events,
            handler=self.handle,
            prefetch=prefetch,
            publish_timeout=publish_timeout,
        )

    def handle(self, connection: Connection, event: Event) -> None:
        if event.type not in HANDLED:
            return  # not the back office's business (recorded as processed, nothing else)
        if (
            event.type == "request.routed"
            and event.data["department"] not in self._store.organisation.departments
        ):
            # The router and this service read different organisation files: a person must
            # look, so park it rather than make an inbox nobody can open.
            raise EventRejected(f"unknown department {event.data['department']}")
        self._store.apply(connection, event)

    def start(self) -> None:
        self.consumer.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.consumer.stop(timeout)

    def run(self) -> None:
        """Consume in the foreground until `request_stop`."""
        # kombu's ConsumerMixin.run is untyped.
        self.consumer.run()  # type: ignore[no-untyped-call]

    def request_stop(self) -> None:
        self.consumer.should_stop = True

    def readiness_checks(self) -> dict[str, Check]:
        def consuming() -> None:
            if not self.consumer.consuming:
                raise RuntimeError("not consuming")

        return {"database": database_check(self._store.engine), "consumer": consuming}


StartResponse = Callable[..., Any]


def health_app(checks: Mapping[str, Check]) -> Callable[[dict[str, Any], StartResponse], Any]:
    """/metrics, /healthz (alive) and /readyz (store reachable and consuming)."""
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
            return _json(
                start_response,
                status,
                {"status": "ready" if ready else "not ready", "checks": results},
            )
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
        pass  # probes every few seconds would drown the log


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
            target=self._server.serve_forever, name="backoffice-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
