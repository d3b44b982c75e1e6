"""gunicorn settings every HTTP service shares; a service's gunicorn_conf applies them."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

# Note: import nothing that imports prometheus_client here (config imports the standard library
# only). gunicorn's master reads this before any worker imports the app, and
# PROMETHEUS_MULTIPROC_DIR must be set by then.
from kcc_shared.config import EXIT_CONFIG, Config, ConfigError

__all__ = ["serve_command", "settings"]


def settings(service: str, default_port: int) -> dict[str, Any]:
    """Module-level settings for `gunicorn -c python:<service>.gunicorn_conf`."""
    try:
        # Checked in the master, so a wrong variable stops gunicorn once with every problem
        # named, instead of every worker failing to boot.
        config = Config.from_env()
    except ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    metrics_dir = os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"kcc-{service}-metrics")
    )

    def on_starting(server: Any) -> None:
        # Samples of a previous run would be summed into this one's counters.
        shutil.rmtree(metrics_dir, ignore_errors=True)
        Path(metrics_dir).mkdir(parents=True, exist_ok=True)

    def post_fork(server: Any, worker: Any) -> None:
        # The app's own log lines in the configured format (JSON by default), scrubbed of any
        # BSN like every other process's; without this a worker printed bare event names
        # through Python's last-resort handler, every field dropped.
        import logging

        from kcc_shared.logging import configure_logging

        configure_logging(config.log_level, config.log_format)
        logging.getLogger(__name__).info(
            "http_worker_started", extra={"service": service, "worker_pid": os.getpid()}
        )

    def child_exit(server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    return {
        "bind": config.http_bind or f"127.0.0.1:{default_port}",
        "workers": config.http_workers,
        # Threads: a slow client or a blocked database call does not hold up a whole worker.
        "worker_class": "gthread",
        "threads": config.http_threads,
        # Every publish and database wait is bounded well under this (KCC_PUBLISH_TIMEOUT).
        "timeout": 30,
        "graceful_timeout": 20,
        "keepalive": 5,
        # Access logs would carry paths with request ids and client addresses; the app logs
        # events instead.
        "accesslog": None,
        "errorlog": "-",
        # Never --preload: each worker opens its own DB pool and broker connection after the
        # fork.
        "preload_app": False,
        # gunicorn >= 25 opens a control socket under $HOME by default: nothing here uses it,
        # and on a read-only root file system (the containers) it only logs a failure.
        "control_socket_disable": True,
        "on_starting": on_starting,
        "post_fork": post_fork,
        "child_exit": child_exit,
    }


def serve_command(
    package: str, default_port: int, summary: str, check: Callable[[], object] | None = None
) -> click.Command:
    """`kcc <service> serve`: replace this process with gunicorn running `<package>.app`
    under `<package>.gunicorn_conf`. `check` runs first, to refuse in words what every worker
    would otherwise refuse with a traceback."""

    @click.command("serve", help=summary)
    @click.option(
        "--bind",
        default=None,
        help=f"host:port (default KCC_HTTP_BIND or 127.0.0.1:{default_port})",
    )
    @click.option("--workers", type=click.IntRange(1, 64), default=None, help="gunicorn workers")
    def serve(bind: str | None, workers: int | None) -> None:
        if check is not None:
            check()
        args = [sys.executable, "-m", "gunicorn", "-c", f"python:{package}.gunicorn_conf"]
        if bind:
            args += ["--bind", bind]
        if workers:
            args += ["--workers", str(workers)]
        args.append(f"{package}.app:create_app()")
        os.execv(sys.executable, args)  # noqa: S606 - replaces this process with gunicorn

    return serve
