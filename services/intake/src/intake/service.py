"""What the intake's views need, assembled once per process."""

from __future__ import annotations

from dataclasses import dataclass

from kcc_shared.organisation import Organisation
from kcc_shared.outbox import OutboxRelay

from intake.store import RequestStore
from intake.stream import UpdateFeed
from intake.suggestions import Suggestions


@dataclass
class IntakeContext:
    store: RequestStore
    organisation: Organisation
    relay: OutboxRelay
    feed: UpdateFeed
    suggestions: Suggestions

    def committed(self) -> None:
        """A write committed an outbox row: publish it now rather than at the next poll."""
        self.relay.wake()
