"""The team lead's SLA overview (Dutch), server-rendered: per department judged against the
norm, the totals, the time questions sat before a forward, per KCC team; and per department
the drill-down to the questions that are late or at risk now.

Who may look: the overview shows per-department aggregates only (counts, percentages,
durations; never a request's text, id, agent or staff member), but how each department performs
is still internal. So staff and operators log in with their API token, as on the desk and the
inbox (kcc_shared.web: session cookie, logout ends it); an operator's login lands here. An
operator who wants it on a wall screen inside the operations network sets
KCC_SLA_PUBLIC_PAGE=true. Without a secret key to sign the session (KCC_SECRET_KEY) and without
that choice the page is not served (503). A token in the URL (`?token=`) was rejected: it would
end up in access logs and browser history.

The drill-down names questions (their id and link) and who has them: never public, only after
a login, for operators and admins, and for staff of that department.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from flask import Blueprint, current_app, render_template, request
from kcc_shared.dutch_time import LOCAL, moment
from kcc_shared.web import PRIORITY_LABELS, current_user_or_none, page_errors, require_login
from werkzeug.wrappers import Response

from sla_monitor.errors import PageError, PageUnavailable
from sla_monitor.summary import WINDOWS, current

pages_blp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/sla/static",
)
page_errors(pages_blp, "sla_error.html")

PAGE_ACCESS: Final = "KCC_SLA_PAGE_ACCESS"  # app.config: "public", "login" or "off"
LIST_ACCESS: Final = "KCC_SLA_LIST_ACCESS"  # app.config: "login" or "off"
PAGE_ROLES: Final = ("staff", "ops", "admin")
# The objective the Prometheus rules hold (kcc:sla_objective:ratio) and the dashboard's amber
# line: at or above OBJECTIVE is green, from AMBER_FROM amber, below it red.
OBJECTIVE: Final = 0.95
AMBER_FROM: Final = 0.90


@pages_blp.errorhandler(PageError)
def _page_error(error: PageError) -> tuple[str, int, dict[str, str]]:
    html = render_template("sla_error.html", title=error.title, message=error.message)
    return html, error.status, {"Cache-Control": "no-store"}


@pages_blp.before_request
def _who_may_look() -> Response | None:
    if request.endpoint == "pages.static":
        return None  # the sorting script and nothing else: no figures in it
    if request.endpoint == "pages.department":
        if current_app.config.get(LIST_ACCESS, "off") != "login":
            raise PageError(
                403,
                "Alleen na inloggen",
                "De lijst met vragen per afdeling noemt vragen en medewerkers en is er daarom "
                "alleen na inloggen. Deze SLA-monitor heeft geen inlogsleutel "
                "(KCC_SECRET_KEY); vraag de beheerder.",
            )
        return require_login(*PAGE_ROLES)
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
CLOCK_LABELS: Final = {"first_response": "Eerste reactie", "resolution": "Afhandeling"}
STATE_LABELS: Final = {
    "waiting": "Wacht op oppakken",
    "claimed": "Opgepakt",
    "awaiting_clarification": "Wacht op verduidelijking",
}
RAG_LABELS: Final = {
    "rood": "Onder norm",
    "oranje": "Let op",
    "groen": "Binnen norm",
    "geen": "Geen gegevens",
}
# Severity order: the department's verdict is its worst clock's.
_RAG_ORDER: Final = ("geen", "groen", "oranje", "rood")


def _value(d: dict[str, Any], *path: str) -> Any:
    for key in path:
        d = d[key]
    return d


# The overview's sortable columns: the key in the URL (?sorteer=...) and how to read a row.
SORT_KEYS: Final[dict[str, Callable[[dict[str, Any]], Any]]] = {
    "afdeling": lambda d: d["name"].lower(),
    "oordeel": lambda d: _RAG_ORDER.index(verdict(d)),
    "eerste-reactie": lambda d: _value(d, "clocks", "first_response", "compliance"),
    "afhandeling": lambda d: _value(d, "clocks", "resolution", "compliance"),
    "te-laat": lambda d: d["late"],
    "bijna-te-laat": lambda d: d["at_risk"],
    "open": lambda d: d["open_total"],
    "oudste-open": lambda d: d["oldest_open_seconds"],
    "doorlooptijd-eerste-reactie": lambda d: _value(d, "clocks", "first_response", "p90_seconds"),
    "doorlooptijd-afhandeling": lambda d: _value(d, "clocks", "resolution", "p90_seconds"),
    "doorgestuurd": lambda d: d["handoffs_out"],
    "waardering": lambda d: d["average_rating"],
    "bedankjes": lambda d: d["thanks"],
}
ORDERS: Final = {"oplopend": False, "aflopend": True}


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


def rating(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}".replace(".", ",")


def clock_rag(clock: dict[str, Any]) -> str:
    """Red, amber or green for one clock of one department: its compliance against the
    objective; a clock open past its target or near it makes green amber at least."""
    compliance = clock["compliance"]
    if compliance is None:
        return "oranje" if clock["at_risk"] else "geen"
    if compliance < AMBER_FROM:
        return "rood"
    if compliance < OBJECTIVE or clock["open_breached"] or clock["at_risk"]:
        return "oranje"
    return "groen"


def verdict(department: dict[str, Any]) -> str:
    """The department's verdict: its worst clock, and red while a question is late."""
    worst = max((clock_rag(c) for c in department["clocks"].values()), key=_RAG_ORDER.index)
    if department["late"]:
        return "rood"
    if department["at_risk"] and worst in ("geen", "groen"):
        return "oranje"
    return worst


def team_name(team: str | None) -> str:
    """'kcc-noord' -> 'KCC Noord' (teams have ids only); no team -> 'Zonder team'."""
    if not team:
        return "Zonder team"
    words = team.replace("_", "-").split("-")
    return " ".join(w.upper() if w.lower() == "kcc" else w.capitalize() for w in words if w)


def _window() -> str:
    window = request.args.get("window", "1d")
    if window not in WINDOWS:
        raise PageError(
            400,
            "Onbekende periode",
            f"De periode moet een van deze zijn: {', '.join(WINDOWS)}.",
        )
    return window


def _sort() -> tuple[str, str]:
    key = request.args.get("sorteer", "afdeling")
    order = request.args.get("volgorde", "oplopend")
    if key not in SORT_KEYS:
        raise PageError(
            400,
            "Onbekende kolom om op te sorteren",
            f"Sorteren kan op: {', '.join(SORT_KEYS)}.",
        )
    if order not in ORDERS:
        raise PageError(
            400,
            "Onbekende sorteervolgorde",
            "De volgorde is 'oplopend' of 'aflopend'.",
        )
    return key, order


def sorted_departments(
    departments: list[dict[str, Any]], key: str, order: str
) -> list[dict[str, Any]]:
    """Sorted by one column; a row without a value (no data) always last."""
    read = SORT_KEYS[key]
    known = [d for d in departments if read(d) is not None]
    unknown = [d for d in departments if read(d) is None]
    return sorted(known, key=read, reverse=ORDERS[order]) + unknown


def _page(html: str) -> tuple[str, int, dict[str, str]]:
    # Aggregates only, but still not for shared caches; refresh every minute on a wall screen.
    return html, 200, {"Cache-Control": "no-store", "Refresh": "60"}


@pages_blp.get("/")
@pages_blp.get("/sla")
def overview() -> tuple[str, int, dict[str, str]]:
    window = _window()
    key, order = _sort()
    summary = current().summary(window)
    now: datetime = summary["generated_at"]
    return _page(
        render_template(
            "sla_overview.html",
            summary=summary,
            departments=sorted_departments(summary["departments"], key, order),
            totals=summary["totals"],
            sort_key=key,
            order=order,
            window=window,
            windows=WINDOW_LABELS,
            updated=moment(now, LOCAL, now),
            user=current_user_or_none(),
            may_drill=current_app.config.get(LIST_ACCESS) == "login",
            **_helpers(),
        )
    )


@pages_blp.get("/sla/afdelingen/<string:department>")
def department(department: str) -> tuple[str, int, dict[str, str]]:
    context = current()
    user = current_user_or_none()
    if department not in context.organisation.departments:
        raise PageError(
            404,
            "Afdeling niet gevonden",
            "Deze afdeling bestaat niet in de organisatie. Kies een afdeling in het SLA-overzicht.",
        )
    if user is not None and user.role == "staff" and department not in user.departments:
        raise PageError(
            403,
            "Niet jouw afdeling",
            "Als medewerker zie je de vragen van je eigen afdelingen; kies er een in het "
            "SLA-overzicht.",
        )
    listed = context.late_questions(department)
    now: datetime = listed["generated_at"]
    return _page(
        render_template(
            "sla_department.html",
            listed=listed,
            late=[q for q in listed["questions"] if q["level"] == "late"],
            at_risk=[q for q in listed["questions"] if q["level"] == "at_risk"],
            updated=moment(now, LOCAL, now),
            now=now,
            user=user,
            **_helpers(),
        )
    )


def _helpers() -> dict[str, Any]:
    return {
        "duration": duration,
        "percentage": percentage,
        "rating": rating,
        "clock_rag": clock_rag,
        "verdict": verdict,
        "rag_labels": RAG_LABELS,
        "team_name": team_name,
        "priority_labels": PRIORITY_LABELS,
        "clock_labels": CLOCK_LABELS,
        "state_labels": STATE_LABELS,
        "when": lambda at: moment(at, LOCAL, current().clock()) if at is not None else "-",
        "backoffice_url": current().backoffice_url,
    }
