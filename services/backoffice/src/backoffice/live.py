"""The inbox's live stream: every change in the timeline, told to the streams of the
departments it concerns (kcc_shared.sse does the fan-out and the SSE mechanics)."""

from __future__ import annotations

from collections.abc import Sequence

from kcc_shared.sse import Entry, LiveFeed

from backoffice.metrics import LIVE_STREAMS
from backoffice.store import InboxStore


def inbox_feed(
    store: InboxStore,
    *,
    max_subscribers: int,
    max_per_user: int,
    poll_interval: float = 1.0,
) -> LiveFeed:
    """A feed of the store's timeline; an entry's audience is the departments it concerns."""
    names = {d.id: d.name for d in store.organisation.departments.values()}

    def read(after: int, limit: int, _keys: frozenset[str] | None) -> Sequence[Entry]:
        return [
            Entry(
                seq=change.seq,
                audience=change.departments,
                # What changed where; no question text (the page fetches what it shows).
                data={
                    "request_id": change.request_id,
                    "type": change.type,
                    "state": change.state,
                    "departments": sorted(names.get(d, d) for d in change.departments),
                },
            )
            for change in store.changes_after(after, limit)
        ]

    return LiveFeed(
        read,
        store.last_timeline_seq,
        name="backoffice-feed",
        on_count=LIVE_STREAMS.set,
        poll_interval=poll_interval,
        max_subscribers=max_subscribers,
        max_per_user=max_per_user,
    )
