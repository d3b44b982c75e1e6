"""The agents' live update stream (Server-Sent Events), fed by polling the update feed table."""

from __future__ import annotations

import json
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from intake.metrics import STREAM_SUBSCRIBERS
from intake.store import RequestStore, Update

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL: Final = 1.0
DEFAULT_HEARTBEAT: Final = 15.0
# A stream ends after this long; EventSource reconnects with Last-Event-ID and loses nothing.
# It frees the (gunicorn) thread now and then and lets a draining worker go.
DEFAULT_MAX_SECONDS: Final = 300.0
DEFAULT_QUEUE_SIZE: Final = 100
# Every open stream holds one server thread: leave the rest for the API.
DEFAULT_MAX_SUBSCRIBERS: Final = 24
# One agent (a few tabs, a reconnect racing the old stream) may not take every slot.
DEFAULT_MAX_PER_USER: Final = 4
# How often an idle stream looks whether its client is still there (a closed socket).
CLIENT_CHECK_SECONDS: Final = 1.0
PAGE: Final = 200
RETRY_MS: Final = 3000


class StreamsFull(Exception):
    """This process already serves as many streams as it may; try again (another worker)."""


class UserStreamsFull(Exception):
    """This agent already has as many streams open here as one person may."""


ClientGone = Callable[[], bool]


def client_gone_check(environ: Mapping[str, object]) -> ClientGone:
    """Whether the client of this WSGI request has closed its connection.

    An SSE client sends nothing after its request, so a readable socket that reads as
    end-of-file (peeked, nothing consumed) means it went away; without a socket (a test
    client, another server) this never says so and the next write finds out instead.
    """
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False

    def gone() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    return gone


@dataclass(eq=False)
class Subscription:
    """One open stream: a bounded queue of updates; `lagging` when it overflowed."""

    agent_id: str
    queue: queue.Queue[Update | None] = field(
        default_factory=lambda: queue.Queue(DEFAULT_QUEUE_SIZE)
    )
    lagging: bool = False

    def offer(self, update: Update | None) -> None:
        try:
            self.queue.put_nowait(update)
        except queue.Full:
            # Nothing is lost: the stream re-reads the feed from its last sent seq.
            self.lagging = True


class UpdateFeed:
    """Follows the `agent_updates` table and fans new entries out to this process's streams.

    Why polling: the consumer that applies events runs in another process than the gunicorn
    worker holding an agent's stream; the database is the one place both see. One query per
    poll interval per process (indexed on seq), whatever the number of streams. The thread
    starts with the first stream, so a worker that never streams never polls.
    """

    def __init__(
        self,
        store: RequestStore,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        heartbeat: float = DEFAULT_HEARTBEAT,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_subscribers: int = DEFAULT_MAX_SUBSCRIBERS,
        max_per_user: int = DEFAULT_MAX_PER_USER,
    ) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.heartbeat = heartbeat
        self.max_seconds = max_seconds
        self.queue_size = queue_size
        self.max_subscribers = max_subscribers
        self.max_per_user = max_per_user
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._count = 0
        self._cursor = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._cursor = self.store.last_update_seq()
            self._thread = threading.Thread(target=self._run, name="intake-feed", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            thread, self._thread = self._thread, None
            subscriptions = [s for subs in self._subscribers.values() for s in subs]
        for subscription in subscriptions:
            subscription.offer(None)  # ends the stream at once
        if thread is not None:
            thread.join(timeout)

    @property
    def subscribers(self) -> int:
        return self._count

    # -- subscriptions ------------------------------------------------------------------------

    def subscribe(self, agent_id: str) -> Subscription:
        self.start()
        with self._lock:
            if len(self._subscribers.get(agent_id, ())) >= self.max_per_user:
                raise UserStreamsFull
            if self._count >= self.max_subscribers:
                raise StreamsFull
            subscription = Subscription(agent_id, queue.Queue(self.queue_size))
            self._subscribers.setdefault(agent_id, set()).add(subscription)
            self._count += 1
        STREAM_SUBSCRIBERS.inc()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(subscription.agent_id)
            if subs is None or subscription not in subs:
                return
            subs.discard(subscription)
            if not subs:
                del self._subscribers[subscription.agent_id]
            self._count -= 1
        STREAM_SUBSCRIBERS.dec()

    # -- the poller ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            try:
                self.poll_once()
            except Exception:  # a DB hiccup: streams wait, the next poll catches up
                log.exception("feed_poll_failed")

    def poll_once(self) -> int:
        """Hand every new feed entry to the streams of its agent; return how many were read."""
        read = 0
        while True:
            updates = self.store.updates_after(self._cursor, limit=PAGE)
            with self._lock:
                for update in updates:
                    for subscription in self._subscribers.get(update.agent_id, ()):
                        subscription.offer(update)
            if updates:
                self._cursor = updates[-1].seq
            read += len(updates)
            if len(updates) < PAGE:
                return read

    # -- one stream ---------------------------------------------------------------------------

    def streams_of(self, agent_id: str) -> int:
        with self._lock:
            return len(self._subscribers.get(agent_id, ()))

    def events(
        self,
        subscription: Subscription,
        last_event_id: int | None,
        client_gone: ClientGone = lambda: False,
    ) -> Iterator[str]:
        """The SSE text of one stream: missed entries first (after Last-Event-ID), then live
        ones, a comment as heartbeat; unsubscribes when the client goes (seen within
        CLIENT_CHECK_SECONDS, or at the next write) or the stream ends."""
        try:
            last = self.store.last_update_seq() if last_event_id is None else last_event_id
            yield f"retry: {RETRY_MS}\n: stream open\n\n"
            deadline = time.monotonic() + self.max_seconds
            next_heartbeat = time.monotonic() + self.heartbeat
            catch_up = last_event_id is not None
            while not self._stopping.is_set():
                if catch_up or subscription.lagging:
                    subscription.lagging = False
                    catch_up = False
                    for update in self._missed(subscription.agent_id, last):
                        yield format_update(update)
                        last = update.seq
                    continue
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    return
                try:
                    live = subscription.queue.get(
                        timeout=max(0.0, min(CLIENT_CHECK_SECONDS, next_heartbeat - now, remaining))
                    )
                except queue.Empty:
                    if client_gone():
                        return  # the finally frees the slot now, not at the next heartbeat
                    if time.monotonic() >= next_heartbeat:
                        next_heartbeat = time.monotonic() + self.heartbeat
                        yield ": keepalive\n\n"
                    continue
                if live is None:
                    return
                if live.seq <= last:
                    continue  # also read while catching up
                yield format_update(live)
                last = live.seq
                next_heartbeat = time.monotonic() + self.heartbeat
        finally:
            self.unsubscribe(subscription)

    def _missed(self, agent_id: str, after: int) -> Iterator[Update]:
        while True:
            page = self.store.updates_after(after, agent_id=agent_id, limit=PAGE)
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1].seq


def format_update(update: Update) -> str:
    """One SSE message: `id` is the feed seq (what Last-Event-ID sends back)."""
    entry = update.entry
    data: dict[str, Any] = {
        "seq": update.seq,
        "request_id": update.request_id,
        # The request's state now (a replayed old entry carries today's status).
        "status": update.status,
        "department": update.department,
        "entry": {
            "event_id": entry.event_id,
            "type": entry.type,
            "occurred_at": entry.occurred_at.isoformat().replace("+00:00", "Z"),
            "actor": dict(entry.actor),
            "details": dict(entry.details),
        },
    }
    return f"id: {update.seq}\nevent: update\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
