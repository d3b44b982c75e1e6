"""A parked message's reason header never carries a BSN (it is on the wire and in the CLI)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from kcc_shared.deadletters import parked
from kcc_shared.topology import DEAD_REASON_HEADER


def test_the_reason_of_a_parked_message_is_redacted() -> None:
    message = SimpleNamespace(
        body=b'{"type": "request.submitted"}',
        properties={"message_id": "m-1"},
        delivery_info={"routing_key": "request.submitted"},
    )

    outgoing = parked(
        message,
        reason="invalid event: {'data': {'bsn 123.456.782': ['Unknown field.']}}",
        queue="router.work",
        now=datetime(2026, 3, 2, tzinfo=UTC),
    )

    assert outgoing.headers is not None
    assert outgoing.headers[DEAD_REASON_HEADER] == (
        "invalid event: {'data': {'[BSN]': ['Unknown field.']}}"
    )
    assert outgoing.body == message.body  # the body is never altered (it can be replayed)
