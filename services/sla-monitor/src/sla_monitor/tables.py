"""The SLA monitor's tables (their schema history is migrations/) and the IN-list size every
look-up by id uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from kcc_shared.consumer import processed_events_table
from kcc_shared.db import UtcDateTime
from kcc_shared.outbox import outbox_table
from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text

BigInt = Integer().with_variant(BigInteger(), "postgresql")
# Ids per IN (...) list: a recompute or a large batch is looked up in pieces of this size.
_IN_LIST_MAX: Final = 1000

metadata = MetaData()

events_table = Table(
    "sla_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_sla_events_request", "request_id"),
)

clocks_table = Table(
    "sla_clocks",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("segment", String(36), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("round", Integer, primary_key=True),
    Column("department", String(64), nullable=False),
    Column("priority", String(16), nullable=False),
    Column("target_s", Integer, nullable=False),
    Column("warning_us", BigInt, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("status", String(8), nullable=False),
    Column("elapsed_us", BigInt, nullable=False),
    Column("running_since", UtcDateTime, nullable=True),
    # For running clocks: elapsed = B(now) - origin_us (see clocks.business_origin_us).
    Column("origin_us", BigInt, nullable=True),
    Column("closed_at", UtcDateTime, nullable=True),
    Column("close_reason", String(16), nullable=True),
    Column("outcome", String(8), nullable=True),
    Column("next_due", UtcDateTime, nullable=True),
    # Flags survive recomputes: a warning or breach is announced (and counted) once per clock.
    Column("warned", Boolean, nullable=False, default=False),
    Column("breached", Boolean, nullable=False, default=False),
    Column("breached_at", UtcDateTime, nullable=True),
    Column("observed", Boolean, nullable=False, default=False),
    Index("ix_sla_clocks_due", "status", "next_due"),
    Index("ix_sla_clocks_origin", "kind", "status", "department", "origin_us"),
    Index("ix_sla_clocks_paused", "kind", "status", "department", "elapsed_us"),
    Index("ix_sla_clocks_closed", "closed_at"),
    Index("ix_sla_clocks_breached", "breached_at"),
)

requests_table = Table(
    "sla_requests",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("department", String(64), nullable=True),
    Column("priority", String(16), nullable=True),
    Column("state", String(32), nullable=False),
)

# Open requests per (department, state), kept in step with sla_requests in the same
# transaction, so a scrape reads a few rows instead of counting every open request.
open_counts_table = Table(
    "sla_open_counts",
    metadata,
    Column("department", String(64), primary_key=True),
    Column("state", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
)

handoffs_table = Table(
    "sla_handoffs",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("from_department", String(64), nullable=False),
    Column("to_department", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_sla_handoffs_at", "occurred_at"),
)

ratings_table = Table(
    "sla_ratings",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("department", String(64), nullable=False),
    Column("score", Integer, nullable=False),
    Column("thanks", Boolean, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_sla_ratings_at", "occurred_at"),
)

# New tables (migration 0002 adds them to an existing store). Only the team, never the agent:
# the figures are per team.
submissions_table = Table(
    "sla_submissions",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("team", String(64), nullable=True),
)

team_activity_table = Table(
    "sla_team_activity",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("request_id", String(36), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_sla_team_activity_at", "occurred_at"),
)

# "Beantwoord zonder doorzetten": a KCC-medewerker answered a citizen with a department's
# reusable answer instead of filing a question (request.answer_reused). The SLA monitor keeps
# no category, so it counts per department only.
answer_reuses_table = Table(
    "sla_answer_reuses",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("department", String(64), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_sla_answer_reuses_at", "occurred_at"),
)

processed = processed_events_table(metadata)
outbox = outbox_table(metadata)


def chunks(values: list[str], size: int = _IN_LIST_MAX) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
