"""Every metric the intake exports, with its help text."""

from __future__ import annotations

from prometheus_client import Counter

REQUESTS_SUBMITTED = Counter(
    "kcc_requests_submitted_total",
    "Questions accepted from agents (idempotent replays not counted).",
    ["channel", "priority"],
)
REQUESTS_CANCELLED = Counter("kcc_requests_cancelled_total", "Requests cancelled by their agent.")
IDEMPOTENT_REPLAYS = Counter(
    "kcc_idempotent_replays_total",
    "POSTs answered with an earlier request because their Idempotency-Key was seen before.",
)
BSN_REDACTIONS = Counter(
    "kcc_bsn_redactions_total",
    "Citizen service numbers replaced with [BSN] before storing, by field.",
    ["field"],
)
