"""`kcc dead-letters`: look into the parking lot (kcc.dead) and replay what was parked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click
from kcc_shared.config import Config, ConfigError
from kcc_shared.deadletters import (
    BrokerUnavailable,
    DeadLetter,
    DeadLetterError,
    DeadLetterNotFound,
    ParkingLot,
)

__all__ = ["dead_letters_group"]

EXIT_NOT_FOUND = 1
EXIT_UNAVAILABLE = 2
_REASON_WIDTH = 60


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Parked messages: ids, type and reason (never the request's text)."""


@contextmanager
def _parking_lot() -> Iterator[ParkingLot]:
    try:
        config = Config.from_env()
        yield ParkingLot(config.broker_url, timeout=config.publish_timeout)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except DeadLetterNotFound as exc:
        click.echo(f"Error: {exc}; see `kcc dead-letters list`. Nothing was replayed.", err=True)
        raise click.exceptions.Exit(EXIT_NOT_FOUND) from None
    except BrokerUnavailable as exc:
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_UNAVAILABLE) from None
    except DeadLetterError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_UNAVAILABLE) from None


@dead_letters_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def list_command(as_json: bool) -> None:
    """List every parked message, oldest first, leaving the parking lot as it was."""
    with _parking_lot() as lot:
        letters = lot.letters()
    if as_json:
        click.echo(json.dumps([letter.to_dict() for letter in letters], indent=2))
        return
    if not letters:
        click.echo("The parking lot is empty.")
        return
    rows = [_row(letter) for letter in letters]
    header = ("#", "id", "type", "request", "reason", "from queue", "routing key", "parked at")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    click.echo(f"{len(letters)} parked message{'s' if len(letters) != 1 else ''}.")


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
    with _parking_lot() as lot:
        result = lot.replay(None if replay_all else ids)
    for letter in result.replayed:
        click.echo(
            f"replayed {letter.id} ({letter.type or 'unknown type'}) to {letter.routing_key}"
        )
    for letter, why in result.failed:
        click.echo(f"kept {letter.id}: {why}", err=True)
    click.echo(f"{len(result.replayed)} replayed, {len(result.failed)} kept in the parking lot.")
    if result.failed:
        raise click.exceptions.Exit(EXIT_NOT_FOUND)


def _row(letter: DeadLetter) -> tuple[str, ...]:
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
    )
