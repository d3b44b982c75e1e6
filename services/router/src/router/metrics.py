"""The router's metrics; label values come from the organisation file, never from requests."""

from __future__ import annotations

from typing import Final

from kcc_shared.metrics import MESSAGES_CONSUMED
from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "BATCH_FAILURES",
    "MESSAGES_CONSUMED",
    "MODEL_RELOADS",
    "MODEL_VERSION",
    "REQUESTS_ROUTED",
    "ROUTE_SECONDS",
    "RULES_RELOADS",
    "RULES_VERSION",
    "SERVICE",
    "set_model_version",
    "set_rules_version",
]

SERVICE: Final = "router"

REQUESTS_ROUTED = Counter(
    "kcc_requests_routed_total",
    "Routed events confirmed by the broker, by target department and reason "
    "(category, rule, model, fallback, forward).",
    ["department", "reason"],
)
# Wall clock from the submitted event's occurred_at to its routed event's confirm: the outbox
# relay and the queue wait included. Milliseconds when healthy, minutes during an outage.
ROUTE_SECONDS = Histogram(
    "kcc_request_route_seconds",
    "Seconds from request.submitted (occurred_at) until its request.routed was confirmed.",
    ["department"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)
RULES_VERSION = Gauge(
    "kcc_rules_version_info",
    "1 for the rules version (short hash of the organisation file) this router routes with.",
    ["version"],
)
RULES_RELOADS = Counter(
    "kcc_router_rules_reloads_total",
    "Organisation file changes seen: applied, rejected (invalid file, old rules stay) or "
    "failed (queues could not be declared; retried).",
    ["outcome"],
)
MODEL_VERSION = Gauge(
    "kcc_routing_model_version_info",
    "1 for the routing model version this router decides with ('none': the rules alone).",
    ["version"],
)
MODEL_RELOADS = Counter(
    "kcc_router_model_reloads_total",
    "Routing model file changes seen: applied, or rejected (unreadable, corrupt or not fitting "
    "the organisation; the model in force stays).",
    ["outcome"],
)
BATCH_FAILURES = Counter(
    "kcc_router_batch_failures_total",
    "Batch publishes that failed (broker unreachable, no confirm in time, refused by the "
    "broker); the batch is held and published again.",
)

_current: dict[Gauge, str] = {}


def _set_info(gauge: Gauge, version: str) -> None:
    """Point an info gauge at `version`, dropping the series of the one it replaces."""
    old = _current.get(gauge)
    if old is not None and old != version:
        gauge.remove(old)
    _current[gauge] = version
    gauge.labels(version).set(1)


def set_rules_version(version: str) -> None:
    _set_info(RULES_VERSION, version)


def set_model_version(version: str | None) -> None:
    _set_info(MODEL_VERSION, version or "none")
