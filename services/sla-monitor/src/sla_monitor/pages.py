"""The SLA overview page (Dutch): the summary's aggregates, server-rendered.

Who may look: the page shows per-department aggregates only (counts, percentages, durations;
never a request's text, id, agent or staff member), but how each department performs is
still internal. So staff and operators log in with their API token, as on the desk and the
inbox (kcc_shared.web: session cookie, logout ends it). An operator who wants it on a wall
screen inside the operations network sets KCC_SLA_PUBLIC_PAGE=true. Without a secret key to
sign the session (KCC_SECRET_KEY) and without that choice the page is not served (503). A
token in the URL (`?token=`) was rejected: it would end up in access logs and browser history.
"""

from __future__ import annotations

from typing import Final

from flask import Blueprint, current_app, render_template, request
from kcc_shared.problems import Problem
from kcc_shared.web import require_login
from werkzeug.wrappers import Response

from sla_monitor.service import CONTEXT_EXTENSION, SlaContext
from sla_monitor.store import WINDOWS

pages_blp = Blueprint("pages", __name__, template_folder="templates")

PAGE_ACCESS: Final = "KCC_SLA_PAGE_ACCESS"  # app.config: "public", "login" or "off"
PAGE_ROLES: Final = ("staff", "ops", "admin")


class PageUnavailable(Problem):
    status, title, slug = 503, "SLA overview not configured", "sla-page-unavailable"


@pages_blp.before_request
def _who_may_look() -> Response | None:
    access = current_app.config.get(PAGE_ACCESS, "off")
    if access == "public":
        return None
    if access == "login":
        return require_login(*PAGE_ROLES)
    raise PageUnavailable(
        "The SLA overview needs a login: set KCC_SECRET_KEY (or KCC_SLA_PUBLIC_PAGE=true for a "
        "public view)."
    )


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
