"""Every metric the intake exports, with its help text."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

# The `service` label of the shared metrics, and this service's name in logs.
SERVICE: Final = "intake"

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
EVENTS_APPLIED = Counter(
    "kcc_intake_events_applied_total",
    "Events consumed into the agents' view, by type and outcome: applied, recorded (the "
    "intake's own event coming back; already in the timeline), unknown_request (filed "
    'elsewhere). Duplicates are kcc_messages_consumed_total{outcome="duplicate"}.',
    ["type", "outcome"],
)
STREAM_SUBSCRIBERS = Gauge(
    "kcc_intake_stream_subscribers",
    "Agents' live update streams (Server-Sent Events) open now, summed over workers.",
    multiprocess_mode="livesum",
)
STREAMS_REFUSED = Counter(
    "kcc_intake_streams_refused_total",
    "Live streams refused with 503 because this process already serves its maximum.",
)
CLARIFICATIONS = Counter(
    "kcc_intake_clarifications_total", "Clarification questions answered by agents."
)
# Note: kcc_request_ratings_total{department,score} and kcc_request_thanks_total belong to the
# SLA monitor (it sees every rating on the wire); these count what agents did here.
RATINGS = Counter(
    "kcc_intake_ratings_total",
    "Ratings given by agents, by score and whether the rating reopened the request.",
    ["score", "reopened"],
)
RATING_THANKS = Counter("kcc_intake_rating_thanks_total", "Ratings that said thank you.")
ANSWERS_REUSED = Counter(
    "kcc_answers_reused_total",
    "Citizens answered at the desk with a department's reusable answer instead of a new "
    'question ("Hiermee is de vraag beantwoord"), by the answer\'s department and category '
    "(`none`: the question had no category). Idempotent replays not counted.",
    ["department", "category"],
)
