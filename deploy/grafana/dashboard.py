"""Builds the KCC SLA Grafana dashboard as plain JSON: `python deploy/grafana/dashboard.py`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "dashboards" / "kcc-sla.json"
UID = "kcc-sla"

Panel = dict[str, Any]

# Grafana fills these in; the integration test substitutes them the same way.
DEPT = 'department=~"$department"'
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def target(expr: str, legend: str = "", *, instant: bool = False) -> Panel:
    """One query; `panel` gives it its refId (A, B, ...)."""
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        **({"instant": True, "range": False, "format": "table"} if instant else {}),
    }


def panel(
    title: str,
    targets: list[Panel],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    description: str = "",
    thresholds: list[tuple[str, float | None]] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Panel:
    """One panel; its id and position are assigned by `layout`."""
    steps = [{"color": color, "value": value} for color, value in (thresholds or [("green", None)])]
    defaults: dict[str, Any] = {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if overrides:
        defaults.update(overrides)
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [{**t, "refId": chr(ord("A") + n)} for n, t in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom"}}
        if kind == "timeseries"
        else {},
    }


def department_quantiles(metric: str) -> list[Panel]:
    """Median and 90th percentile per department of a business-time histogram over $window."""
    return [
        target(
            f"histogram_quantile({q}, sum by (department, le) "
            f"(rate({metric}_bucket{{{DEPT}}}[$window])))",
            f"p{round(q * 100)} {{{{department}}}}",
        )
        for q in (0.5, 0.9)
    ]


def sla_panels() -> list[Panel]:
    return [
        panel(
            "Compliance per department ($window)",
            [
                target(
                    f"department:kcc_sla_compliance:ratio_rate$window{{{DEPT}}}", "{{department}}"
                ),
                target("kcc:sla_objective:ratio", "objective"),
            ],
            unit="percentunit",
            description="Share of clocks (first response and resolution) that met the norm: "
            "met / (met + breached), from the recording rules in deploy/prometheus/rules.",
        ),
        panel(
            "Compliance per clock ($window)",
            [
                target(
                    f"department_clock:kcc_sla_compliance:ratio_rate$window{{{DEPT}}}",
                    "{{department}} {{clock}}",
                    instant=True,
                )
            ],
            kind="bargauge",
            unit="percentunit",
            thresholds=[("red", None), ("orange", 0.9), ("green", 0.95)],
            overrides={"min": 0, "max": 1},
        ),
        panel(
            "Error-budget burn rate",
            [
                target(f"department:kcc_sla_burn_rate:ratio_rate1h{{{DEPT}}}", "1h {{department}}"),
                target(f"department:kcc_sla_burn_rate:ratio_rate6h{{{DEPT}}}", "6h {{department}}"),
                target(f"department:kcc_sla_burn_rate:ratio_rate3d{{{DEPT}}}", "3d {{department}}"),
            ],
            description="1 = breaching exactly as fast as the objective allows. Alerts: "
            "14.4 (1h and 5m), 6 (6h and 30m), 1 (3d and 6h).",
            thresholds=[("green", None), ("orange", 1), ("red", 6)],
        ),
        panel(
            "First response, median and 90th percentile ($window)",
            department_quantiles("kcc_request_first_response_business_seconds"),
            unit="s",
            description="Business time from routed to claimed, per department.",
        ),
        panel(
            "Resolution, median and 90th percentile ($window)",
            department_quantiles("kcc_request_resolution_business_seconds"),
            unit="s",
            description="Business time from routed to answered, per department.",
        ),
        panel(
            "Open requests",
            [
                target(
                    f"sum by (department, state) (kcc_requests_open{{{DEPT}}})",
                    "{{department}} {{state}}",
                )
            ],
            overrides={"custom": {"stacking": {"mode": "normal"}}},
        ),
        panel(
            "Oldest open request and longest norm",
            [
                target(
                    f"max by (department) (kcc_request_oldest_open_business_seconds{{{DEPT}}})",
                    "oldest {{department}}",
                ),
                target(
                    "max by (department) "
                    f'(kcc:sla_target:business_seconds{{clock="resolution", {DEPT}}})',
                    "longest norm {{department}}",
                ),
            ],
            unit="s",
            description="Business time the oldest open request has waited; the alert "
            "KccOldestOpenOverNorm fires when it passes the department's longest norm.",
        ),
        panel(
            "Breaches ($window)",
            [
                target(
                    "sum by (department, clock) "
                    f'(increase(kcc_sla_outcomes_total{{outcome="breached", {DEPT}}}[$window]))',
                    "{{department}} {{clock}}",
                )
            ],
            description="Clocks that passed their deadline (counted at the deadline).",
        ),
    ]


def handoff_and_satisfaction_panels() -> list[Panel]:
    ratings = " or ".join(
        f'{score} * increase(kcc_request_ratings_total{{score="{score}", {DEPT}}}[$window])'
        for score in range(1, 6)
    )
    return [
        panel(
            "Handoffs: who forwards to whom ($window)",
            [
                target(
                    "sum by (from_department, to_department) ("
                    'increase(kcc_request_handoffs_total{from_department=~"$department"}[$window])'
                    " or "
                    'increase(kcc_request_handoffs_total{to_department=~"$department"}[$window]))',
                    instant=True,
                )
            ],
            kind="table",
            description="Forwards out of and into the selected departments.",
        ),
        panel(
            "Average rating ($window)",
            [
                target(
                    f"sum by (department) ({ratings}) / sum by (department) "
                    f"(increase(kcc_request_ratings_total{{{DEPT}}}[$window]))",
                    "{{department}}",
                )
            ],
            overrides={"min": 1, "max": 5, "decimals": 2},
            thresholds=[("red", None), ("orange", 3), ("green", 4)],
            description="Agents' ratings of answers (1-5).",
        ),
        panel(
            "Ratings by score ($window)",
            [
                target(
                    f"sum by (score) (increase(kcc_request_ratings_total{{{DEPT}}}[$window]))",
                    "{{score}}",
                    instant=True,
                )
            ],
            kind="bargauge",
        ),
        panel(
            "Thanks ($window)",
            [
                target(
                    f"sum by (department) (increase(kcc_request_thanks_total{{{DEPT}}}[$window]))",
                    "{{department}}",
                )
            ],
        ),
    ]


def pipeline_panels() -> list[Panel]:
    return [
        panel(
            "Questions submitted per minute",
            [
                target(
                    "60 * sum by (channel) (rate(kcc_requests_submitted_total[$__rate_interval]))",
                    "{{channel}}",
                )
            ],
        ),
        panel(
            "Questions routed per minute",
            [
                target(
                    "60 * sum by (department, reason) "
                    f"(rate(kcc_requests_routed_total{{{DEPT}}}[$__rate_interval]))",
                    "{{department}} ({{reason}})",
                )
            ],
        ),
        panel(
            "Route latency, submit to routed",
            [
                target(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(kcc_request_route_seconds_bucket{{{DEPT}}}[$__rate_interval])))",
                    f"p{round(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            unit="s",
            description="Wall clock from request.submitted to the confirmed request.routed: "
            "outbox relay, queue wait and routing.",
        ),
        panel(
            "Outbox backlog",
            [target("sum by (service) (kcc_outbox_backlog)", "{{service}}")],
            description="Events stored but not yet confirmed by RabbitMQ.",
        ),
        panel(
            "Oldest unsent outbox event",
            [target("max by (service) (kcc_outbox_oldest_unsent_age_seconds)", "{{service}}")],
            unit="s",
            thresholds=[("green", None), ("red", 300)],
        ),
        panel(
            "Dead letters (kcc.dead)",
            [
                target(
                    'sum by (vhost) (rabbitmq_detailed_queue_messages{queue="kcc.dead"})',
                    "{{vhost}}",
                )
            ],
            description="Messages parked for a person: `kcc dead-letters list`.",
            thresholds=[("green", None), ("red", 1)],
        ),
        panel(
            "Queue depth",
            [
                target(
                    "sum by (queue) (rabbitmq_detailed_queue_messages"
                    '{queue=~"router.work|kcc.dept.($department)"})',
                    "{{queue}}",
                )
            ],
        ),
        panel(
            "Messages consumed per second",
            [
                target(
                    "sum by (service, queue, outcome) "
                    "(rate(kcc_messages_consumed_total[$__rate_interval]))",
                    "{{service}} {{queue}} {{outcome}}",
                )
            ],
        ),
        panel(
            "HTTP latency, 95th percentile",
            [
                target(
                    "histogram_quantile(0.95, sum by (service, endpoint, le) "
                    "(rate(kcc_http_request_duration_seconds_bucket[$__rate_interval])))",
                    "{{service}} {{endpoint}}",
                )
            ],
            unit="s",
        ),
    ]


def layout(rows: list[tuple[str, list[Panel]]]) -> list[Panel]:
    """Rows of panels, three across, with stable ids (the drift test compares them)."""
    panels: list[Panel] = []
    y = 0
    for title, members in rows:
        panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        for n, member in enumerate(members):
            member["gridPos"] = {"h": 8, "w": 8, "x": (n % 3) * 8, "y": y + (n // 3) * 8}
            panels.append(member)
        y += ((len(members) + 2) // 3) * 8
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return panels


def variables() -> list[Panel]:
    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
        },
        {
            "name": "department",
            "label": "Afdeling",
            "type": "query",
            "datasource": DATASOURCE,
            "query": {"query": "label_values(kcc_requests_routed_total, department)", "refId": "A"},
            "definition": "label_values(kcc_requests_routed_total, department)",
            "refresh": 2,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"text": "All", "value": "$__all"},
            "sort": 1,
            "hide": 0,
        },
        {
            # The values are the windows of the compliance recording rules (ratio_rate1h ...).
            "name": "window",
            "label": "Venster",
            "type": "custom",
            "query": "1h,1d,7d",
            "current": {"text": "1d", "value": "1d"},
            "options": [{"text": w, "value": w, "selected": w == "1d"} for w in ("1h", "1d", "7d")],
            "hide": 0,
        },
    ]


def build() -> dict[str, Any]:
    return {
        "uid": UID,
        "title": "KCC: SLA per afdeling",
        "description": "Compliance, waiting times, handoffs and satisfaction per back-office "
        "department, and the health of the pipeline. Generated by deploy/grafana/dashboard.py; "
        "do not edit in Grafana.",
        "tags": ["kcc", "sla"],
        "timezone": "Europe/Amsterdam",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-7d", "to": "now"},
        "templating": {"list": variables()},
        "annotations": {"list": []},
        "links": [],
        "panels": layout(
            [
                ("SLA per afdeling", sla_panels()),
                ("Doorzetten en tevredenheid", handoff_and_satisfaction_panels()),
                ("Pijplijn", pipeline_panels()),
            ]
        ),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query in the dashboard."""
    return [
        (str(p["title"]), str(t["expr"])) for p in dashboard["panels"] for t in p.get("targets", [])
    ]


def main() -> int:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
