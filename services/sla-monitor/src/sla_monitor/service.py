"""What the SLA monitor's HTTP side needs: the store, the organisation and the clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from kcc_shared.organisation import Organisation

from sla_monitor.store import SlaStore

CONTEXT_EXTENSION: Final = "kcc.sla_monitor"


@dataclass(frozen=True)
class SlaContext:
    store: SlaStore
    organisation: Organisation
    clock: Callable[[], datetime]

    def summary(self, window: str) -> dict[str, Any]:
        now = self.clock()
        return {
            "window": window,
            "generated_at": now,
            "departments": self.store.summary(window, now),
        }
