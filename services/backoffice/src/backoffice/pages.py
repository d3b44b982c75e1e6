"""The department inbox pages: server-rendered, in Dutch, usable with the keyboard alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from kcc_shared.events import PRIORITIES, REASON_MAX_LENGTH, TEXT_MAX_LENGTH
from kcc_shared.routing_why import routing_in_force, why_routed
from kcc_shared.web import current_user, login_required
from werkzeug.wrappers import Response

from backoffice.inbox import LISTABLE_STATES, OPEN_STATES, InvalidTransition, Item
from backoffice.schemas import TEXT_MIN_LENGTH
from backoffice.service import BackofficeContext, UnknownInbox, check_department
from backoffice.store import Action, ItemNotFound, NotYourDepartment, UnknownDepartment

pages_bp = Blueprint("pages", __name__, template_folder="templates")

LOCAL: Final = ZoneInfo("Europe/Amsterdam")
READERS: Final = ("staff", "ops", "admin")

STATE_LABELS: Final = {
    "waiting": "Wacht op behandeling",
    "claimed": "In behandeling",
    "awaiting_clarification": "Wacht op verduidelijking",
    "answered": "Beantwoord",
    "forwarded": "Doorgestuurd",
    "cancelled": "Ingetrokken",
    "closed": "Afgesloten",
    "pending": "Nog niet gerouteerd",
}
PRIORITY_LABELS: Final = {"urgent": "Spoed", "high": "Hoog", "normal": "Normaal", "low": "Laag"}
SLA_LABELS: Final = {"on_time": "Op tijd", "warning": "Bijna te laat", "overdue": "Te laat"}
EVENT_LABELS: Final = {
    "request.submitted": "Vraag gesteld door het KCC",
    "request.routed": "Toegewezen aan afdeling",
    "request.claimed": "Opgepakt",
    "request.released": "Teruggelegd in de wachtrij",
    "request.answered": "Beantwoord",
    "request.clarification_requested": "Verduidelijking gevraagd aan het KCC",
    "request.clarified": "Verduidelijking ontvangen",
    "request.reroute_requested": "Doorgestuurd",
    "request.cancelled": "Ingetrokken door het KCC",
    "request.reopened": "Heropend",
    "request.rated": "Beoordeeld",
}
ACTION_DONE: Final = {
    "claim": "Je hebt de vraag opgepakt.",
    "release": "De vraag staat weer in de wachtrij.",
    "answer": "Je antwoord is verstuurd naar het KCC.",
    "clarification_request": "Je vraag is naar het KCC gestuurd; de klok staat stil tot het "
    "antwoord er is.",
    "forward": "De vraag is doorgestuurd.",
}
_ACTION_SLUGS: Final = {
    "claim": "claim",
    "release": "release",
    "answer": "answer",
    "verduidelijking": "clarification_request",
    "doorsturen": "forward",
}


def _context() -> BackofficeContext:
    ctx: BackofficeContext = current_app.extensions["kcc.backoffice"]
    return ctx


@pages_bp.app_template_filter("lokaal")
def _local_time(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(LOCAL).strftime("%d-%m-%Y %H:%M")


@pages_bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "STATE_LABELS": STATE_LABELS,
        "PRIORITY_LABELS": PRIORITY_LABELS,
        "SLA_LABELS": SLA_LABELS,
        "EVENT_LABELS": EVENT_LABELS,
    }


@pages_bp.get("/")
def root() -> Response:
    return redirect(url_for("pages.start"))


@pages_bp.get("/inbox")
@login_required(*READERS)
def start() -> Any:
    """Staff of one department go straight to it; others choose."""
    user = current_user()
    org = _context().organisation
    departments = sorted(org.departments) if user.is_operator else sorted(user.departments)
    if len(departments) == 1:
        return redirect(url_for("pages.inbox", department=departments[0]))
    return render_template(
        "start.html",
        departments=[(d, org.departments[d].name) for d in departments if d in org.departments],
    )


@pages_bp.get("/inbox/<string:department>")
@login_required(*READERS)
def inbox(department: str) -> Any:
    ctx = _context()
    user = current_user()
    states = [s for s in request.args.getlist("state") if s in LISTABLE_STATES]
    priority = request.args.get("priority") or None
    if priority not in (None, *PRIORITIES):
        priority = None
    overdue = request.args.get("overdue") == "1"
    mine = request.args.get("mine") == "1"
    try:
        listed = ctx.inbox(
            user,
            department,
            states=states,
            priority=priority,
            overdue=overdue,
            mine=mine,
        )
    except (NotYourDepartment, UnknownInbox):
        abort(403 if not user.is_operator else 404)
    return render_template(
        "inbox.html",
        department=department,
        department_name=ctx.organisation.departments[department].name,
        listed=listed,
        states=states or list(OPEN_STATES),
        all_states=LISTABLE_STATES,
        priorities=PRIORITIES,
        priority=priority,
        overdue=overdue,
        mine=mine,
        may_act=user.role == "staff",
    )


@pages_bp.get("/items/<uuid:request_id>")
@login_required(*READERS)
def item(request_id: Any) -> Any:
    found = _visible(str(request_id))
    ctx = _context()
    departments = [
        (d.id, d.name) for d in ctx.organisation.departments.values() if d.id != found.department
    ]
    user = current_user()
    names = {d.id: d.name for d in ctx.organisation.departments.values()}
    timeline = ctx.store.timeline(found.request_id)
    routing = routing_in_force(timeline, found.department)
    return render_template(
        "item.html",
        item=found,
        sla=ctx.sla(found),
        timeline=timeline,
        # Why it landed here, in Dutch: never the routed event's reason code.
        why=why_routed(routing.details, names.get) if routing else None,
        why_routed=lambda details: why_routed(details, names.get),
        department_names=names,
        departments=departments,
        department_name=ctx.organisation.departments[found.department or ""].name
        if found.department in ctx.organisation.departments
        else found.department,
        may_act=user.role == "staff",
        mine=found.claimed_by == user.user_id,
        text_max=TEXT_MAX_LENGTH,
        reason_max=REASON_MAX_LENGTH,
    )


@pages_bp.post("/items/<uuid:request_id>/<string:slug>")
@login_required("staff")
def act(request_id: Any, slug: str) -> Response:
    name = _ACTION_SLUGS.get(slug)
    if name is None:
        abort(404)
    item_id = str(request_id)
    back = url_for("pages.item", request_id=item_id)
    text: str | None = None
    to_department: str | None = None
    if name in ("answer", "clarification_request", "forward"):
        field = "reden" if name == "forward" else "tekst"
        text = (request.form.get(field) or "").strip()
        limit = REASON_MAX_LENGTH if name == "forward" else TEXT_MAX_LENGTH
        if not TEXT_MIN_LENGTH <= len(text) <= limit:
            flash(f"Vul een tekst in van {TEXT_MIN_LENGTH} tot {limit} tekens.", "fout")
            return redirect(back, 303)
    if name == "forward":
        to_department = request.form.get("afdeling") or None
    try:
        result = _context().act(item_id, current_user(), Action(name, text, to_department))
    except (ItemNotFound, NotYourDepartment):
        abort(403)
    except InvalidTransition as exc:
        flash(f"Dat kan nu niet. {exc.detail}", "fout")
        return redirect(back, 303)
    except UnknownDepartment as exc:
        flash(f"Doorsturen lukt niet: {exc}.", "fout")
        return redirect(back, 303)
    flash(ACTION_DONE[name] if result.event else "Je had deze vraag al opgepakt.", "gelukt")
    if name == "forward" and result.item.department:
        return redirect(url_for("pages.inbox", department=result.item.department), 303)
    return redirect(back, 303)


def _visible(request_id: str) -> Item:
    user = current_user()
    try:
        found = _context().store.get(request_id)
    except ItemNotFound:
        abort(404 if user.is_operator else 403)
    try:
        check_department(user, found.department or "", _context().organisation)
    except (NotYourDepartment, UnknownInbox):
        abort(403)
    return found
