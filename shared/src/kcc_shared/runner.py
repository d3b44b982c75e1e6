"""The one process runner of every long-running command: start the parts, watch them, stop them.

A process (`kcc router run`, `kcc intake consume`, `kcc sla run`, ...) is a few parts, each a
thread: the HTTP port with /healthz and /readyz, consumers, the outbox relay, the scheduler.
`run` starts them in order and then watches them. If any part's thread dies, the process has
lost a limb it cannot grow back: the others are stopped and `run` returns EXIT_PART_DIED, so
the process exits non-zero and its supervisor (systemd, Kubernetes, compose) starts a fresh
one. SIGTERM or SIGINT stops every part in reverse order (the HTTP port last, so probes see
the process until it is gone) and `run` returns 0.

/healthz (liveness) is `liveness(parts)`: every part is running and none is stuck (a consumer
holding messages that settled none for its stall timeout). /readyz (readiness) is the
process's own dependency checks.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Final

__all__ = ["EXIT_PART_DIED", "Part", "liveness", "run"]

log = logging.getLogger(__name__)

# The exit status of a process that lost a part (the supervisor restarts it).
EXIT_PART_DIED: Final = 70
# How often the runner looks at its parts (seconds).
WATCH_INTERVAL: Final = 1.0


def _never_stuck() -> str | None:
    return None


@dataclass(frozen=True)
class Part:
    """One long-running part of a process, as the runner sees it."""

    name: str
    start: Callable[[], None]
    stop: Callable[[], None]
    running: Callable[[], bool]
    # Why the part is alive but not making progress (None: it is), for /healthz.
    stuck: Callable[[], str | None] = _never_stuck


def liveness(parts: Sequence[Part]) -> dict[str, Callable[[], None]]:
    """One check per part for /healthz: raises when the part died or is stuck."""

    def check_for(part: Part) -> Callable[[], None]:
        def check() -> None:
            if not part.running():
                raise RuntimeError(f"{part.name} is not running")
            problem = part.stuck()
            if problem is not None:
                raise RuntimeError(problem)

        return check

    return {part.name: check_for(part) for part in parts}


def run(
    service: str,
    parts: Sequence[Part],
    *,
    stop_requested: threading.Event | None = None,
    watch_interval: float = WATCH_INTERVAL,
) -> int:
    """Start `parts` in order and watch them until SIGTERM/SIGINT (0) or a part dies
    (EXIT_PART_DIED); either way every part that was started is stopped, in reverse order.

    Call it from the main thread (signal handlers); `stop_requested` lets a caller (a test)
    ask for the same orderly stop without a signal.
    """
    stopping = stop_requested or threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info(
            "stop_requested", extra={"service": service, "signal": signal.Signals(signum).name}
        )
        stopping.set()

    previous: Mapping[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    started: list[Part] = []
    status = 0
    try:
        for part in parts:
            part.start()
            started.append(part)
        log.info("process_started", extra={"service": service, "parts": [p.name for p in parts]})
        while not stopping.wait(watch_interval):
            dead = [p.name for p in started if not p.running()]
            if dead:
                log.error("part_died", extra={"service": service, "parts": dead})
                status = EXIT_PART_DIED
                break
    except Exception:
        log.exception("process_start_failed", extra={"service": service})
        status = EXIT_PART_DIED
    finally:
        for part in reversed(started):
            try:
                part.stop()
            except Exception:  # stop the others all the same
                log.exception("part_stop_failed", extra={"service": service, "part": part.name})
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
    log.info("process_stopped", extra={"service": service, "status": status})
    return status
