"""What the intake's views need, assembled once per process."""

from __future__ import annotations

from dataclasses import dataclass

from kcc_shared.organisation import Organisation
from kcc_shared.outbox import OutboxRelay
from kcc_shared.sse import LiveFeed

from intake.store import RequestStore
from intake.suggestions import Suggestions


@dataclass
class IntakeContext:
    store: RequestStore
    organisation: Organisation
    relay: OutboxRelay
    feed: LiveFeed
    suggestions: Suggestions

    def committed(self) -> None:
        """A write committed an outbox row: publish it now rather than at the next poll."""
        self.relay.wake()
