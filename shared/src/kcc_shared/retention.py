"""Retention: old rows of the tables that only grow are deleted in small batches.

`processed_events` is what makes a redelivery a no-op, so its retention is the one that
matters: a row is only deleted once no copy of its event can still arrive. A copy arrives
within minutes (a requeue with back-off, the quorum queue's delivery limit, an outbox
republish after a crash); a replay from kcc.dead also reaches the queues that applied the
event, so `kcc dead-letters replay` refuses messages parked longer than the retention. Rows
younger than `MINIMUM_DAYS` are never deleted, whatever is asked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import click
from sqlalchemy import ColumnElement, Engine, Table, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

from kcc_shared.db import write

__all__ = [
    "DEFAULT_DAYS",
    "MINIMUM_DAYS",
    "PruneTimer",
    "Target",
    "outbox_target",
    "processed_target",
    "prune",
    "prune_command",
]

log = logging.getLogger(__name__)

# The default keeps a month; the minimum a week (longer than the outbox relay's own purge of
# sent rows, and far longer than any redelivery: see the module docstring).
DEFAULT_DAYS: Final = 30
MINIMUM_DAYS: Final = 7
# Rows per delete transaction: short transactions never hold the writers up for long.
BATCH: Final = 1000
# Exit status for a bad option or setting (nothing was deleted).
EXIT_USAGE: Final = 2


@dataclass(frozen=True)
class Target:
    """A table that only grows: rows whose `stamp` is before the cutoff may go.

    `key` is the single-column primary key the batches are deleted by; `keep_newest` keeps
    the row with the highest key (a feed whose readers resume from the last number).
    `ordered`: the key grows with time, so the oldest rows are found first in key order;
    a random key (an event id) is scanned in the table's own order instead, where the
    rows written first come first as well."""

    table: Table
    stamp: str
    key: str
    keep_newest: bool = False
    ordered: bool = True

    @property
    def name(self) -> str:
        return self.table.name


def processed_target(table: Table) -> Target:
    return Target(table, stamp="processed_at", key="event_id", ordered=False)


def outbox_target(table: Table) -> Target:
    # sent_at < cutoff is never true for an unsent row (NULL): those wait for the relay.
    return Target(table, stamp="sent_at", key="seq")


def _old(target: Target, cutoff: datetime, newest: Any) -> ColumnElement[bool]:
    condition = target.table.c[target.stamp] < cutoff
    if target.keep_newest and newest is not None:
        condition = condition & (target.table.c[target.key] < newest)
    return condition


def prune(
    engine: Engine,
    targets: Sequence[Target],
    cutoff: datetime,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
) -> dict[str, int]:
    """Delete (or with `dry_run` count) the rows older than `cutoff`; rows per table."""
    counts: dict[str, int] = {}
    for target in targets:
        t = target.table
        key = t.c[target.key]
        with engine.connect() as connection:
            newest = connection.execute(select(func.max(key))).scalar()
            if dry_run:
                counts[target.name] = int(
                    connection.execute(
                        select(func.count()).select_from(t).where(_old(target, cutoff, newest))
                    ).scalar_one()
                )
                continue
        deleted = 0
        while True:
            # Oldest first by key: the scan meets the old rows first (they were written first).
            with write(engine) as connection:
                keys = list(
                    connection.execute(
                        select(key).where(_old(target, cutoff, newest)).order_by(key).limit(batch)
                    ).scalars()
                )
                if keys:
                    connection.execute(delete(t).where(key.in_(keys)))
            deleted += len(keys)
            if len(keys) < batch:
                break
        counts[target.name] = deleted
    return counts


def cutoff_for(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)


def check_days(days: int) -> str | None:
    """Why `days` is not an acceptable retention, or None."""
    if days < MINIMUM_DAYS:
        return (
            f"must be at least {MINIMUM_DAYS} days (a processed event must outlive every "
            "redelivery of its message)"
        )
    if days > 36500:
        return "must be at most 36500 days"
    return None


def prune_command(
    service: str,
    targets: Callable[[], Sequence[Target]],
) -> click.Command:
    """`kcc <service> prune`: the same options and output for every service."""

    @click.command("prune")
    @click.option(
        "--older-than",
        "older_than",
        type=str,
        default=None,
        metavar="DAYS",
        help=(
            f"Delete rows older than this many days (at least {MINIMUM_DAYS}; "
            "default KCC_RETENTION_DAYS, itself 30 by default)."
        ),
    )
    @click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
    def command(older_than: str | None, dry_run: bool) -> None:
        """Delete old processed-event ids, sent outbox rows and other rows that only grow."""
        from kcc_shared.commands import current_config
        from kcc_shared.db import make_engine

        config = current_config(f"{service} prune")
        days = config.retention_days
        if older_than is not None:
            try:
                days = int(older_than.strip())
            except ValueError:
                click.echo(
                    f"{service} prune: --older-than: {older_than!r} is not a whole number of "
                    "days. Nothing was deleted.",
                    err=True,
                )
                raise click.exceptions.Exit(EXIT_USAGE) from None
        problem = check_days(days)
        if problem is not None:
            click.echo(
                f"{service} prune: --older-than {days}: {problem}. Nothing was deleted.", err=True
            )
            raise click.exceptions.Exit(EXIT_USAGE)
        engine = make_engine(config.database_url)
        try:
            counts = prune(engine, targets(), cutoff_for(days), dry_run=dry_run)
        except SQLAlchemyError as exc:
            # The driver's message may carry a URL; the class name and the advice say enough.
            click.echo(
                f"{service} prune: the database failed ({type(exc).__name__}); is it reachable "
                f"and migrated (`kcc {service} migrate`)? Batches already deleted stay deleted.",
                err=True,
            )
            raise click.exceptions.Exit(1) from None
        finally:
            engine.dispose()
        verb = "would delete" if dry_run else "deleted"
        for table, count in counts.items():
            click.echo(f"{table}: {verb} {count} rows older than {days} days")

    return command


class PruneTimer:
    """Prunes at start and then every `interval` in a daemon thread (`kcc dev`)."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        targets: Sequence[Target],
        *,
        days: int = DEFAULT_DAYS,
        interval: timedelta = timedelta(hours=6),
    ) -> None:
        self._name = name
        self._engine = engine
        self._targets = list(targets)
        self._days = days
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"prune-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                counts = prune(self._engine, self._targets, cutoff_for(self._days))
                log.info("pruned", extra={"service": self._name, "deleted": counts})
            except Exception:  # a locked or missing table waits for the next round
                log.exception("prune_failed", extra={"service": self._name})
            self._stopping.wait(self._interval.total_seconds())
