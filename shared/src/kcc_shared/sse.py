"""Live updates for the pages (Server-Sent Events): follow a table by its sequence number and
fan new entries out to the open streams of this process.

Why polling a table: the consumer that applies events runs in another process than the gunicorn
worker holding a person's stream; the database is the one place both see. One query per poll
interval per process, whatever the number of streams; the thread starts with the first stream,
so a worker that never streams never polls. A stream ends after a few minutes (the browser's
EventSource reconnects with Last-Event-ID and misses nothing), which frees the server thread now
and then and lets a draining worker go.

What a service supplies: how to read entries after a sequence number (each entry says which
audience keys may see it: the back office's department ids, the intake's agent id) and the
newest sequence number.
"""

from __future__ import annotations

import json
import logging
import queue
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from flask import Response, request

__all__ = [
    "ClientGone",
    "Entry",
    "LiveFeed",
    "StreamsFull",
    "Subscription",
    "UserStreamsFull",
    "client_gone_check",
    "format_entry",
    "parse_last_event_id",
    "stream_response",
]

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL: Final = 1.0
DEFAULT_HEARTBEAT: Final = 15.0
DEFAULT_MAX_SECONDS: Final = 300.0
DEFAULT_QUEUE_SIZE: Final = 100
# How often an idle stream looks whether its client is still there (a closed socket).
CLIENT_CHECK_SECONDS: Final = 1.0
PAGE: Final = 200
RETRY_MS: Final = 3000
# Longer than any sequence number a table will reach; refuses absurd input early.
_MAX_ID_DIGITS: Final = 18


class StreamsFull(Exception):
    """This process already serves as many streams as it may; try again (another worker)."""


class UserStreamsFull(Exception):
    """This person already has as many streams open here as one person may."""


@dataclass(frozen=True)
class Entry:
    """One update: `audience` says who may see it (a subscription sees it when they share a key)."""

    seq: int
    audience: frozenset[str]
    data: Mapping[str, Any]
    event: str = "update"


ClientGone = Callable[[], bool]
# read(after_seq, limit, keys): entries after a seq, in order. `keys` is a hint for a stream
# catching up (None: every entry, as the poller reads): a reader may return only the entries
# for those keys (an indexed query), or ignore it; the feed filters by audience either way.
Reader = Callable[[int, int, frozenset[str] | None], Sequence[Entry]]


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


def parse_last_event_id(raw: str | None) -> int | None:
    """The position a reconnecting stream resumes after (Last-Event-ID, or ?last_event_id= for
    a page that knows what it showed); None for none. Raises ValueError on anything else."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > _MAX_ID_DIGITS:
        raise ValueError("Last-Event-ID must be the id of an event this stream sent")
    return int(raw)


@dataclass(eq=False)
class Subscription:
    """One open stream: what it may see (None: everything), a bounded queue of entries, and
    `lagging` when the queue overflowed (the stream then re-reads from its last sent seq)."""

    user: str
    keys: frozenset[str] | None
    queue: queue.Queue[Entry | None] = field(
        default_factory=lambda: queue.Queue(DEFAULT_QUEUE_SIZE)
    )
    lagging: bool = False

    def sees(self, entry: Entry) -> bool:
        return self.keys is None or not self.keys.isdisjoint(entry.audience)

    def offer(self, entry: Entry | None) -> None:
        try:
            self.queue.put_nowait(entry)
        except queue.Full:
            self.lagging = True


class LiveFeed:
    """Follows a table through `read(after_seq, limit, keys)` and hands each new entry to the
    streams whose keys it names. `on_count` hears the number of open streams (a metrics gauge);
    the two limits are Config's streams_per_process and streams_per_user."""

    def __init__(
        self,
        read: Reader,
        latest: Callable[[], int],
        *,
        name: str = "live-feed",
        on_count: Callable[[int], None] = lambda _: None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        heartbeat: float = DEFAULT_HEARTBEAT,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_subscribers: int,
        max_per_user: int,
    ) -> None:
        self._read = read
        self.latest = latest
        self.name = name
        self._on_count = on_count
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

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._cursor = self.latest()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
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

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(self, user: str, keys: frozenset[str] | None) -> Subscription:
        """A stream for `user` that sees entries naming one of `keys` (None: every entry).
        Raises UserStreamsFull or StreamsFull."""
        self.start()
        with self._lock:
            if len(self._subscribers.get(user, ())) >= self.max_per_user:
                raise UserStreamsFull
            if self._count >= self.max_subscribers:
                raise StreamsFull
            subscription = Subscription(user, keys, queue.Queue(self.queue_size))
            self._subscribers.setdefault(user, set()).add(subscription)
            self._count += 1
            count = self._count
        self._on_count(count)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(subscription.user)
            if subs is None or subscription not in subs:
                return
            subs.discard(subscription)
            if not subs:
                del self._subscribers[subscription.user]
            self._count -= 1
            count = self._count
        self._on_count(count)

    # -- the poller -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            try:
                self.poll_once()
            except Exception:  # a DB hiccup: streams wait, the next poll catches up
                log.exception("live_feed_poll_failed", extra={"feed": self.name})

    def poll_once(self) -> int:
        """Hand every new entry to the streams that may see it; return how many were read."""
        read = 0
        while True:
            entries = self._read(self._cursor, PAGE, None)
            with self._lock:
                subscriptions = [s for subs in self._subscribers.values() for s in subs]
            for entry in entries:
                for subscription in subscriptions:
                    if subscription.sees(entry):
                        subscription.offer(entry)
            if entries:
                self._cursor = entries[-1].seq
            read += len(entries)
            if len(entries) < PAGE:
                return read

    # -- one stream -----------------------------------------------------------------------

    def streams_of(self, user: str) -> int:
        with self._lock:
            return len(self._subscribers.get(user, ()))

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
            last = self.latest() if last_event_id is None else last_event_id
            yield f"retry: {RETRY_MS}\n: stream open\n\n"
            deadline = time.monotonic() + self.max_seconds
            next_heartbeat = time.monotonic() + self.heartbeat
            catch_up = last_event_id is not None
            while not self._stopping.is_set():
                if catch_up or subscription.lagging:
                    subscription.lagging = False
                    catch_up = False
                    for entry in self._missed(subscription, last):
                        yield format_entry(entry)
                        last = entry.seq
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
                yield format_entry(live)
                last = live.seq
                next_heartbeat = time.monotonic() + self.heartbeat
        finally:
            self.unsubscribe(subscription)

    def _missed(self, subscription: Subscription, after: int) -> Iterator[Entry]:
        while True:
            page = self._read(after, PAGE, subscription.keys)
            yield from (entry for entry in page if subscription.sees(entry))
            if len(page) < PAGE:
                return
            after = page[-1].seq


def format_entry(entry: Entry) -> str:
    """One SSE message: `id` is the entry's seq (what Last-Event-ID sends back)."""
    data = json.dumps({"seq": entry.seq, **entry.data}, ensure_ascii=False)
    return f"id: {entry.seq}\nevent: {entry.event}\ndata: {data}\n\n"


def stream_response(feed: LiveFeed, subscription: Subscription, after: int | None) -> Response:
    """The text/event-stream answer of this request for one subscription (the desk's API and
    page and the inbox's page); it ends when the request's client goes."""
    return Response(
        feed.events(subscription, after, client_gone_check(request.environ)),
        mimetype="text/event-stream",
        # No proxy may cache or buffer a stream (nginx buffers unless told).
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
