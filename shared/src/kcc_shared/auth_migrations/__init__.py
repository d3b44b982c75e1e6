"""The auth tables' schema history (api_tokens, web_sessions; revisions in versions/).

The tables live where KCC_AUTH_DATABASE_URL says, else in each service's own database beside
its tables; either way they have their own version table (alembic_version_auth), and every
`kcc <service> migrate` (and `kcc migrate`) brings them to head. See kcc_shared.migrations.
"""

from __future__ import annotations

from sqlalchemy import MetaData

from kcc_shared.migrations import History

__all__ = ["HISTORY"]


def _metadata() -> list[MetaData]:
    from kcc_shared.auth import sessions_table, tokens_table

    metadata = MetaData()
    tokens_table(metadata)
    sessions_table(metadata)
    return [metadata]


HISTORY = History(
    name="auth",
    script_location="kcc_shared:auth_migrations",
    # The service's own migrate reads the same settings the service does: the auth tables in
    # KCC_AUTH_DATABASE_URL, else in KCC_DATABASE_URL.
    command="kcc <service> migrate",
    metadata=_metadata,
)
