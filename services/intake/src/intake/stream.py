"""The agents' live update stream: the `agent_updates` feed, told to each agent's own streams
(kcc_shared.sse does the fan-out and the SSE mechanics)."""

from __future__ import annotations

from collections.abc import Sequence

from kcc_shared.sse import Entry, LiveFeed

from intake.metrics import STREAM_SUBSCRIBERS
from intake.store import RequestStore, Update


def desk_feed(store: RequestStore, *, max_subscribers: int, max_per_user: int) -> LiveFeed:
    """A feed of the store's update rows; an entry's audience is the one agent it was written
    for, and an agent's stream subscribes with their own id only."""

    def read(after: int, limit: int, keys: frozenset[str] | None) -> Sequence[Entry]:
        # A stream catching up reads its own agent's rows (indexed on agent_id, seq).
        agent_id = next(iter(keys)) if keys is not None and len(keys) == 1 else None
        return [
            entry(update) for update in store.updates_after(after, agent_id=agent_id, limit=limit)
        ]

    return LiveFeed(
        read,
        store.last_update_seq,
        name="intake-feed",
        on_count=STREAM_SUBSCRIBERS.set,
        max_subscribers=max_subscribers,
        max_per_user=max_per_user,
    )


def entry(update: Update) -> Entry:
    """One feed row as the stream sends it; `id` is the feed seq (what Last-Event-ID sends back)."""
    timeline = update.entry
    return Entry(
        seq=update.seq,
        audience=frozenset({update.agent_id}),
        data={
            "request_id": update.request_id,
            # The request's state now (a replayed old entry carries today's status).
            "status": update.status,
            "department": update.department,
            "entry": {
                "event_id": timeline.event_id,
                "type": timeline.type,
                "occurred_at": timeline.occurred_at.isoformat().replace("+00:00", "Z"),
                "actor": dict(timeline.actor),
                "details": dict(timeline.details),
            },
        },
    )
