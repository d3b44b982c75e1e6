"""The agents' live update stream: the `agent_updates` feed (store.py writes its rows) read
here, told to each agent's own streams (kcc_shared.sse does the fan-out and the SSE mechanics)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from flask import Response, request
from kcc_shared.sse import (
    Entry,
    LiveFeed,
    StreamsFull,
    UserStreamsFull,
    parse_last_event_id,
)
from kcc_shared.sse import stream_response as sse_response
from sqlalchemy import Engine, func, select

from intake.errors import InvalidInput, TooManyOwnStreams, TooManyStreams
from intake.metrics import STREAM_SUBSCRIBERS, STREAMS_REFUSED
from intake.store import requests_table, timeline_table, updates_table


def desk_feed(engine: Engine, *, max_subscribers: int, max_per_user: int) -> LiveFeed:
    """A feed of the store's update rows; an entry's audience is the one agent it was written
    for, and an agent's stream subscribes with their own id only."""

    def read(after: int, limit: int, keys: frozenset[str] | None) -> Sequence[Entry]:
        u, tl, t = updates_table, timeline_table, requests_table
        query = (
            select(
                u.c.seq,
                u.c.agent_id,
                u.c.request_id,
                t.c.status,
                t.c.department,
                tl.c.event_id,
                tl.c.type,
                tl.c.occurred_at,
                tl.c.actor_kind,
                tl.c.actor_id,
                tl.c.details,
            )
            .join(tl, tl.c.event_id == u.c.event_id)
            .join(t, t.c.id == u.c.request_id)
            .where(u.c.seq > after)
            .order_by(u.c.seq)
            .limit(limit)
        )
        if keys is not None and len(keys) == 1:
            # A stream catching up reads its own agent's rows (indexed on agent_id, seq).
            query = query.where(u.c.agent_id == next(iter(keys)))
        with engine.connect() as connection:
            return [entry(row) for row in connection.execute(query)]

    return LiveFeed(
        read,
        lambda: last_seq(engine),
        name="intake-feed",
        on_count=STREAM_SUBSCRIBERS.set,
        max_subscribers=max_subscribers,
        max_per_user=max_per_user,
    )


def last_seq(engine: Engine) -> int:
    """The newest feed row's seq (0 for none): where a stream without Last-Event-ID starts."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.max(updates_table.c.seq))).scalar() or 0)


def entry(row: Any) -> Entry:
    """One feed row as the stream sends it; `id` is the feed seq (what Last-Event-ID sends back)."""
    return Entry(
        seq=row.seq,
        audience=frozenset({row.agent_id}),
        data={
            "request_id": row.request_id,
            # The request's state now (a replayed old entry carries today's status).
            "status": row.status,
            "department": row.department,
            "entry": {
                "event_id": row.event_id,
                "type": row.type,
                "occurred_at": row.occurred_at.isoformat().replace("+00:00", "Z"),
                "actor": {"kind": row.actor_kind, "id": row.actor_id},
                "details": json.loads(row.details),
            },
        },
    )


def last_event_id() -> int | None:
    """Where a reconnecting stream resumes: the Last-Event-ID header (EventSource sends it)
    or, for a first connection, ?last_event_id= (a page knows the feed position it showed)."""
    try:
        return parse_last_event_id(
            request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        )
    except ValueError:
        raise InvalidInput(
            "Last-Event-ID must be the id of an event this stream sent (a whole number).",
            errors={"Last-Event-ID": ["Not a valid event id."]},
        ) from None


def stream_response(feed: LiveFeed, agent_id: str, after: int | None) -> Response:
    """The text/event-stream response for one agent (the API and the desk page share this)."""
    try:
        # Only the agent's own feed rows (the store writes a row per agent who should see it).
        subscription = feed.subscribe(agent_id, frozenset({agent_id}))
    except UserStreamsFull:
        STREAMS_REFUSED.inc()
        raise TooManyOwnStreams(
            f"You already have {feed.max_per_user} live streams open here; close a "
            "tab with the desk, or retry in a few seconds."
        ) from None
    except StreamsFull:
        STREAMS_REFUSED.inc()
        raise TooManyStreams(
            "This server already serves its maximum of live streams; retry in a few seconds."
        ) from None
    return sse_response(feed, subscription, after)
