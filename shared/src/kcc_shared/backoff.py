"""The one retry policy: how long to wait before trying again after a failure.

Used wherever work waits for something to heal: a consumer holding its batch while the
database is unreachable, the router holding its batch while the broker does not confirm (a
memory alarm), the outbox relay between failed sweeps, and a message whose handler failed
(requeued after a delay that grows with its delivery count, until the queue's delivery limit).

The policy is capped exponential back-off: RETRY.first seconds after the first failure,
doubling with every further one, never more than RETRY.cap. A long outage therefore costs one
attempt every few seconds, and work resumes at most RETRY.cap seconds after it heals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["RETRY", "Backoff", "pause"]


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off: `first`, then doubling, at most `cap` seconds."""

    first: float
    cap: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row (1 for the first)."""
        if failures < 1:
            return 0.0
        return float(min(self.cap, self.first * 2 ** min(failures - 1, 32)))


# Half a second after the first failure, then 1, 2, 4, 5, 5, ... seconds.
RETRY: Final = Backoff(first=0.5, cap=5.0)


def pause(
    seconds: float, stopping: Callable[[], bool], step: Callable[[float], None] = time.sleep
) -> None:
    """Wait `seconds`, in steps of at most one second, returning early once `stopping()`.

    `step(s)` does the waiting: a consumer passes one that keeps its connection's heartbeats
    going, so a long wait never looks like a dead connection to the broker.
    """
    deadline = time.monotonic() + seconds
    while not stopping() and (left := deadline - time.monotonic()) > 0:
        step(min(left, 1.0))
