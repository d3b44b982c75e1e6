"""Publishing batches of events with publisher confirms, bounded in time."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import amqp
from kombu.connection import Connection
from kombu.messaging import Producer

from kcc_shared.topology import EVENTS_EXCHANGE

__all__ = [
    "NACKED",
    "Outgoing",
    "PublishError",
    "PublishResult",
    "Publisher",
    "broker_connection",
    "broker_ssl_options",
    "connect_once",
    "connection_factory",
]

log = logging.getLogger(__name__)

# Why a message failed when the broker refused it (basic.nack).
NACKED = "nacked by the broker"


class PublishError(Exception):
    """The broker did not confirm a batch (unreachable, timeout, channel closed)."""


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: an event body and where it goes."""

    message_id: str
    routing_key: str
    body: str | bytes  # bytes: a parked body that may not even be UTF-8 is kept as it came
    exchange: str = EVENTS_EXCHANGE
    headers: Mapping[str, Any] | None = None


@dataclass
class PublishResult:
    """Which messages the broker confirmed, and why the others failed."""

    confirmed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def nacked(self) -> list[str]:
        """The failed messages the broker refused (a full queue, a quorum queue without a
        leader): the broker's state, not the message's; unroutable ones were returned."""
        return [m for m, why in self.failed.items() if why == NACKED]


@dataclass(eq=False)
class Sent:
    """A batch handed to the broker: its delivery tags, or the result when there is nothing
    to wait for (an empty batch, or memory://, which has no confirms)."""

    tags: dict[int, str]
    result: PublishResult | None = None


class Publisher:
    """Publishes on a connection of its own with batched confirms.

    Per-message confirms cap at ~800 msgs/s here; a batch published without waiting and
    confirmed with one drain reaches several thousand. Any error throws the connection
    away: py-amqp credits a confirm to "the next ack", so a late ack on a reused channel could
    confirm the wrong message. `memory://` has no confirms: there, a publish is a confirm.
    """

    def __init__(
        self,
        connection_factory: Callable[[], Connection],
        *,
        timeout: float,
        on_connect: Callable[[Connection], None] | None = None,
    ) -> None:
        self._connection_factory = connection_factory
        self._timeout = timeout
        # Declares what this publisher needs (exchanges, the queues that must not miss a
        # message) on every new connection, so a fresh or reset broker is set up before use.
        self._on_connect = on_connect
        self._connection: Connection | None = None
        self._channel: Any = None
        self._next_tag = 1
        self._unconfirmed: dict[int, str] = {}
        self._nacked: set[int] = set()
        self._returned: dict[str, str] = {}
        self._in_flight: Sent | None = None

    def publish(self, messages: Sequence[Outgoing]) -> PublishResult:
        """Publish all messages and wait for their confirms; raise PublishError on failure."""
        return self.wait(self.send(messages))

    def send(self, messages: Sequence[Outgoing]) -> Sent:
        """Publish all messages without waiting for their confirms; `wait` collects them.

        A caller can do other work while the broker writes the batch (the router routes its
        next batch). One batch at a time: the previous one must have been waited for.
        """
        if self._in_flight is not None:
            raise RuntimeError("send() while an earlier batch still awaits its confirms")
        if not messages:
            return Sent(tags={}, result=PublishResult())
        try:
            channel = self._ensure_channel()
            if not isinstance(channel, amqp.Channel):
                return Sent(tags={}, result=self._publish_unconfirmed(channel, messages))
            sent = Sent(tags=self._send_confirmed(channel, messages))
        except (TimeoutError, OSError, amqp.exceptions.AMQPError) as exc:
            self.close(abandon=True)
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc
        self._in_flight = sent
        return sent

    def wait(self, sent: Sent) -> PublishResult:
        """Wait for the confirms of a batch from `send`; raise PublishError on failure."""
        if sent.result is not None:
            return sent.result
        if sent is not self._in_flight:
            raise PublishError("the batch was lost with its connection; publish it again")
        try:
            result = self._await_confirms(sent.tags)
        except PublishError:
            self.close(abandon=True)
            raise
        except (TimeoutError, OSError, amqp.exceptions.AMQPError) as exc:
            self.close(abandon=True)
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self._in_flight = None
        if self._nacked:
            # The next batch goes out on a new channel. After a cluster node died, a channel
            # on a surviving node went on nacking every publish to the quorum queues whose
            # leader had moved, for minutes, while new channels were accepted
            # (tests/faults/test_cluster.py: 420 of 800 stuck in the intake's outbox).
            self.close(abandon=True)
        return result

    def _ensure_channel(self) -> Any:
        if self._channel is not None:
            return self._channel
        connection = self._connection_factory()
        try:
            connect_once(connection)
            if self._on_connect is not None:
                self._on_connect(connection)
            channel = connection.channel()
            if isinstance(channel, amqp.Channel):
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
                channel.events["basic_return"].add(self._on_return)
        except Exception:
            connection.release()
            raise
        self._connection, self._channel, self._next_tag = connection, channel, 1
        return channel

    def _send_confirmed(
        self, channel: amqp.Channel, messages: Sequence[Outgoing]
    ) -> dict[int, str]:
        self._unconfirmed.clear()
        self._nacked.clear()
        self._returned.clear()
        tags: dict[int, str] = {}
        for message in messages:
            amqp_message = amqp.Message(
                message.body,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=message.message_id,
                application_headers=dict(message.headers or {}),
            )
            # mandatory: a message no queue is bound for comes back instead of vanishing.
            channel.basic_publish(
                amqp_message,
                exchange=message.exchange,
                routing_key=message.routing_key,
                mandatory=True,
            )
            tags[self._next_tag] = message.message_id
            self._unconfirmed[self._next_tag] = message.message_id
            self._next_tag += 1
        return tags

    def _await_confirms(self, tags: Mapping[int, str]) -> PublishResult:
        deadline = time.monotonic() + self._timeout
        assert self._connection is not None
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishError(
                    f"no confirm within {self._timeout:.1f}s for {len(self._unconfirmed)} of "
                    f"{len(tags)} messages"
                )
            self._connection.drain_events(timeout=remaining)
        result = PublishResult()
        for tag, message_id in tags.items():
            if message_id in self._returned:
                result.failed[message_id] = self._returned[message_id]
            elif tag in self._nacked:
                result.failed[message_id] = NACKED
            else:
                result.confirmed.append(message_id)
        return result

    def _publish_unconfirmed(self, channel: Any, messages: Sequence[Outgoing]) -> PublishResult:
        producer = Producer(channel)
        for message in messages:
            producer.publish(
                message.body,
                exchange=message.exchange,
                routing_key=message.routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=message.message_id,
                headers=dict(message.headers or {}),
            )
        return PublishResult(confirmed=[m.message_id for m in messages])

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        for tag in self._settle(delivery_tag, multiple):
            self._nacked.add(tag)

    def _settle(self, delivery_tag: int, multiple: bool) -> list[int]:
        tags = [t for t in self._unconfirmed if t <= delivery_tag] if multiple else [delivery_tag]
        for tag in tags:
            self._unconfirmed.pop(tag, None)
        return tags

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        message_id = message.properties.get("message_id", "")
        self._returned[message_id] = f"unroutable: no queue bound for {routing_key!r} on {exchange}"

    def close(self, *, abandon: bool = False) -> None:
        """Drop the connection; a batch sent on it and not yet confirmed counts as failed.

        `abandon` (after an error): close the socket without AMQP's goodbye. A polite close
        waits for the broker's answer without a time limit, and a broker that blocks
        publishers (memory alarm) or a silent network never gives one.
        """
        self._in_flight = None
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            try:
                connection.collect() if abandon else connection.release()
            except Exception:  # closing a broken connection may fail in many ways; it is gone
                log.debug("publisher_close_failed", exc_info=True)


def connect_once(connection: Connection) -> Connection:
    """One connection attempt per broker node, each bounded by the connection's
    connect_timeout, without pauses.

    Note: kombu's `Connection.connect()` retries once after a fixed 2 s pause (the
    transport_options intervals do not reach it), which would stretch every publish timeout.
    A ';'-separated URL names a cluster's nodes: kombu moves to the next node only between
    retries, so with no retry a first node that is down stopped every publish while two nodes
    were up (tests/faults/test_cluster.py).
    """
    connection.ensure_connection(
        max_retries=len(connection.alt) - 1 if connection.alt else 0,
        interval_start=0,
        interval_step=0,
        interval_max=0,
        reraise_as_library_errors=False,
    )
    return connection


def broker_ssl_options(broker_url: str) -> dict[str, Any] | None:
    """The TLS options of an amqps:// URL: verify the broker's certificate *and* its host name.

    kombu turns amqps:// into `ssl=True`, and py-amqp then checks the certificate chain but,
    without a server name, not whether the certificate is for the host in the URL: any
    certificate a public CA signed would do, for any name. Passing the URL's host name as
    `server_hostname` (also sent as SNI) with CERT_REQUIRED makes py-amqp turn on
    check_hostname. Other schemes (amqp://, memory://) get None.
    """
    parts = urlsplit(broker_url)
    if parts.scheme != "amqps":
        return None
    if not parts.hostname:
        raise ValueError("an amqps:// broker URL needs a host name to verify")
    return {"server_hostname": parts.hostname, "cert_reqs": ssl.CERT_REQUIRED}


def broker_connection(broker_url: str, **options: Any) -> Connection:
    """A kombu Connection to `broker_url`; for amqps:// with the host name verified. Every
    connection the services make goes through here."""
    tls = broker_ssl_options(broker_url)
    if tls is not None:
        options["ssl"] = tls
    return Connection(broker_url, **options)


def connection_factory(broker_url: str, *, timeout: float) -> Callable[[], Connection]:
    """Connections that give up instead of retrying forever (kombu's default)."""

    def make() -> Connection:
        return broker_connection(
            broker_url,
            connect_timeout=timeout,
            transport_options={
                "max_retries": 1,
                "interval_start": 0,
                "interval_step": 0.5,
                "interval_max": 1,
            },
        )

    return make
