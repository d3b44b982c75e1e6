"""The generated dashboard and SLA targets match their generators, and every query is sound."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
WINDOWS = ("1h", "1d", "7d")
# Metrics of RabbitMQ's rabbitmq_prometheus plugin (3.10, /metrics/detailed with the families
# queue_coarse_metrics and queue_consumer_count) and Prometheus' own `up`.
EXTERNAL_METRICS = {
    "rabbitmq_detailed_queue_messages",
    "rabbitmq_detailed_queue_messages_ready",
    "rabbitmq_detailed_queue_consumers",
    "up",
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
PROMQL_WORDS |= {"unless", "bool", "offset", "inf", "nan"}


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dashboard = load(ROOT / "deploy" / "grafana" / "dashboard.py")
targets = load(ROOT / "deploy" / "prometheus" / "targets.py")


def expand(expr: str) -> list[str]:
    """The query as Prometheus gets it, once per value of $window."""
    fixed = expr.replace("$__rate_interval", "1m").replace("$department", ".*")
    return sorted({fixed.replace("$window", w) for w in WINDOWS})


def dashboard_queries() -> list[tuple[str, str]]:
    return [
        (title, e) for title, expr in dashboard.queries(dashboard.build()) for e in expand(expr)
    ]


def rules() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += group["rules"]
    return found


def metric_names(expr: str) -> set[str]:
    """Metric and recording-rule names in a PromQL expression (a lexer, not a parser)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    text = re.sub(r"\{[^}]*\}", "", text)  # matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if not call and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def exported_metrics() -> set[str]:
    """Every kcc_* metric name defined in the services' and shared code."""
    names: set[str] = set()
    for path in [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("shared/src/**/*.py")]:
        names |= set(re.findall(r'"(kcc_[a-z0-9_]+)"', path.read_text()))
    return names


def test_the_committed_dashboard_is_what_the_generator_builds() -> None:
    assert dashboard.OUTPUT.read_text() == dashboard.render(), (
        "deploy/grafana/dashboards/kcc-sla.json is stale: run python deploy/grafana/dashboard.py"
    )


def test_the_committed_sla_targets_match_the_packaged_organisation() -> None:
    from kcc_shared.organisation import load_organisation

    assert targets.TARGETS_FILE.read_text() == targets.render(load_organisation(None)), (
        "kcc-sla-targets.yml is stale: run python deploy/prometheus/targets.py"
    )


def test_every_panel_has_a_query_and_ids_are_unique() -> None:
    built = dashboard.build()
    ids = [p["id"] for p in built["panels"]]
    assert len(ids) == len(set(ids))
    for p in built["panels"]:
        assert p["type"] == "row" or p["targets"], p["title"]


@pytest.mark.parametrize(("title", "expr"), dashboard_queries())
def test_every_metric_a_panel_uses_is_exported_or_recorded(title: str, expr: str) -> None:
    recorded = {r["record"] for r in rules() if "record" in r}
    known = exported_metrics() | EXTERNAL_METRICS
    for name in metric_names(expr):
        if ":" in name:
            assert name in recorded, f"{title}: recording rule {name} is not defined"
        else:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in known or base in known, f"{title}: no service exports {name}"


def test_every_rule_uses_exported_metrics_and_defined_recordings() -> None:
    all_rules = rules()
    recorded = {r["record"] for r in all_rules if "record" in r}
    known = exported_metrics() | EXTERNAL_METRICS
    for rule in all_rules:
        for name in metric_names(rule["expr"]):
            assert name in known or name in recorded, f"{rule}: unknown metric {name}"


def test_every_alert_has_severity_summary_description_and_runbook() -> None:
    operations = (ROOT / "docs" / "operations.md").read_text().lower()
    alerts = [r for r in rules() if "alert" in r]
    assert alerts
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])
        anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert f"### {anchor}" in operations, f"docs/operations.md has no section {anchor}"


def test_every_alert_has_a_promtool_test() -> None:
    tested = "\n".join(p.read_text() for p in (ROOT / "deploy/prometheus/tests").glob("*.yml"))
    for alert in (r["alert"] for r in rules() if "alert" in r):
        assert f"alertname: {alert}" in tested, f"no promtool test for {alert}"


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """promtool parses rule expressions: check every query as a recording rule."""
    promtool = require_tool("promtool", "Debian package prometheus; see .ci/run")
    queries = [expr for _, expr in dashboard_queries()]
    file = tmp_path / "queries.yml"
    file.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {"record": f"query_{n}", "expr": q} for n, q in enumerate(queries)
                        ],
                    }
                ]
            }
        )
    )
    result = subprocess.run(
        [promtool, "check", "rules", str(file)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# English words the dashboard used before it spoke Dutch; none may come back in what people
# read (titles, descriptions, legends, variable labels). PromQL and metric names stay as they are.
ENGLISH = re.compile(
    r"\b(compliance|per department|per clock|objective|first response|resolution|median|"
    r"percentile|open requests|oldest|longest|breaches|handoffs?|average|ratings?|score|thanks|"
    r"questions?|submitted|routed|latency|backlog|unsent|dead letters|queue depth|messages|"
    r"consumed|data source|burn rate|all)\b",
    re.IGNORECASE,
)
# The overview page's words (services/sla-monitor templates) the dashboard must use too.
PAGE_WORDS = (
    "Binnen norm",
    "Eerste reactie",
    "Afhandeling",
    "Open vragen",
    "Doorlooptijd per overdracht",
    "Gem. waardering",
    "Bedankjes",
    "Doorgestuurd",
)


def _people_text(built: dict[str, Any]) -> list[str]:
    texts = [built["title"], built["description"]]
    for p in built["panels"]:
        texts += [p["title"], p.get("description", "")]
        texts += [t.get("legendFormat", "") for t in p.get("targets", [])]
    texts += [v.get("label", "") for v in built["templating"]["list"]]
    return texts


def test_the_dashboard_speaks_dutch_in_everything_people_read() -> None:
    for text in _people_text(dashboard.build()):
        # Legends name label values in braces ({{department}}); the words around them count.
        readable = re.sub(r"\{\{\s*\w+\s*\}\}|`[^`]*`|\w+\.\w+\b|Kcc\w+", "", text)
        found = ENGLISH.search(readable)
        assert found is None, f"English {found[0]!r} in {text!r}"


def test_the_dashboard_uses_the_words_of_the_overview_page() -> None:
    everything = " ".join(_people_text(dashboard.build()))
    for word in PAGE_WORDS:
        assert word in everything, word
    template = (
        ROOT / "services/sla-monitor/src/sla_monitor/templates/sla_overview.html"
    ).read_text()
    for word in PAGE_WORDS:
        assert word in template, f"the page no longer says {word!r}: keep both in step"


def test_the_handoff_time_has_its_panel_per_pair_of_departments() -> None:
    panels = [
        p
        for p in dashboard.build()["panels"]
        if "kcc_request_handoff_business_seconds_bucket" in str(p.get("targets"))
    ]
    assert [p["title"] for p in panels] == [
        "Doorlooptijd per overdracht: 90e percentiel ($window)",
        "Doorlooptijd per overdracht: mediaan ($window)",
    ]
    for p in panels:
        assert "from_department, to_department, le" in p["targets"][0]["expr"]
        assert p["fieldConfig"]["defaults"]["unit"] == "s"
