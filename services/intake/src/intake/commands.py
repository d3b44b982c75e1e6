"""`kcc intake ...`: serve the API, consume events into the agents' view, print the OpenAPI."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

import click

log = logging.getLogger(__name__)

# Exit status when the configuration keeps the consumer from starting.
EXIT_CONFIG = 2


@click.group("intake")
def intake_group() -> None:
    """The agents' front door (HTTP API and the consumer keeping their view current)."""


@intake_group.command("serve")
@click.option("--bind", default=None, help="host:port (default KCC_HTTP_BIND or 127.0.0.1:8001)")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="gunicorn workers")
def serve(bind: str | None, workers: int | None) -> None:
    """Run the intake under gunicorn with the settings in intake.gunicorn_conf."""
    args = [sys.executable, "-m", "gunicorn", "-c", "python:intake.gunicorn_conf"]
    if bind:
        args += ["--bind", bind]
    if workers:
        args += ["--workers", str(workers)]
    args.append("intake.app:create_app()")
    os.execv(sys.executable, args)  # noqa: S606 - replaces this process with gunicorn


@intake_group.command("consume")
def consume() -> None:
    """Consume intake.events into the agents' view until SIGTERM or Ctrl-C.

    Reads the KCC_* environment (see `kcc config env`); serves /metrics, /healthz and /readyz
    on KCC_METRICS_HOST:KCC_METRICS_PORT. On SIGTERM or SIGINT it finishes the message in
    hand (commit, then ack), closes its connections and exits 0.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from kcc_shared.config import Config, ConfigError
    from kcc_shared.db import make_engine
    from kcc_shared.health import broker_check, database_check
    from kcc_shared.logging import configure_logging
    from kcc_shared.publisher import connection_factory

    from intake.store import RequestStore
    from intake.worker import ViewConsumer

    try:
        config = Config.from_env()
    except ConfigError as exc:
        click.echo(f"intake consume: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_CONFIG) from None
    configure_logging(config.log_level, config.log_format)
    store = RequestStore(make_engine(config.database_url))
    store.create_schema()
    consumer = ViewConsumer(
        store, config.broker_url, prefetch=config.prefetch, publish_timeout=config.publish_timeout
    )
    checks = {
        "database": database_check(store.engine),
        "broker": broker_check(connection_factory(config.broker_url, timeout=2)),
    }

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the log

    server = make_server(
        config.metrics_host,
        config.metrics_port,
        _health_app(checks, lambda: consumer.consuming),
        handler_class=QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="intake-http", daemon=True).start()

    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("consumer_stop_requested", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    consumer.start()
    log.info("intake_consumer_started", extra={"metrics_port": server.server_port})
    try:
        stopping.wait()
    finally:
        consumer.stop()
        server.shutdown()
        server.server_close()
        store.engine.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("intake_consumer_stopped")


def _health_app(checks: Any, consuming: Callable[[], bool]) -> Callable[..., Iterable[bytes]]:
    """/metrics, /healthz (the process answers), /readyz (DB, broker, and consuming)."""
    from kcc_shared.health import run_checks
    from kcc_shared.metrics import metrics_app

    metrics = metrics_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return list(metrics(environ, start_response))
        body: dict[str, Any]
        if path == "/healthz":
            status, body = "200 OK", {"status": "ok"}
        elif path == "/readyz":
            ready, results = run_checks(checks)
            results["consumer"] = "ok" if consuming() else "failing: not consuming"
            ready = ready and consuming()
            status = "200 OK" if ready else "503 Service Unavailable"
            body = {"status": "ready" if ready else "not ready", "checks": results}
        else:
            status, body = "404 Not Found", {"status": "not found"}
        data = json.dumps(body).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return app


@intake_group.command("openapi")
def openapi() -> None:
    """Print the OpenAPI description (what services/intake/openapi.json holds)."""
    click.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))


def openapi_document() -> dict[str, object]:
    from kcc_shared.config import Config

    from intake.app import create_app

    app = create_app(
        Config(database_url="sqlite:///:memory:", broker_url="memory://", outbox_relay=False)
    )
    with app.test_request_context():
        spec: dict[str, object] = app.extensions["flask-smorest"]["apis"][""][
            "ext_obj"
        ].spec.to_dict()
    return spec
