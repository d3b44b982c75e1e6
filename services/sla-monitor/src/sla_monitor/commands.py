"""`kcc sla ...`: run the monitor, rebuild its clocks."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import click
from kcc_shared.config import Config, ConfigError
from kcc_shared.organisation import OrganisationError, load_organisation

__all__ = ["sla_group"]

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


def _config() -> Config:
    ctx = click.get_current_context()
    if isinstance(ctx.find_object(Config), Config):
        config: Config = ctx.find_object(Config)  # type: ignore[assignment]
        return config
    try:
        return Config.from_env()
    except ConfigError as exc:
        click.echo(f"sla: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_CONFIG) from None


def _check_organisation(config: Config) -> None:
    try:
        load_organisation(config.organisation_file)
    except OrganisationError as exc:
        click.echo("sla: the organisation file is invalid; not starting:", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        raise click.exceptions.Exit(EXIT_CONFIG) from None


@click.group("sla")
def sla_group() -> None:
    """SLA clocks in business time, warnings, breaches and metrics."""


@sla_group.command("run")
def run() -> None:
    """Consume sla-monitor.events, announce deadlines and serve the API, the overview page and
    /metrics on KCC_METRICS_HOST:KCC_METRICS_PORT, in one process, until SIGTERM or Ctrl-C.

    On SIGTERM it stops consuming, lets the scheduler and the outbox relay finish, and exits 0.
    """
    from werkzeug.serving import make_server

    from sla_monitor.app import create_app, store_of
    from sla_monitor.worker import SlaMonitor

    config = _config()
    _check_organisation(config)
    app = create_app(config)
    monitor = SlaMonitor(config, store_of(app))
    server = make_server(config.metrics_host, config.metrics_port, app, threaded=True)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("sla_monitor_stop_requested", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    http = threading.Thread(target=server.serve_forever, name="sla-http", daemon=True)
    monitor.start()
    http.start()
    log.info("sla_monitor_started", extra={"port": server.server_port})
    try:
        stopping.wait()
    finally:
        monitor.stop()
        server.shutdown()
        http.join(5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("sla_monitor_stopped")


@sla_group.command("recompute")
def recompute() -> None:
    """Rebuild every clock from the stored event history (after a calendar or norm change).

    Announces nothing itself: warnings and breaches already sent keep their flags, and the
    running monitor's scheduler announces whatever the new calendar makes due.
    """
    from kcc_shared.db import make_engine

    from sla_monitor.store import SlaStore
    from sla_monitor.worker import utcnow

    config = _config()
    _check_organisation(config)
    store = SlaStore(make_engine(config.database_url), load_organisation(config.organisation_file))
    store.create_schema()
    count = store.recompute(utcnow())
    click.echo(f"recomputed the clocks of {count} requests")
