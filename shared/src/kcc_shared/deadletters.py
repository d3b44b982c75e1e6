"""The parking lot (queue kcc.dead): list dead letters without losing them, and replay them."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import amqp

from kcc_shared.privacy import redact_bsn
from kcc_shared.publisher import (
    Outgoing,
    Publisher,
    PublishError,
    connect_once,
    connection_factory,
)
from kcc_shared.topology import (
    DEAD_AT_HEADER,
    DEAD_EXCHANGE,
    DEAD_QUEUE,
    DEAD_QUEUE_HEADER,
    DEAD_REASON_HEADER,
    DEAD_ROUTING_KEY_HEADER,
    EVENTS_EXCHANGE,
    declare,
)

__all__ = [
    "BrokerUnavailable",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterNotFound",
    "ParkingLot",
    "ReplayResult",
    "broker_address",
    "parked",
]

# Headers that describe the message's death; a replayed message starts a clean life.
_DEATH_HEADERS: Final = frozenset(
    {
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-delivery-count",
        DEAD_REASON_HEADER,
        DEAD_QUEUE_HEADER,
        DEAD_ROUTING_KEY_HEADER,
        DEAD_AT_HEADER,
    }
)


class DeadLetterError(Exception):
    """The parking lot could not be read or replayed; the message says why."""


class BrokerUnavailable(DeadLetterError):
    """RabbitMQ could not be reached (or refused the login or vhost)."""


class DeadLetterNotFound(DeadLetterError):
    """No parked message has one of the given ids; nothing was replayed."""

    def __init__(self, missing: Collection[str]) -> None:
        self.missing = sorted(missing)
        super().__init__(f"no parked message with id {', '.join(self.missing)}")


@dataclass(frozen=True)
class DeadLetter:
    """What may be shown of a parked message: ids, type and why it was parked, never its text.

    `reason` is the header a consumer set when it parked the message itself, else the broker's
    x-death reason (`delivery_limit`, `rejected`, `expired`, `maxlen`).
    """

    position: int
    message_id: str | None
    event_id: str | None
    type: str | None
    request_id: str | None
    reason: str
    source_queue: str | None
    routing_key: str | None
    dead_at: datetime | None

    @property
    def id(self) -> str | None:
        """The id to name it by: the event id, else the AMQP message id."""
        return self.event_id or self.message_id

    def matches(self, ids: Collection[str]) -> bool:
        return (self.event_id in ids) or (self.message_id in ids)

    def age_seconds(self, now: datetime) -> int | None:
        """How long it has been parked at `now`, in whole seconds (None when unknown)."""
        if self.dead_at is None:
            return None
        return max(0, int((now - self.dead_at).total_seconds()))

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """Its fields; with `now`, also `age_seconds`: how long it has been parked."""
        extra = {} if now is None else {"age_seconds": self.age_seconds(now)}
        return extra | {
            "position": self.position,
            "id": self.id,
            "message_id": self.message_id,
            "type": self.type,
            "request_id": self.request_id,
            "reason": self.reason,
            "source_queue": self.source_queue,
            "routing_key": self.routing_key,
            "dead_at": self.dead_at.isoformat().replace("+00:00", "Z") if self.dead_at else None,
        }


@dataclass
class ReplayResult:
    """Which parked messages went back to kcc.events, and which stayed parked and why.

    `too_old`: parked before the cutoff `replay` was given (or at an unknown time); they were
    not published at all.
    """

    replayed: list[DeadLetter] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)
    too_old: list[DeadLetter] = field(default_factory=list)


@dataclass
class _Parked:
    letter: DeadLetter
    message: amqp.Message
    channel: amqp.Channel
    settled: bool = False


class ParkingLot:
    """Reads kcc.dead with basic.get and no auto-ack, so nothing is lost while looking.

    Note: every message read is rejected with requeue=True, one by one in delivery order,
    which keeps the queue's order (measured on RabbitMQ 3.10 quorum queues). Closing the
    channel instead would also return them, but out of order (the last one moves up).
    """

    def __init__(self, broker_url: str, *, timeout: float = 5.0) -> None:
        if broker_url.startswith("memory://"):
            raise DeadLetterError(
                "KCC_BROKER_URL is memory://, a broker inside one process (as `kcc dev` runs "
                "it): no other process can read its parking lot. `kcc dev` logs each message "
                "it parks as message_dead_lettered (queue, reason, message id) in its own "
                "output; for RabbitMQ set KCC_BROKER_URL to its amqp:// URL"
            )
        # What the operator is told was looked at: every node, without the password.
        self.where = f"{DEAD_QUEUE} on {broker_address(broker_url)}"
        self._factory = connection_factory(broker_url, timeout=timeout)
        self._timeout = timeout

    def letters(self) -> list[DeadLetter]:
        """Every parked message, oldest first; the queue is left exactly as it was."""
        with self._session() as parked:
            return [p.letter for p in parked]

    def replay(self, ids: Collection[str] | None = None, *, parked_since: datetime) -> ReplayResult:
        """Republish parked messages to kcc.events with their original routing key.

        `ids` None replays all. Each message is acked in kcc.dead only after the broker
        confirmed its republish; one that cannot be routed stays parked. An unknown id raises
        DeadLetterNotFound before anything is published.

        Only messages parked at or after `parked_since` (the retention cutoff) are replayed.
        A replay reaches every queue bound to the routing key, also those that applied the
        event before another queue parked it; only their `processed_events` rows make that
        second copy a no-op, and rows older than the retention may have been pruned. An older
        message, or one whose parking time is unknown, stays parked untouched (`too_old`).
        """
        result = ReplayResult()
        with self._session() as parked:
            if ids is not None:
                wanted = set(ids)
                found = {i for p in parked for i in (p.letter.event_id, p.letter.message_id)}
                missing = wanted - found
                if missing:
                    raise DeadLetterNotFound(missing)
                chosen = [p for p in parked if p.letter.matches(wanted)]
            else:
                chosen = list(parked)
            sendable: list[tuple[_Parked, Outgoing]] = []
            for p in chosen:
                if p.letter.dead_at is None or p.letter.dead_at < parked_since:
                    result.too_old.append(p.letter)
                elif not p.letter.routing_key:
                    result.failed.append((p.letter, "the original routing key is unknown"))
                else:
                    sendable.append((p, _outgoing(p)))
            publisher = Publisher(self._factory, timeout=self._timeout)
            try:
                confirmed = publisher.publish([out for _, out in sendable])
            except PublishError as exc:
                raise DeadLetterError(f"replay failed, nothing replayed: {exc}") from exc
            finally:
                publisher.close()
            for p, out in sendable:
                if out.message_id in confirmed.failed:
                    result.failed.append((p.letter, confirmed.failed[out.message_id]))
                    continue
                p.channel.basic_ack(p.message.delivery_tag)
                p.settled = True
                result.replayed.append(p.letter)
        return result

    @contextmanager
    def _session(self) -> Iterator[list[_Parked]]:
        connection = self._factory()
        try:
            try:
                connect_once(connection)
                # The parking lot may not exist yet on a fresh broker; declaring is harmless.
                declare(connection)
                channel = connection.channel()
            except (*connection.connection_errors, *connection.channel_errors) as exc:
                raise BrokerUnavailable(
                    f"cannot reach RabbitMQ at {connection.as_uri()}: {type(exc).__name__}: {exc}"
                ) from exc
            parked: list[_Parked] = []
            try:
                while (message := channel.basic_get(DEAD_QUEUE, no_ack=False)) is not None:
                    parked.append(_Parked(_describe(len(parked) + 1, message), message, channel))
                yield parked
            finally:
                returned = [p for p in parked if not p.settled]
                for p in returned:
                    channel.basic_reject(p.message.delivery_tag, requeue=True)
                _await_ready(channel, len(returned), self._timeout)
                channel.close()
        finally:
            connection.release()


def broker_address(broker_url: str) -> str:
    """The broker URL as it may be shown: the password masked, every node of a failover list
    (`amqp://a;amqp://b`) named."""
    shown = []
    for url in broker_url.split(";"):
        parts = urlsplit(url.strip())
        netloc = parts.hostname or ""
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        if parts.username:
            netloc = f"{parts.username}{':***' if parts.password else ''}@{netloc}"
        shown.append(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
    return ";".join(shown)


def _await_ready(channel: amqp.Channel, count: int, timeout: float) -> None:
    """Wait until the queue shows the returned messages as ready again.

    Note: a quorum queue applies a reject through its Raft log, after the reject frame was
    read: without this wait, a `list` right after another could find a message still
    "in flight" and miss it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, ready, _ = channel.queue_declare(DEAD_QUEUE, passive=True)
        if ready >= count:
            return
        time.sleep(0.01)


def _outgoing(parked: _Parked) -> Outgoing:
    message = parked.message
    headers = {k: v for k, v in (message.headers or {}).items() if k not in _DEATH_HEADERS}
    letter = parked.letter
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    return Outgoing(
        message_id=letter.message_id or letter.event_id or "",
        routing_key=letter.routing_key or "",
        body=body,
        exchange=EVENTS_EXCHANGE,
        headers=headers,
    )


def _describe(position: int, message: amqp.Message) -> DeadLetter:
    headers: Mapping[str, Any] = message.headers or {}
    deaths = headers.get("x-death") or []
    death: Mapping[str, Any] = deaths[0] if deaths and isinstance(deaths[0], Mapping) else {}
    routing_keys = death.get("routing-keys") or []
    envelope = _envelope(message.body)
    return DeadLetter(
        position=position,
        message_id=_text(message.properties.get("message_id")),
        event_id=_text(envelope.get("id")),
        type=_text(envelope.get("type")),
        request_id=_text(envelope.get("request_id")),
        reason=_text(headers.get(DEAD_REASON_HEADER)) or _text(death.get("reason")) or "unknown",
        source_queue=_text(headers.get(DEAD_QUEUE_HEADER)) or _text(death.get("queue")),
        routing_key=_text(headers.get(DEAD_ROUTING_KEY_HEADER))
        or (_text(routing_keys[0]) if routing_keys else None),
        dead_at=_when(headers.get(DEAD_AT_HEADER)) or _when(death.get("time")),
    )


def _envelope(body: Any) -> Mapping[str, Any]:
    # Only the envelope's ids and type are read; the data (question text) is never looked at.
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        # AMQP timestamps are whole seconds, UTC, without a zone.
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = _text(value)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_PARKED_NAMESPACE: Final = uuid.UUID("6f1d8e56-3c1e-4c55-9a55-5b2f4f3f0d11")
REASON_MAX: Final = 500


def parked(message: Any, *, reason: str, queue: str, now: datetime) -> Outgoing:
    """The dead letter for a consumed message that can never be processed: its original body
    and routing key, with why, from where and when in headers (the body is never altered)."""
    raw = message.body
    body = raw if isinstance(raw, bytes) else str(raw).encode()
    # A message without a message_id still gets a stable one, so a replay can name it.
    message_id = message.properties.get("message_id") or str(
        uuid.uuid5(_PARKED_NAMESPACE, hashlib.sha256(body).hexdigest())
    )
    routing_key = message.delivery_info.get("routing_key") or ""
    return Outgoing(
        message_id=message_id,
        routing_key=routing_key,
        body=body,
        exchange=DEAD_EXCHANGE,
        headers={
            # A reason may quote what was wrong with the message (a field name, a value): the
            # header is on the wire and in `kcc dead-letters list`, so it carries no BSN.
            DEAD_REASON_HEADER: redact_bsn(reason[:REASON_MAX])[0],
            DEAD_QUEUE_HEADER: queue,
            DEAD_ROUTING_KEY_HEADER: routing_key,
            DEAD_AT_HEADER: now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        },
    )
