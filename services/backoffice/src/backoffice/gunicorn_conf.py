"""gunicorn settings for the back office (`gunicorn -c python:backoffice.gunicorn_conf ...`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# prometheus-client reads this when it is first imported: set it here, in the master, before
# any worker imports the app, so every worker writes its samples where /metrics reads them.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / "kcc-backoffice-metrics")
)

bind = os.environ.get("KCC_HTTP_BIND", "127.0.0.1:8002")
workers = int(os.environ.get("KCC_HTTP_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("KCC_HTTP_THREADS", "8"))
# Every publish and DB wait is bounded well under this (KCC_PUBLISH_TIMEOUT <= 20 s).
timeout = 30
graceful_timeout = 20
keepalive = 5
# Access logs would carry paths with request ids; the app logs events instead.
accesslog = None
errorlog = "-"
# Never --preload: each worker opens its own DB pool and broker connection after the fork.
preload_app = False


def on_starting(server: Any) -> None:
    # Samples of a previous run would be summed into this one's counters.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    Path(_metrics_dir).mkdir(parents=True, exist_ok=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
