"""The router's commands: `kcc router run`."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click
from kcc_shared.config import Config, ConfigError
from kcc_shared.health import HealthServer
from kcc_shared.logging import configure_logging
from kcc_shared.organisation import OrganisationError, load_organisation

from router.worker import RouterWorker

__all__ = ["router_group"]

log = logging.getLogger(__name__)

# Exit status when the configuration or the organisation file keeps the router from starting.
EXIT_CONFIG = 2


@click.group("router")
def router_group() -> None:
    """Route questions from the KCC to the responsible department."""


@router_group.command("run")
def run() -> None:
    """Consume router.work in the foreground until SIGTERM or Ctrl-C.

    Reads the KCC_* environment (see `kcc config env`). Refuses to start, with every problem
    listed, when the organisation file is invalid. On SIGTERM or SIGINT it finishes the batch
    in hand (publish, confirm, ack), closes its connections and exits 0.
    """
    try:
        config = Config.from_env()
    except ConfigError as exc:
        click.echo(f"router: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_CONFIG) from None
    configure_logging(config.log_level, config.log_format)
    try:
        organisation = load_organisation(config.organisation_file)
    except OrganisationError as exc:
        click.echo("router: the organisation file is invalid; not starting:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise click.exceptions.Exit(EXIT_CONFIG) from None

    worker = RouterWorker(
        config.broker_url,
        organisation,
        organisation_file=config.organisation_file,
        prefetch=config.prefetch,
        publish_timeout=config.publish_timeout,
    )
    server = HealthServer(
        config.metrics_host,
        config.metrics_port,
        worker.readiness_checks(),
        name="router",
        metrics_token=config.metrics_token,
    )

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("router_stop_requested", extra={"signal": signal.Signals(signum).name})
        worker.stop(timeout=0)

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    server.start()
    try:
        worker.run()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":  # `python -m router.commands run`, until the kcc command wires it
    router_group()
