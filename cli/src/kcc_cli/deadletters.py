"""`kcc dead-letters`: look into the parking lot (kcc.dead) and replay what was parked."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click
from kcc_shared.commands import current_config, organisation_or_exit
from kcc_shared.deadletters import (
    BrokerUnavailable,
    DeadLetter,
    DeadLetterError,
    DeadLetterNotFound,
    ParkingLot,
)
from kcc_shared.retention import cutoff_for
from kcc_shared.topology import SERVICE_BINDINGS, department_queue_name

__all__ = ["dead_letters_group"]

EXIT_NOT_FOUND = 1
EXIT_UNAVAILABLE = 2
_REASON_WIDTH = 60


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Parked messages: ids, type and reason (never the request's text)."""


@contextmanager
def _parking_lot() -> Iterator[ParkingLot]:
    config = current_config("dead-letters")
    try:
        yield ParkingLot(config.broker_url, timeout=config.publish_timeout)
    except DeadLetterNotFound as exc:
        click.echo(f"Error: {exc}; see `kcc dead-letters list`. Nothing was replayed.", err=True)
        raise click.exceptions.Exit(EXIT_NOT_FOUND) from None
    except BrokerUnavailable as exc:
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_UNAVAILABLE) from None
    except DeadLetterError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_UNAVAILABLE) from None


def _known_queues() -> list[str]:
    """The queues a message can be parked from: every service's, and every department's of
    the configured organisation."""
    organisation = organisation_or_exit("dead-letters", current_config("dead-letters"))
    departments = list(organisation.departments)
    return [*SERVICE_BINDINGS, *(department_queue_name(d) for d in departments)]


def _check_queue(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    known = _known_queues()
    if value not in known:
        raise click.BadParameter(f"unknown queue {value!r}; known: {', '.join(known)}")
    return value


@dead_letters_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@click.option(
    "--queue",
    callback=_check_queue,
    help="Only messages parked from this queue (e.g. router.work, kcc.dept.burgerzaken).",
)
def list_command(as_json: bool, queue: str | None) -> None:
    """List every parked message, oldest first, with how long it has been parked, leaving
    the parking lot as it was. Says which broker it looked at."""
    with _parking_lot() as lot:
        letters = lot.letters()
        where = lot.where
    if queue is not None:
        letters = [letter for letter in letters if letter.source_queue == queue]
    now = datetime.now(UTC)
    if as_json:
        click.echo(json.dumps([letter.to_dict(now) for letter in letters], indent=2))
        return
    scope = f" from {queue}" if queue else ""
    if not letters:
        click.echo(f"No parked messages{scope} in {where}.")
        if not os.environ.get("KCC_BROKER_URL"):
            click.echo(_NOT_CONFIGURED)
        return
    rows = [_row(letter, now) for letter in letters]
    header = (
        "#",
        "id",
        "type",
        "request",
        "reason",
        "from queue",
        "routing key",
        "parked at",
        "parked for",
    )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    ages = [a for a in (letter.age_seconds(now) for letter in letters) if a is not None]
    oldest = f"; the oldest parked for {_age(max(ages))}" if ages else ""
    plural = "s" if len(letters) != 1 else ""
    click.echo(f"{len(letters)} parked message{plural}{scope} in {where}{oldest}.")
    if not os.environ.get("KCC_BROKER_URL"):
        click.echo(_NOT_CONFIGURED)


# KCC_BROKER_URL unset: the default broker was read, which `kcc dev` never uses.
_NOT_CONFIGURED = (
    "KCC_BROKER_URL is not set, so this looked at the default broker. `kcc dev` does not use "
    "RabbitMQ: it keeps its dead letters in its own process (memory://), where no other "
    "command can read them; it logs each message it parks as message_dead_lettered (queue, "
    "reason, message id) in its own output."
)


@dead_letters_group.command("replay")
@click.option(
    "--id", "ids", multiple=True, help="Event or message id to replay (repeat for several)."
)
@click.option("--all", "replay_all", is_flag=True, help="Replay every parked message.")
def replay_command(ids: tuple[str, ...], replay_all: bool) -> None:
    """Publish parked messages to kcc.events again with their original routing key.

    A message leaves the parking lot only after the broker confirmed its republish.
    """
    if bool(ids) == replay_all:
        raise click.UsageError("give --id ID (one or more) or --all")
    days = current_config("dead-letters").retention_days
    now = datetime.now(UTC)
    with _parking_lot() as lot:
        result = lot.replay(None if replay_all else ids, parked_since=cutoff_for(days, now))
    for letter in result.replayed:
        click.echo(
            f"replayed {letter.id} ({letter.type or 'unknown type'}) to {letter.routing_key}"
        )
    for letter, why in result.failed:
        click.echo(f"kept {letter.id}: {why}", err=True)
    for letter in result.too_old:
        age = letter.age_seconds(now)
        parked = "parked at an unknown time" if age is None else f"parked {_age(age)} ago"
        click.echo(
            f"kept {letter.id}: {parked}, longer than the retention of {days} days "
            "(KCC_RETENTION_DAYS)",
            err=True,
        )
    if result.too_old:
        click.echo(_TOO_OLD, err=True)
    kept = len(result.failed) + len(result.too_old)
    click.echo(f"{len(result.replayed)} replayed, {kept} kept in the parking lot.")
    if kept:
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


# Why an old message is not replayed, and what to do instead (docs/operations.md, retention).
_TOO_OLD = (
    "A message parked longer than the retention is never replayed: a replay reaches every queue "
    "bound to its routing key, also those that applied the event before it was parked, and the "
    "processed-event ids that make such a second copy harmless may have been pruned since, so "
    "it could be applied twice. It stays parked as it was; see it (and its request id) with "
    "`kcc dead-letters list` and handle that request by hand."
)


def _age(seconds: int) -> str:
    """A parked message's age in the largest units that matter: 45 s, 12 min, 3 h 5 min,
    2 d 4 h."""
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{minutes} min"
    if seconds < 86400:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def _row(letter: DeadLetter, now: datetime) -> tuple[str, ...]:
    age = letter.age_seconds(now)
    reason = letter.reason
    if len(reason) > _REASON_WIDTH:
        reason = reason[: _REASON_WIDTH - 1] + "…"
    return (
        str(letter.position),
        letter.id or "-",
        letter.type or "-",
        letter.request_id or "-",
        reason,
        letter.source_queue or "-",
        letter.routing_key or "-",
        letter.dead_at.strftime("%Y-%m-%d %H:%M:%S") if letter.dead_at else "-",
        _age(age) if age is not None else "-",
    )
