"""Every metric the back office exports, with its help text (shared ones in kcc_shared)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge

# The `service` label of the shared metrics, and this service's name in logs.
SERVICE: Final = "backoffice"

INBOX_ITEMS = Gauge(
    "kcc_backoffice_items",
    "Items in the department inboxes by state (read from the store at scrape time).",
    ["department", "state"],
    multiprocess_mode="livemostrecent",
)
STAFF_ACTIONS = Counter(
    "kcc_backoffice_actions_total",
    "Staff actions that changed an item (claim, release, answer, clarification_request, "
    "forward), by department.",
    ["department", "action"],
)
LIVE_STREAMS = Gauge(
    "kcc_backoffice_live_streams",
    "Inbox pages following the live update stream in this process.",
    multiprocess_mode="livesum",
)
