"""The intake's schema history (Alembic, revisions in versions/); see kcc_shared.migrations."""

from __future__ import annotations

from kcc_shared.migrations import History
from sqlalchemy import MetaData


def _metadata() -> list[MetaData]:
    from intake import knowledge, store

    return [store.metadata, knowledge.metadata]


HISTORY = History(
    name="intake",
    script_location="intake:migrations",
    command="kcc intake migrate",
    metadata=_metadata,
)
