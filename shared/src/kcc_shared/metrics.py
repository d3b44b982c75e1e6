"""Metrics every service shares: HTTP latency, outbox, consumed messages; and /metrics itself."""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from flask import Flask, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from kcc_shared.headers import SECURITY_HEADERS

__all__ = [
    "BSN_REDACTIONS",
    "MESSAGES_CONSUMED",
    "OUTBOX_BACKLOG",
    "OUTBOX_OLDEST_AGE",
    "OUTBOX_PUBLISHED",
    "OUTBOX_PUBLISH_FAILURES",
    "instrument",
    "metrics_app",
    "multiprocess_dir",
]

HTTP_REQUEST_SECONDS = Histogram(
    "kcc_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template (never the raw path).",
    ["service", "method", "endpoint", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
OUTBOX_PUBLISHED = Counter(
    "kcc_outbox_published_total", "Outbox events confirmed by the broker.", ["service"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "kcc_outbox_publish_failures_total",
    "Outbox publish attempts that failed (broker down, timeout, refused); rows are retried.",
    ["service"],
)
OUTBOX_BACKLOG = Gauge(
    "kcc_outbox_backlog",
    "Outbox events stored but not yet confirmed by the broker (read at scrape time).",
    ["service"],
    multiprocess_mode="livemostrecent",
)
OUTBOX_OLDEST_AGE = Gauge(
    "kcc_outbox_oldest_unsent_age_seconds",
    "Age of the oldest unsent outbox event; grows while the broker is unreachable.",
    ["service"],
    multiprocess_mode="livemostrecent",
)
BSN_REDACTIONS = Counter(
    "kcc_bsn_redactions_total",
    "Citizen service numbers replaced with [BSN] before storing or publishing, by field.",
    ["service", "field"],
)
MESSAGES_CONSUMED = Counter(
    "kcc_messages_consumed_total",
    "Messages taken from a queue, by outcome (acked, duplicate, requeued, dead_lettered, "
    "ignored: an event type of a newer release).",
    ["service", "queue", "outcome"],
)


# Label values come from these fixed sets only: a method or path a client made up must not
# create a series (an unbounded registry, and a way to smuggle a BSN into the metrics).
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD: Final = "other"
UNMATCHED_ENDPOINT: Final = "unmatched"


def method_label(method: str) -> str:
    """The method as a label: one of HTTP_METHODS, anything else is `other`."""
    return method if method in HTTP_METHODS else OTHER_METHOD


def endpoint_label(rule: str | None) -> str:
    """The route template (/api/v1/requests/<uuid:request_id>) or `unmatched`, never a path."""
    return rule if rule is not None else UNMATCHED_ENDPOINT


def scrape_allowed(authorization: str | None, token: str | None) -> bool:
    """Without a token /metrics is open; with one it needs `Authorization: Bearer <token>`
    (compared in constant time)."""
    if not token:
        return True
    scheme, _, sent = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(sent.strip().encode(), token.encode())


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render_metrics() -> bytes:
    """The exposition text; under gunicorn it aggregates every worker's files."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return bytes(generate_latest(registry))
    return bytes(generate_latest())


def metrics_app(
    before_scrape: Iterable[Callable[[], None]] = (), *, token: str | None = None
) -> Any:
    """A WSGI app serving /metrics; `before_scrape` hooks refresh gauges read from a store.
    With `token` (KCC_METRICS_TOKEN) a scrape needs `Authorization: Bearer <token>`."""
    hooks = list(before_scrape)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if not scrape_allowed(environ.get("HTTP_AUTHORIZATION"), token):
            refused = b"Send the metrics token: Authorization: Bearer <KCC_METRICS_TOKEN>\n"
            start_response(
                "401 Unauthorized",
                [
                    ("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Length", str(len(refused))),
                    ("WWW-Authenticate", 'Bearer realm="metrics"'),
                    *SECURITY_HEADERS.items(),
                ],
            )
            return [refused]
        for hook in hooks:
            hook()
        body = render_metrics()
        start_response(
            "200 OK",
            [
                ("Content-Type", CONTENT_TYPE_LATEST),
                ("Content-Length", str(len(body))),
                *SECURITY_HEADERS.items(),
            ],
        )
        return [body]

    return app


def instrument(
    app: Flask,
    service: str,
    before_scrape: Iterable[Callable[[], None]] = (),
    *,
    token: str | None = None,
) -> None:
    """Time every request by its route template and mount /metrics next to the app (behind
    `token`, KCC_METRICS_TOKEN, when set)."""

    @app.before_request
    def _start_timer() -> None:
        g.kcc_started = time.perf_counter()

    @app.after_request
    def _observe(response: Any) -> Any:
        started = g.pop("kcc_started", None)
        if started is not None:
            # The URL rule (e.g. /api/v1/requests/<uuid:request_id>), never the path, and a
            # known method or `other`: what a client sends must not make new series.
            rule = request.url_rule.rule if request.url_rule is not None else None
            HTTP_REQUEST_SECONDS.labels(
                service,
                method_label(request.method),
                endpoint_label(rule),
                str(response.status_code),
            ).observe(time.perf_counter() - started)
        return response

    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {"/metrics": metrics_app(before_scrape, token=token)}
    )
