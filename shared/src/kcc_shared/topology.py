"""The exchanges and queues of the wire contract, declared from one place."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from kombu.connection import Connection
from kombu.entity import Exchange, Queue, binding

__all__ = [
    "DEAD_AT_HEADER",
    "DEAD_EXCHANGE",
    "DEAD_QUEUE",
    "DEAD_QUEUE_HEADER",
    "DEAD_REASON_HEADER",
    "DEAD_ROUTING_KEY_HEADER",
    "DELIVERY_LIMIT",
    "EVENTS_EXCHANGE",
    "SERVICE_BINDINGS",
    "dead_exchange",
    "dead_letter_queue",
    "declare",
    "declare_service_queues",
    "department_queue",
    "department_queue_name",
    "events_exchange",
    "queue_arguments",
    "routed_key",
    "service_queue",
    "service_queues",
]

EVENTS_EXCHANGE: Final = "kcc.events"
DEAD_EXCHANGE: Final = "kcc.dead"
DEAD_QUEUE: Final = "kcc.dead"

# With limit N a message is delivered N+1 times, then dead-lettered with reason
# `delivery_limit` (RabbitMQ 3.10 has no default limit: without it a poison message loops).
DELIVERY_LIMIT: Final = 5

# Service queues and the routing keys they are bound with.
SERVICE_BINDINGS: Final[Mapping[str, tuple[str, ...]]] = {
    "router.work": ("request.submitted", "request.reroute_requested"),
    "intake.events": ("request.#",),
    "backoffice.events": (
        # The routed event names the department, not the question: the back office keeps the
        # (redacted) question, channel and agent from the submitted event.
        "request.submitted",
        "request.clarified",
        "request.cancelled",
        "request.reopened",
        "request.rated",
        # The department sees how often its reusable answers helped at the desk.
        "request.answer_reused",
    ),
    "sla-monitor.events": ("request.#",),
}

# Headers a consumer sets when it parks a message itself (the broker adds x-death).
DEAD_REASON_HEADER: Final = "x-kcc-dead-reason"
DEAD_QUEUE_HEADER: Final = "x-kcc-dead-queue"
DEAD_ROUTING_KEY_HEADER: Final = "x-kcc-dead-routing-key"
DEAD_AT_HEADER: Final = "x-kcc-dead-at"


def events_exchange() -> Exchange:
    return Exchange(EVENTS_EXCHANGE, type="topic", durable=True)


def dead_exchange() -> Exchange:
    # Fanout: whatever the original routing key, a dead letter lands in the parking lot.
    return Exchange(DEAD_EXCHANGE, type="fanout", durable=True)


def queue_arguments() -> dict[str, Any]:
    """Arguments of every work queue. Redeclaring with others fails with 406: keep them here."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_EXCHANGE,
        # at-least-once dead-lettering needs the strategy plus reject-publish overflow.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def department_queue_name(department: str) -> str:
    return f"kcc.dept.{department}"


def routed_key(department: str) -> str:
    return f"request.routed.{department}"


def department_queue(department: str) -> Queue:
    return Queue(
        department_queue_name(department),
        exchange=events_exchange(),
        routing_key=routed_key(department),
        durable=True,
        queue_arguments=queue_arguments(),
    )


def service_queue(name: str) -> Queue:
    keys = SERVICE_BINDINGS.get(name)
    if keys is None:
        raise KeyError(f"unknown service queue {name!r}; known: {', '.join(SERVICE_BINDINGS)}")
    exchange = events_exchange()
    return Queue(
        name,
        bindings=[binding(exchange, routing_key=key) for key in keys],
        durable=True,
        queue_arguments=queue_arguments(),
    )


def service_queues() -> list[Queue]:
    """Every service's queue. Publishers declare them all on connect, so an event published
    before a consumer ever ran waits for it instead of being dropped as unroutable."""
    return [service_queue(name) for name in SERVICE_BINDINGS]


def declare_service_queues(connection: Connection) -> None:
    declare(connection, service_queues())


def dead_letter_queue() -> Queue:
    # The parking lot itself dead-letters nowhere: messages stay until replayed or purged.
    return Queue(
        DEAD_QUEUE,
        exchange=dead_exchange(),
        routing_key="",
        durable=True,
        queue_arguments={"x-queue-type": "quorum"},
    )


def declare(connection: Connection, queues: Iterable[Queue] = ()) -> None:
    """Declare both exchanges, the parking lot, and the given queues with their bindings."""
    channel = connection.default_channel
    events_exchange()(channel).declare()
    dead_exchange()(channel).declare()
    dead_letter_queue()(channel).declare()
    for queue in queues:
        queue(channel).declare()


def declare_departments(connection: Connection, departments: Iterable[str]) -> None:
    declare(connection, [department_queue(d) for d in departments])
