"""The SLA overview page (Dutch): the summary's aggregates, server-rendered.

Note: the page needs no login. It shows only per-department aggregates (counts, percentages,
durations) and never a request's text, id, agent or staff member, so it is safe to show on a
wall screen inside the operations network. The detailed API stays behind an ops token. A
token in the URL (`?token=`) was rejected: it would end up in access logs and browser history.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from sla_monitor.service import CONTEXT_EXTENSION, SlaContext
from sla_monitor.store import WINDOWS

pages_blp = Blueprint("pages", __name__, template_folder="templates")

WINDOW_LABELS = {"1h": "afgelopen uur", "1d": "afgelopen dag", "7d": "afgelopen 7 dagen",
                 "30d": "afgelopen 30 dagen"}  # fmt: skip


def duration(seconds: float | None) -> str:
    """Business seconds as Dutch text, e.g. 5400 -> '1 u 30 min'."""
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} u {minutes} min"
    return f"{hours} u" if hours else f"{minutes} min"


def percentage(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %".replace(".", ",")


@pages_blp.get("/")
@pages_blp.get("/sla")
def overview() -> tuple[str, int, dict[str, str]]:
    window = request.args.get("window", "1d")
    if window not in WINDOWS:
        window = "1d"
    context: SlaContext = current_app.extensions[CONTEXT_EXTENSION]
    summary = context.summary(window)
    html = render_template(
        "sla_overview.html",
        summary=summary,
        window=window,
        windows=WINDOW_LABELS,
        duration=duration,
        percentage=percentage,
    )
    # Aggregates only, but still not for shared caches; refresh every minute on a wall screen.
    return html, 200, {"Cache-Control": "no-store", "Refresh": "60"}
