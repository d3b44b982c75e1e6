"""`kcc intake ...`: serve the API and print its OpenAPI description."""

from __future__ import annotations

import json
import os
import sys

import click


@click.group("intake")
def intake_group() -> None:
    """The agents' front door (HTTP API)."""


@intake_group.command("serve")
@click.option("--bind", default=None, help="host:port (default KCC_HTTP_BIND or 127.0.0.1:8001)")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="gunicorn workers")
def serve(bind: str | None, workers: int | None) -> None:
    """Run the intake under gunicorn with the settings in intake.gunicorn_conf."""
    args = [sys.executable, "-m", "gunicorn", "-c", "python:intake.gunicorn_conf"]
    if bind:
        args += ["--bind", bind]
    if workers:
        args += ["--workers", str(workers)]
    args.append("intake.app:create_app()")
    os.execv(sys.executable, args)  # noqa: S606 - replaces this process with gunicorn


@intake_group.command("openapi")
def openapi() -> None:
    """Print the OpenAPI description (what services/intake/openapi.json holds)."""
    click.echo(json.dumps(openapi_document(), indent=2, sort_keys=True))


def openapi_document() -> dict[str, object]:
    from kcc_shared.config import Config

    from intake.app import create_app

    app = create_app(
        Config(database_url="sqlite:///:memory:", broker_url="memory://", outbox_relay=False)
    )
    with app.test_request_context():
        spec: dict[str, object] = app.extensions["flask-smorest"]["apis"][""][
            "ext_obj"
        ].spec.to_dict()
    return spec
