"""The organisation's own history as labelled questions: what the router's model learns from.

Every answered request is an example of the department that answered it (after a forward, the
department it was forwarded to: every forward is a correction). Only the redacted question text
leaves the store, with the request id and the department; never the agent, the citizen
reference or the answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from kcc_shared.privacy import redact_bsn
from sqlalchemy import select
from sqlalchemy.engine import Engine

from intake.store import requests_table, timeline_table

__all__ = ["labelled_history"]

# Rows fetched from the database at a time: the export streams, whatever the history's size.
_CHUNK = 1000


def labelled_history(engine: Engine, since: datetime | None = None) -> Iterator[dict[str, Any]]:
    """One labelled question per answered request (the last department that answered it),
    oldest request first; ``since`` keeps requests answered at or after that moment."""
    query = (
        select(
            requests_table.c.id,
            requests_table.c.question,
            requests_table.c.status,
            timeline_table.c.details,
            timeline_table.c.occurred_at,
        )
        .join(timeline_table, timeline_table.c.request_id == requests_table.c.id)
        .where(timeline_table.c.type == "request.answered")
        .order_by(requests_table.c.id, timeline_table.c.occurred_at)
    )
    if since is not None:
        query = query.where(timeline_table.c.occurred_at >= since)
    current: dict[str, Any] | None = None
    with engine.connect() as connection:
        rows = connection.execution_options(yield_per=_CHUNK).execute(query)
        for row in rows:
            if row.status == "cancelled":
                continue
            department = json.loads(row.details or "{}").get("department")
            if not department:
                continue
            if current is not None and current["id"] != row.id:
                yield current
            current = {
                "id": row.id,
                "question": redact_bsn(row.question)[0],
                "department": department,
                "source": "historie",
                "answered_at": row.occurred_at.isoformat(timespec="seconds"),
            }
    if current is not None:
        yield current
