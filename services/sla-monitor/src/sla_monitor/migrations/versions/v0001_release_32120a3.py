"""The SLA monitor's tables as release 32120a3 created them.

sla_events, sla_clocks, sla_requests, sla_open_counts, sla_handoffs, sla_ratings, outbox,
processed_events.

Revision ID: 0001
Revises:
Create Date: release 32120a3 (generated from that commit's table definitions, reviewed)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.Integer().with_variant(sa.BigInteger(), "postgresql"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("routing_key", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=36), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_unsent",
            ["seq"],
            unique=False,
            postgresql_where=sa.text("sent_at IS NULL"),
            sqlite_where=sa.text("sent_at IS NULL"),
        )

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("queue", sa.String(length=255), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "sla_clocks",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("segment", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("target_s", sa.Integer(), nullable=False),
        sa.Column(
            "warning_us", sa.Integer().with_variant(sa.BigInteger(), "postgresql"), nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column(
            "elapsed_us", sa.Integer().with_variant(sa.BigInteger(), "postgresql"), nullable=False
        ),
        sa.Column("running_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "origin_us", sa.Integer().with_variant(sa.BigInteger(), "postgresql"), nullable=True
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.Column("outcome", sa.String(length=8), nullable=True),
        sa.Column("next_due", sa.DateTime(timezone=True), nullable=True),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.Column("breached_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("observed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "segment", "kind", "round"),
    )
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.create_index("ix_sla_clocks_breached", ["breached_at"], unique=False)
        batch_op.create_index("ix_sla_clocks_closed", ["closed_at"], unique=False)
        batch_op.create_index("ix_sla_clocks_due", ["status", "next_due"], unique=False)
        batch_op.create_index(
            "ix_sla_clocks_origin", ["kind", "status", "department", "origin_us"], unique=False
        )
        batch_op.create_index(
            "ix_sla_clocks_paused", ["kind", "status", "department", "elapsed_us"], unique=False
        )

    op.create_table(
        "sla_events",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.create_index("ix_sla_events_request", ["request_id"], unique=False)

    op.create_table(
        "sla_handoffs",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("from_department", sa.String(length=64), nullable=False),
        sa.Column("to_department", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("sla_handoffs", schema=None) as batch_op:
        batch_op.create_index("ix_sla_handoffs_at", ["occurred_at"], unique=False)

    op.create_table(
        "sla_open_counts",
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("department", "state"),
    )
    op.create_table(
        "sla_ratings",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("thanks", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    with op.batch_alter_table("sla_ratings", schema=None) as batch_op:
        batch_op.create_index("ix_sla_ratings_at", ["occurred_at"], unique=False)

    op.create_table(
        "sla_requests",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=True),
        sa.Column("priority", sa.String(length=16), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )


def downgrade() -> None:
    op.drop_table("sla_requests")
    with op.batch_alter_table("sla_ratings", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_ratings_at")

    op.drop_table("sla_ratings")
    op.drop_table("sla_open_counts")
    with op.batch_alter_table("sla_handoffs", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_handoffs_at")

    op.drop_table("sla_handoffs")
    with op.batch_alter_table("sla_events", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_events_request")

    op.drop_table("sla_events")
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_clocks_paused")
        batch_op.drop_index("ix_sla_clocks_origin")
        batch_op.drop_index("ix_sla_clocks_due")
        batch_op.drop_index("ix_sla_clocks_closed")
        batch_op.drop_index("ix_sla_clocks_breached")

    op.drop_table("sla_clocks")
    op.drop_table("processed_events")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_unsent",
            postgresql_where=sa.text("sent_at IS NULL"),
            sqlite_where=sa.text("sent_at IS NULL"),
        )

    op.drop_table("outbox")
