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


# Label values are the contract's (English ids); legends say them in the pages' Dutch words.
CLOCK_WORDS = {"first_response": "eerste reactie", "resolution": "afhandeling"}
STATE_WORDS = {
    "waiting": "wacht op oppakken",
    "claimed": "opgepakt",
    "awaiting_clarification": "wacht op verduidelijking",
}
CHANNEL_WORDS = {
    "phone": "telefoon",
    "email": "e-mail",
    "chat": "chat",
    "counter": "balie",
    "app": "app",
    "letter": "brief",
    "social": "sociale media",
}
OUTCOME_WORDS = {
    "acked": "verwerkt",
    "duplicate": "dubbel",
    "requeued": "opnieuw in de rij",
    "dead_lettered": "geparkeerd",
}
QUANTILE_WORDS = {
    0.5: "mediaan",
    0.9: "90e percentiel",
    0.95: "95e percentiel",
    0.99: "99e percentiel",
}


def dutch(expr: str, source: str, words: dict[str, str], label: str) -> str:
    """`expr` with a label `label` that says `source`'s value in Dutch (label_replace per
    value; a value without a word keeps no `label`, so its legend shows the raw value)."""
    for value, word in words.items():
        expr = f'label_replace({expr}, "{label}", "{word}", "{source}", "{value}")'
    return expr


def department_quantiles(metric: str) -> list[Panel]:
    """Median and 90th percentile per department of a business-time histogram over $window."""
    return [
        target(
            f"histogram_quantile({q}, sum by (department, le) "
            f"(rate({metric}_bucket{{{DEPT}}}[$window])))",
            f"{QUANTILE_WORDS[q]} {{{{department}}}}",
        )
        for q in (0.5, 0.9)
    ]


def sla_panels() -> list[Panel]:
    return [
        panel(
            "Binnen norm per afdeling ($window)",
            [
                target(
                    f"department:kcc_sla_compliance:ratio_rate$window{{{DEPT}}}", "{{department}}"
                ),
                target("kcc:sla_objective:ratio", "norm"),
            ],
            unit="percentunit",
            description="Deel van de termijnen (eerste reactie en afhandeling) dat binnen de norm "
            "bleef: binnen norm / (binnen norm + te laat), uit de recording rules in "
            "deploy/prometheus/rules. Een termijn telt als te laat op het moment dat hij "
            "verstrijkt, ook als de vraag nog open staat (zoals op het SLA-overzicht).",
        ),
        panel(
            "Binnen norm per termijn ($window)",
            [
                target(
                    dutch(
                        f"department_clock:kcc_sla_compliance:ratio_rate$window{{{DEPT}}}",
                        "clock",
                        CLOCK_WORDS,
                        "termijn",
                    ),
                    "{{department}} {{termijn}}",
                    instant=True,
                )
            ],
            kind="bargauge",
            unit="percentunit",
            thresholds=[("red", None), ("orange", 0.9), ("green", 0.95)],
            overrides={"min": 0, "max": 1},
        ),
        panel(
            "Tempo van te laat (foutbudget)",
            [
                target(
                    f"department:kcc_sla_burn_rate:ratio_rate1h{{{DEPT}}}", "1 uur {{department}}"
                ),
                target(
                    f"department:kcc_sla_burn_rate:ratio_rate6h{{{DEPT}}}", "6 uur {{department}}"
                ),
                target(
                    f"department:kcc_sla_burn_rate:ratio_rate3d{{{DEPT}}}", "3 dagen {{department}}"
                ),
            ],
            description="1 = precies zo veel te laat als de norm toestaat. Meldingen bij "
            "14,4 (1 uur en 5 min), 6 (6 uur en 30 min), 1 (3 dagen en 6 uur).",
            thresholds=[("green", None), ("orange", 1), ("red", 6)],
        ),
        panel(
            "Eerste reactie: mediaan en 90e percentiel ($window)",
            department_quantiles("kcc_request_first_response_business_seconds"),
            unit="s",
            description="Werktijd van doorgezet tot opgepakt, per afdeling.",
        ),
        panel(
            "Afhandeling: mediaan en 90e percentiel ($window)",
            department_quantiles("kcc_request_resolution_business_seconds"),
            unit="s",
            description="Werktijd van doorgezet tot beantwoord (zonder wachttijd op "
            "verduidelijking), per afdeling.",
        ),
        panel(
            "Open vragen",
            [
                target(
                    dutch(
                        f"sum by (department, state) (kcc_requests_open{{{DEPT}}})",
                        "state",
                        STATE_WORDS,
                        "stand",
                    ),
                    "{{department}} {{stand}}",
                )
            ],
            overrides={"custom": {"stacking": {"mode": "normal"}}},
        ),
        panel(
            "Oudste open vraag en langste norm",
            [
                target(
                    f"max by (department) (kcc_request_oldest_open_business_seconds{{{DEPT}}})",
                    "oudste open {{department}}",
                ),
                target(
                    "max by (department) "
                    f'(kcc:sla_target:business_seconds{{clock="resolution", {DEPT}}})',
                    "langste norm {{department}}",
                ),
            ],
            unit="s",
            description="Werktijd die de oudste open vraag al wacht; de melding "
            "KccOldestOpenOverNorm gaat af als die de langste norm van de afdeling passeert.",
        ),
        panel(
            "Te laat geworden ($window)",
            [
                target(
                    dutch(
                        "sum by (department, clock) (increase(kcc_sla_outcomes_total"
                        f'{{outcome="breached", {DEPT}}}[$window]))',
                        "clock",
                        CLOCK_WORDS,
                        "termijn",
                    ),
                    "{{department}} {{termijn}}",
                )
            ],
            description="Termijnen die verstreken (geteld op het moment van verstrijken, ook als "
            "de vraag nog open staat): de normoverschrijdingen.",
        ),
    ]


def handoff_and_satisfaction_panels() -> list[Panel]:
    ratings = " or ".join(
        f'{score} * increase(kcc_request_ratings_total{{score="{score}", {DEPT}}}[$window])'
        for score in range(1, 6)
    )
    return [
        panel(
            "Doorgestuurd: van welke afdeling naar welke ($window)",
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
            description="Doorgestuurde vragen uit en naar de gekozen afdelingen.",
        ),
        panel(
            "Doorlooptijd per overdracht: 90e percentiel ($window)",
            [
                target(
                    "histogram_quantile(0.9, sum by (from_department, to_department, le) "
                    "(rate(kcc_request_handoff_business_seconds_bucket"
                    '{from_department=~"$department"}[$window])))',
                    "{{from_department}} → {{to_department}}",
                    instant=True,
                )
            ],
            kind="bargauge",
            unit="s",
            description="Hoe lang vragen bij een afdeling lagen (werktijd, zonder wachttijd op "
            "verduidelijking) voordat die afdeling ze doorstuurde, per paar van afdelingen: "
            "trage overdrachten vallen op. Zoals 'Doorlooptijd per overdracht' op het "
            "SLA-overzicht.",
            thresholds=[("green", None), ("orange", 14400), ("red", 28800)],
        ),
        panel(
            "Doorlooptijd per overdracht: mediaan ($window)",
            [
                target(
                    "histogram_quantile(0.5, sum by (from_department, to_department, le) "
                    "(rate(kcc_request_handoff_business_seconds_bucket"
                    '{from_department=~"$department"}[$window])))',
                    "{{from_department}} → {{to_department}}",
                )
            ],
            unit="s",
            description="De mediaan van dezelfde werktijd vóór het doorsturen, door de tijd.",
        ),
        panel(
            "Gem. waardering ($window)",
            [
                target(
                    f"sum by (department) ({ratings}) / sum by (department) "
                    f"(increase(kcc_request_ratings_total{{{DEPT}}}[$window]))",
                    "{{department}}",
                )
            ],
            overrides={"min": 1, "max": 5, "decimals": 2},
            thresholds=[("red", None), ("orange", 3), ("green", 4)],
            description="Cijfers die KCC-medewerkers aan de antwoorden gaven (1-5).",
        ),
        panel(
            "Waarderingen per cijfer ($window)",
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
            "Bedankjes ($window)",
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
            "Vragen gesteld per minuut",
            [
                target(
                    dutch(
                        "60 * sum by (channel) "
                        "(rate(kcc_requests_submitted_total[$__rate_interval]))",
                        "channel",
                        CHANNEL_WORDS,
                        "kanaal",
                    ),
                    "{{kanaal}}",
                )
            ],
        ),
        panel(
            "Vragen doorgezet per minuut",
            [
                target(
                    dutch(
                        "60 * sum by (department, reason) "
                        f"(rate(kcc_requests_routed_total{{{DEPT}}}[$__rate_interval]))",
                        "reason",
                        {
                            "rule": "regel",
                            "category": "categorie",
                            "model": "model",
                            "forward": "doorgestuurd",
                            "fallback": "triage",
                        },
                        "waarom",
                    ),
                    "{{department}} ({{waarom}})",
                )
            ],
        ),
        panel(
            "Doorzettijd, van gesteld tot doorgezet",
            [
                target(
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(kcc_request_route_seconds_bucket{{{DEPT}}}[$__rate_interval])))",
                    QUANTILE_WORDS[q],
                )
                for q in (0.5, 0.95, 0.99)
            ],
            unit="s",
            description="Kloktijd van request.submitted tot het bevestigde request.routed: "
            "outbox, wachtrij en routering.",
        ),
        panel(
            "Outbox: nog te versturen",
            [target("sum by (service) (kcc_outbox_backlog)", "{{service}}")],
            description="Events die bewaard zijn maar nog niet door RabbitMQ bevestigd.",
        ),
        panel(
            "Outbox: oudste onverstuurde event",
            [target("max by (service) (kcc_outbox_oldest_unsent_age_seconds)", "{{service}}")],
            unit="s",
            thresholds=[("green", None), ("red", 300)],
        ),
        panel(
            "Geparkeerde berichten (kcc.dead)",
            [
                target(
                    'sum by (vhost) (rabbitmq_detailed_queue_messages{queue="kcc.dead"})',
                    "{{vhost}}",
                )
            ],
            description="Berichten die op een mens wachten: `kcc dead-letters list`.",
            thresholds=[("green", None), ("red", 1)],
        ),
        panel(
            "Wachtrijen: berichten",
            [
                target(
                    "sum by (queue) (rabbitmq_detailed_queue_messages"
                    '{queue=~"router.work|kcc.dept.($department)"})',
                    "{{queue}}",
                )
            ],
        ),
        panel(
            "Berichten verwerkt per seconde",
            [
                target(
                    dutch(
                        "sum by (service, queue, outcome) "
                        "(rate(kcc_messages_consumed_total[$__rate_interval]))",
                        "outcome",
                        OUTCOME_WORDS,
                        "uitkomst",
                    ),
                    "{{service}} {{queue}} {{uitkomst}}",
                )
            ],
        ),
        panel(
            "HTTP-antwoordtijd, 95e percentiel",
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
            "label": "Gegevensbron",
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
            "current": {"text": "Alle", "value": "$__all"},
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
        "description": "Binnen norm, wachttijden, overdrachten en tevredenheid per vakafdeling, "
        "en de gezondheid van de pijplijn: dezelfde woorden als het SLA-overzicht. Gemaakt door "
        "deploy/grafana/dashboard.py; niet in Grafana bewerken.",
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
                ("Overdrachten en tevredenheid", handoff_and_satisfaction_panels()),
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
