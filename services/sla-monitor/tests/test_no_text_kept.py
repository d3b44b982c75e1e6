"""The SLA monitor keeps what rebuilds a clock and nothing people wrote."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sla_monitor.store import SlaStore
from sla_monitor.tables import events_table
from sqlalchemy import select

from .conftest import Events, Ingest


def test_a_cancel_or_reopen_reason_is_not_stored(
    store: SlaStore, events: Callable[[], Events], ingest: Ingest
) -> None:
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    one, two = events(), events()
    ingest(one.routed(at))
    ingest(one.make("request.cancelled", at + timedelta(minutes=5), reason="BSN 123456782"))
    ingest(two.routed(at))
    ingest(two.claimed(at + timedelta(minutes=1)))
    ingest(two.answered(at + timedelta(minutes=2)))
    ingest(two.make("request.reopened", at + timedelta(minutes=3), reason="Voor 111222333"))

    with store.engine.connect() as connection:
        kept = {
            row.type: json.loads(row.data)
            for row in connection.execute(select(events_table.c.type, events_table.c.data))
        }

    assert kept["request.routed"]["reason"] == "category"  # the router's, not a person's
    assert "reason" not in kept["request.cancelled"]
    assert "reason" not in kept["request.reopened"]
