"""The SLA monitor's schema history (Alembic, revisions in versions/); see kcc_shared.migrations."""

from __future__ import annotations

from kcc_shared.migrations import History
from sqlalchemy import MetaData


def _metadata() -> list[MetaData]:
    from sla_monitor import tables

    return [tables.metadata]


HISTORY = History(
    name="sla",
    script_location="sla_monitor:migrations",
    command="kcc sla migrate",
    metadata=_metadata,
)
