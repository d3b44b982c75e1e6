"""What every service's commands share: the configuration, the organisation file read at
start, and a long-running process run to its end.

`kcc` reads the configuration once, in its root group, and refuses a wrong variable there.
A service's command takes that configuration with `current_config`; the same function reads
the environment itself when a group runs on its own (the tests invoke `router_group`
directly). A process that cannot start on what it was given says why, in words, and exits
EXIT_CONFIG, the status supervisors and scripts can tell apart from a crash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NoReturn

import click
from sqlalchemy import Engine

from kcc_shared import runner
from kcc_shared.config import EXIT_CONFIG, Config, ConfigError
from kcc_shared.health import Check, HealthServer, dependency_checks
from kcc_shared.logging import configure_logging
from kcc_shared.organisation import Organisation, OrganisationError, load_organisation

__all__ = [
    "consumer_checks",
    "current_config",
    "organisation_or_exit",
    "refuse",
    "run_process",
]


def refuse(service: str, message: str) -> NoReturn:
    """Stop a command that cannot start: the reason on stderr, exit status EXIT_CONFIG."""
    click.echo(f"{service}: {message}", err=True)
    raise click.exceptions.Exit(EXIT_CONFIG)


def current_config(service: str) -> Config:
    """The configuration `kcc` read, or the environment's when the group runs on its own."""
    context = click.get_current_context(silent=True)
    found = context.find_object(Config) if context is not None else None
    if isinstance(found, Config):
        return found
    try:
        config = Config.from_env()
    except ConfigError as exc:
        refuse(service, str(exc))
    configure_logging(config.log_level, config.log_format)
    return config


def organisation_or_exit(service: str, config: Config) -> Organisation:
    """The organisation file, or every problem in it listed and EXIT_CONFIG."""
    try:
        return load_organisation(config.organisation_file)
    except OrganisationError as exc:
        listed = "".join(f"\n  {problem}" for problem in exc.problems)
        refuse(service, f"the organisation file is invalid; not starting:{listed}")


def consumer_checks(
    engine: Engine, broker_url: str, consuming: Callable[[], bool]
) -> dict[str, Check]:
    """/readyz of a process that consumes into its database: both answer, and it consumes."""

    def consumer() -> None:
        if not consuming():
            raise RuntimeError("not consuming")

    return {**dependency_checks(engine, broker_url, timeout=2), "consumer": consumer}


def run_process(
    service: str,
    config: Config,
    parts: Sequence[runner.Part],
    readiness: Mapping[str, Check],
    *,
    before_scrape: Iterable[Callable[[], None]] = (),
) -> None:
    """Run `parts` behind /healthz (every part alive), /readyz (`readiness`) and /metrics on
    KCC_METRICS_HOST:KCC_METRICS_PORT until SIGTERM; a part that died exits non-zero."""
    server = HealthServer(
        config.metrics_host,
        config.metrics_port,
        readiness,
        liveness=runner.liveness(parts),
        name=service,
        metrics_token=config.metrics_token,
        before_scrape=before_scrape,
    )
    status = runner.run(service, [server.part(), *parts])
    if status:
        raise click.exceptions.Exit(status)
