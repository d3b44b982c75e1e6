"""The back office's schema history (Alembic, revisions in versions/); see kcc_shared.migrations."""

from __future__ import annotations

from kcc_shared.migrations import History
from sqlalchemy import MetaData


def _metadata() -> list[MetaData]:
    from backoffice import store

    return [store.metadata]


HISTORY = History(
    name="backoffice",
    script_location="backoffice:migrations",
    command="kcc backoffice migrate",
    metadata=_metadata,
)
