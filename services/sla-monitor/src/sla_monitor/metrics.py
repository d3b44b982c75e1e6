"""Every metric the SLA monitor exports, with its help text (names are part of the contract)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, cast

from kcc_shared.events import CLOCKS, OPEN_STATES, PRIORITIES
from kcc_shared.organisation import Organisation
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

SLA_OUTCOMES = Counter(
    "kcc_sla_outcomes_total",
    "Clock outcomes: breached when the target passes (not when answered), met when a clock "
    "closes within its target.",
    ["department", "priority", "clock", "outcome"],
)
HANDOFFS = Counter(
    "kcc_request_handoffs_total",
    "Requests forwarded from one department to another.",
    ["from_department", "to_department"],
)
RATINGS = Counter(
    "kcc_request_ratings_total", "Ratings given by agents, by score (1-5).", ["department", "score"]
)
THANKS = Counter("kcc_request_thanks_total", "Ratings that said thank you.", ["department"])
EVENTS_INGESTED = Counter(
    "kcc_sla_events_ingested_total",
    "Events stored by the SLA monitor (duplicates not counted), by event type.",
    ["type"],
)
LAST_EVENT_INGESTED = Gauge(
    "kcc_sla_last_event_ingested_timestamp_seconds",
    "Unix time at which the SLA monitor last stored an event.",
)
SLA_NOTICES = Counter(
    "kcc_sla_notices_emitted_total",
    "request.sla_warning / request.sla_breached events put in the outbox.",
    ["kind"],
)

# Extra bucket boundaries (business seconds) besides the configured targets: 5 min to 4 weeks.
EXTRA_BUCKETS: Final = (
    300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 57600.0, 86400.0,
    144000.0, 288000.0, 576000.0,
)  # fmt: skip

log = logging.getLogger(__name__)

# A metric update made after the commit, so a rolled-back transaction never counts.
Observation = Callable[[], None]


def increment(counter: Counter, *labels: str) -> Observation:
    """An increment to make after the commit (the series appears only when it counts)."""
    return lambda: counter.labels(*labels).inc()


def department_label(org: Organisation, department: str) -> str:
    # Label values come from configuration only.
    return department if department in org.departments else "unknown"


def sla_buckets(org: Organisation) -> tuple[float, ...]:
    """Every configured target is a bucket boundary, so `le="<target>"` gives exact compliance."""
    targets = {
        float(seconds)
        for department in org.departments.values()
        for target in department.sla.values()
        for seconds in (target.first_response_s, target.resolution_s)
    }
    return tuple(sorted(targets | set(EXTRA_BUCKETS)))


@dataclass(frozen=True)
class ClockHistograms:
    first_response: Histogram
    resolution: Histogram
    # How long a question sat at a department (its resolution clock, pauses excluded) before
    # that department forwarded it: slow internal handoffs, per pair of departments.
    handoff: Histogram

    def for_clock(self, kind: str) -> Histogram:
        return self.first_response if kind == "first_response" else self.resolution


_lock = threading.Lock()
# What this process registered: ("histograms", (buckets, ClockHistograms)), ("collector", ...).
_installed: dict[str, Any] = {}


def clock_histograms(org: Organisation) -> ClockHistograms:
    """The two completion histograms and the handoff histogram, with buckets from the
    organisation's targets.

    Note: they cannot be module-level like the other metrics, since their buckets come from the
    organisation file. Built once per process; a different organisation (a test, a reload)
    replaces them in the default registry.
    """
    buckets = sla_buckets(org)
    with _lock:
        current = _installed.get("histograms")
        if current is not None and current[0] == buckets:
            return cast(ClockHistograms, current[1])
        if current is not None:
            REGISTRY.unregister(current[1].first_response)
            REGISTRY.unregister(current[1].resolution)
            REGISTRY.unregister(current[1].handoff)
        histograms = ClockHistograms(
            Histogram(
                "kcc_request_first_response_business_seconds",
                "Business seconds from routed to claimed, per department clock.",
                ["department", "priority"],
                buckets=buckets,
            ),
            Histogram(
                "kcc_request_resolution_business_seconds",
                "Business seconds from routed to answered (pauses excluded), per department.",
                ["department", "priority"],
                buckets=buckets,
            ),
            Histogram(
                "kcc_request_handoff_business_seconds",
                "Business seconds a request spent in a department (pauses excluded) before "
                "that department forwarded it to another.",
                ["from_department", "to_department"],
                buckets=buckets,
            ),
        )
        _installed["histograms"] = (buckets, histograms)
        return histograms


@dataclass(frozen=True)
class OpenFigures:
    """What the store knows about open requests of one department, read at scrape time."""

    department: str
    by_state: dict[str, int]
    oldest_open_s: float


class OpenRequestsCollector(Collector):
    """kcc_requests_open and kcc_request_oldest_open_business_seconds, read from the store.

    Its cost is a fixed number of index look-ups per department (counts kept incrementally,
    oldest via an index on the clock origin), not a scan of the open requests.
    """

    def __init__(self, read: Callable[[], Iterable[OpenFigures]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        open_ = GaugeMetricFamily(
            "kcc_requests_open",
            "Requests open in a department now, by state.",
            labels=["department", "state"],
        )
        oldest = GaugeMetricFamily(
            "kcc_request_oldest_open_business_seconds",
            "Business seconds the oldest open request has spent in its department (pauses "
            "excluded).",
            labels=["department"],
        )
        try:
            read = list(self._read())
        except Exception:  # a store outage must not take every other metric of /metrics down
            log.warning("open_figures_unavailable", exc_info=True)
            return
        for figures in read:
            for state in OPEN_STATES:
                open_.add_metric([figures.department, state], figures.by_state.get(state, 0))
            oldest.add_metric([figures.department], figures.oldest_open_s)
        yield open_
        yield oldest

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registering must not call collect() (it would query the store at import time).
        return iter(())


def initialise_outcomes(organisation: Organisation) -> None:
    """Export every outcome series at 0 from the start.

    Note: increase() and rate() need a sample before the first count; a series born at 1 would
    hide a department's first breach from the alerts and the dashboard.
    """
    for department in organisation.departments:
        for priority in PRIORITIES:
            for clock in CLOCKS:
                for outcome in ("met", "breached"):
                    SLA_OUTCOMES.labels(department, priority, clock, outcome)


def install_open_collector(collector: OpenRequestsCollector) -> None:
    """Register the scrape-time collector in the default registry, replacing an earlier one."""
    with _lock:
        previous = _installed.pop("collector", None)
        if previous is not None:
            REGISTRY.unregister(previous)
        REGISTRY.register(collector)
        _installed["collector"] = collector
