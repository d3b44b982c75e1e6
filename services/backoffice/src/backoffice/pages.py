"""The department inbox pages: server-rendered, in Dutch, usable with the keyboard alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from kcc_shared.dutch_time import LOCAL, moment
from kcc_shared.events import OPEN_STATES, PRIORITIES, REASON_MAX_LENGTH, TEXT_MAX_LENGTH
from kcc_shared.routing_why import routing_in_force, why_routed
from kcc_shared.sse import StreamsFull, UserStreamsFull, parse_last_event_id, stream_response
from kcc_shared.web import (
    CHANNEL_LABELS,
    PRIORITY_LABELS,
    current_user,
    login_required,
    page_errors,
)
from werkzeug.wrappers import Response

from backoffice import worklist
from backoffice.errors import (
    BadFilter,
    InvalidTransition,
    ItemNotFound,
    NotInGroup,
    NotYourDepartment,
    UnknownDepartment,
    UnknownInbox,
)
from backoffice.inbox import LISTABLE_STATES, Item
from backoffice.schemas import TEXT_MIN_LENGTH
from backoffice.service import BackofficeContext, check_department
from backoffice.store import Action

pages_bp = Blueprint("pages", __name__, template_folder="templates")
page_errors(pages_bp, "fout.html")
# inbox.js is served from the app's own static folder (backoffice/static): a file, since the
# pages' Content-Security-Policy allows no inline script.

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
    "request.reuse_changed": "Herbruikbaarheid van het antwoord gewijzigd",
    "request.answer_reused": "Antwoord hergebruikt door het KCC",
}
ACTION_DONE: Final = {
    "claim": "Je hebt de vraag opgepakt.",
    "release": "De vraag staat weer in de wachtrij.",
    "answer": "Je antwoord is verstuurd naar het KCC.",
    "clarification_request": "Je vraag is naar het KCC gestuurd; de klok staat stil tot het "
    "antwoord er is.",
    "forward": "De vraag is doorgestuurd.",
}
# The actions on an item page, one form at a time (?actie=...).
CHOICES: Final = ("antwoorden", "verduidelijking", "doorsturen")
# The status filter offers what a department can hold; "forwarded" is no state an item stays
# in (it lands in the other inbox at once): the sent view (/inbox/doorgestuurd) shows it.
PAGE_STATES: Final = tuple(s for s in LISTABLE_STATES if s != "forwarded")
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


@pages_bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "STATE_LABELS": STATE_LABELS,
        "PRIORITY_LABELS": PRIORITY_LABELS,
        "SLA_LABELS": SLA_LABELS,
        "EVENT_LABELS": EVENT_LABELS,
        "CHANNEL_LABELS": CHANNEL_LABELS,
        "moment_text": _moment_text,
    }


def _moment_text(when: datetime | None) -> str:
    """'vandaag 10:14', 'donderdag 3 december 09:05' (kcc_shared.dutch_time)."""
    if when is None:
        return "-"
    return moment(when, LOCAL, _context().clock())


@pages_bp.get("/")
def root() -> Response:
    return redirect(url_for("pages.start"))


def _refusal(status: int, title: str, message: str) -> tuple[str, int]:
    """A Dutch error page that says what went wrong and where to go instead."""
    return render_template("fout.html", title=title, message=message), status


def _worklist_page(department: str | None) -> Any:
    ctx = _context()
    # Before the lists: a change committed while they are read is then sent by the stream,
    # never missed by both (read after, it could count a change the lists do not show).
    position = ctx.store.last_timeline_seq()
    user = current_user()
    args = request.args
    states = args.getlist("state")
    unknown_states = [s for s in states if s not in PAGE_STATES]
    priority = args.get("priority") or None
    if unknown_states or priority not in (None, *PRIORITIES):
        return _refusal(
            400,
            "Onbekend filter",
            "Dit filter kent de inbox niet (status of prioriteit). Kies een filter op de pagina.",
        )
    sla_filter = args.get("filter") or None
    try:
        work = worklist.build(
            ctx,
            user,
            department=department,
            sla_filter=sla_filter,
            priority=priority,
            states=states,
        )
    except BadFilter as exc:
        return _refusal(400, "Onbekend filter", str(exc))
    except UnknownInbox:
        return _refusal(
            404, "Afdeling bestaat niet", "Er is geen afdeling met deze naam in de organisatie."
        )
    except NotYourDepartment:
        return _refusal(
            403,
            "Niet jouw afdeling",
            "Je werkt niet voor deze afdeling, dus je ziet haar inbox niet. Kies een van je "
            "eigen afdelingen.",
        )
    names = {d.id: d.name for d in ctx.organisation.departments.values()}
    scope = list(names) if department is None and user.is_operator else None
    return render_template(
        "inbox.html",
        work=work,
        department=department,
        department_name=names[department] if department else None,
        sla_filter=sla_filter,
        states=states or list(OPEN_STATES),
        all_states=PAGE_STATES,
        priorities=PRIORITIES,
        priority=priority,
        filtered=bool(args.getlist("state") or priority),
        may_act=user.role == "staff",
        my_thanks=(
            ctx.store.ratings(answered_by=user.user_id, limit=10) if user.role == "staff" else []
        ),
        department_thanks=ctx.store.ratings(
            departments=[department] if department else (scope or sorted(user.departments)),
            limit=10,
        ),
        # "Je antwoord hielp": how often reusable answers answered a citizen at the desk.
        my_reuses=(ctx.store.reuses(answered_by=user.user_id) if user.role == "staff" else []),
        my_reuse_total=(
            ctx.store.reuse_total(answered_by=user.user_id) if user.role == "staff" else 0
        ),
        department_reuses=ctx.store.reuses(
            departments=[department] if department else (scope or sorted(user.departments))
        ),
        department_reuse_total=ctx.store.reuse_total(
            departments=[department] if department else (scope or sorted(user.departments))
        ),
        feed_position=position,
    )


@pages_bp.get("/inbox")
@login_required(*READERS)
def start() -> Any:
    """All the person's departments in one list, with a switcher and counts per department."""
    return _worklist_page(None)


@pages_bp.get("/inbox/<string:department>")
@login_required(*READERS)
def inbox(department: str) -> Any:
    return _worklist_page(department)


@pages_bp.get("/inbox/doorgestuurd")
@login_required("staff")
def forwarded() -> Any:
    """What I forwarded, where it arrived and when it was picked up there."""
    ctx = _context()
    names = {d.id: d.name for d in ctx.organisation.departments.values()}
    return render_template(
        "doorgestuurd.html",
        forwards=ctx.store.forwards_by(current_user().user_id),
        department_names=names,
        now=ctx.clock(),
    )


@pages_bp.get("/inbox/live")
@login_required(*READERS)
def live() -> Any:
    """The live stream for the inbox pages' EventSource (the session, not a bearer token)."""
    ctx = _context()
    user = current_user()
    feed = ctx.feed
    if feed is None:
        abort(404)
    try:
        after = parse_last_event_id(
            request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        )
    except ValueError:
        return _refusal(400, "Ongeldige positie", "last_event_id moet een geheel getal zijn.")
    keys = None if user.is_operator else frozenset(user.departments)
    try:
        subscription = feed.subscribe(user.user_id, keys)
    except UserStreamsFull:
        return _refusal(429, "Te veel live-verbindingen", "Sluit een tabblad met de inbox.")
    except StreamsFull:
        return _refusal(503, "Even te druk", "Probeer het over een paar seconden opnieuw.")
    return stream_response(feed, subscription, after)


@pages_bp.get("/items/<uuid:request_id>")
@login_required(*READERS)
def item(request_id: Any) -> Any:
    position = _context().store.last_timeline_seq()  # before the item (see _worklist_page)
    found = _visible(str(request_id))
    ctx = _context()
    user = current_user()
    choice = request.args.get("actie") or None
    if choice is not None and choice not in CHOICES:
        return _refusal(
            400,
            "Onbekende actie",
            "Deze actie bestaat niet. Kies antwoorden, verduidelijking vragen of doorsturen.",
        )
    departments = [
        (d.id, d.name) for d in ctx.organisation.departments.values() if d.id != found.department
    ]
    names = {d.id: d.name for d in ctx.organisation.departments.values()}
    timeline = ctx.store.timeline(found.request_id)
    routing = routing_in_force(timeline, found.department)
    now = ctx.clock()
    sla = ctx.sla(found, now)
    rated = [e for e in timeline if e.type == "request.rated"]
    latest = ctx.store.latest_work_events([found.request_id]).get(found.request_id, "")
    similar = ctx.similar(found, user) if found.is_open else []
    prefill = ""
    used = request.args.get("gebruik") or None
    if used is not None:
        # "Gebruik dit antwoord" without JavaScript: the form comes back filled in, to adapt.
        earlier = ctx.store.answered([used]).get(used)
        if earlier is None or not (user.is_operator or earlier.department in user.departments):
            return _refusal(
                404,
                "Antwoord niet gevonden",
                "Dit eerdere antwoord bestaat niet of hoort niet bij je afdelingen. Kies een "
                "antwoord bij de vergelijkbare vragen.",
            )
        prefill = earlier.answer
    group = ctx.group_of(found)
    items_by_id = {i.request_id: i for i in ctx.store.items_in([found.department or ""])}
    return render_template(
        "item.html",
        item=found,
        similar=similar,
        prefill=prefill,
        group=[items_by_id[r] for r in group if r in items_by_id and r != found.request_id],
        reused_times=sum(1 for e in timeline if e.type == "request.answer_reused"),
        sla=sla,
        deadline=worklist.deadline_in_words(sla, found, ctx, now) if sla else None,
        marker=worklist.MARKERS.get((latest, found.state)),
        answered_before=found.state == "waiting"
        and found.answered_by == user.user_id
        and latest == "request.reopened",
        rating=rated[-1].details if rated else None,
        timeline=timeline,
        # Why it landed here, in Dutch: never the routed event's reason code.
        why=why_routed(routing.details, names.get) if routing else None,
        why_routed=lambda details: why_routed(details, names.get),
        department_names=names,
        departments=departments,
        department_name=names.get(found.department or "", found.department),
        may_act=user.role == "staff",
        mine=found.claimed_by == user.user_id,
        choice=choice,
        text_max=TEXT_MAX_LENGTH,
        reason_max=REASON_MAX_LENGTH,
        feed_position=position,
    )


@pages_bp.post("/items/<uuid:request_id>/<string:slug>")
@login_required("staff")
def act(request_id: Any, slug: str) -> Response:
    name = _ACTION_SLUGS.get(slug)
    if name is None:
        abort(404)
    item_id = str(request_id)
    back = url_for("pages.item", request_id=item_id)
    # A refused form comes back with the same form open, the others still folded away.
    again = url_for("pages.item", request_id=item_id, actie=_CHOICE_OF.get(name)) + "#actie"
    text: str | None = None
    to_department: str | None = None
    reusable = name == "answer" and request.form.get("herbruikbaar") == "ja"
    others = request.form.getlist("ook") if name == "answer" else []
    if name in ("answer", "clarification_request", "forward"):
        field = "reden" if name == "forward" else "tekst"
        text = (request.form.get(field) or "").strip()
        limit = REASON_MAX_LENGTH if name == "forward" else TEXT_MAX_LENGTH
        if not TEXT_MIN_LENGTH <= len(text) <= limit:
            flash(f"Vul een tekst in van {TEXT_MIN_LENGTH} tot {limit} tekens.", "fout")
            return redirect(again, 303)
    if name == "forward":
        to_department = request.form.get("afdeling") or None
    action = Action(name, text, to_department, reusable=reusable)
    try:
        if others:
            results = _context().answer_together(item_id, others, current_user(), action)
            flash(
                f"Je antwoord is verstuurd naar het KCC, voor {len(results)} vragen: elke "
                "KCC-medewerker krijgt het bij zijn eigen vraag.",
                "gelukt",
            )
            return redirect(back, 303)
        result = _context().act(item_id, current_user(), action)
    except (ItemNotFound, NotYourDepartment):
        abort(403)
    except NotInGroup:
        flash(
            "Dat kan nu niet: een van de aangevinkte vragen hoort niet (meer) bij deze groep. "
            "Bekijk de groep opnieuw.",
            "fout",
        )
        return redirect(again, 303)
    except InvalidTransition as exc:
        flash(f"Dat kan nu niet: {_refusal_words(exc, item_id)}", "fout")
        return redirect(back, 303)
    except UnknownDepartment as exc:
        flash(f"Doorsturen lukt niet: {_FORWARD_REFUSALS.get(exc.reason, exc.reason)}.", "fout")
        return redirect(again, 303)
    flash(ACTION_DONE[name] if result.event else "Je had deze vraag al opgepakt.", "gelukt")
    if name == "forward":
        # Where it went and when it is picked up there: the sent view.
        return redirect(url_for("pages.forwarded"), 303)
    return redirect(back, 303)


@pages_bp.post("/items/<uuid:request_id>/herbruikbaar")
@login_required("staff")
def reuse(request_id: Any) -> Response:
    """Offer an answered question's answer to the desk, or withdraw it."""
    item_id = str(request_id)
    back = url_for("pages.item", request_id=item_id) + "#hergebruik"
    choice = request.form.get("herbruikbaar")
    if choice not in ("ja", "nee"):
        flash("Kies of het antwoord herbruikbaar is (ja of nee).", "fout")
        return redirect(back, 303)
    try:
        result = _context().change_reuse(item_id, current_user(), choice == "ja")
    except (ItemNotFound, NotYourDepartment):
        abort(403)
    except InvalidTransition:
        flash(
            "Dat kan nu niet: deze vraag is (nog) niet beantwoord. Alleen een gegeven antwoord "
            "kan herbruikbaar zijn.",
            "fout",
        )
        return redirect(back, 303)
    if result.event is None:
        flash("Dat was al zo; er is niets veranderd.", "gelukt")
    elif choice == "ja":
        flash("Het antwoord is herbruikbaar: het KCC krijgt het als suggestie.", "gelukt")
    else:
        flash(
            "Het antwoord is teruggetrokken: het KCC krijgt het niet meer als suggestie.", "gelukt"
        )
    return redirect(back, 303)


@pages_bp.post("/items/<uuid:request_id>/niet-samenvoegen")
@login_required("staff")
def keep_apart(request_id: Any) -> Response:
    """Take a question out of its group of similar questions, for good."""
    item_id = str(request_id)
    back = request.form.get("terug") or ""
    if not back.startswith("/") or back.startswith("//"):
        back = url_for("pages.item", request_id=item_id)
    try:
        _context().keep_apart(item_id, current_user())
    except (ItemNotFound, NotYourDepartment):
        abort(403)
    except NotInGroup:
        flash("Deze vraag hoort al niet bij een groep; er is niets veranderd.", "fout")
        return redirect(back, 303)
    flash("De vraag staat weer los: ze wordt niet meer met andere samengevoegd.", "gelukt")
    return redirect(back, 303)


_CHOICE_OF: Final = {
    "answer": "antwoorden",
    "clarification_request": "verduidelijking",
    "forward": "doorsturen",
}
_FORWARD_REFUSALS: Final = {
    "there is no department with this id": "die afdeling bestaat niet",
    "the request is already in this department": "de vraag is al bij deze afdeling",
}


# Why an action is refused, in Dutch (the API's problem detail says it in English).
_STATE_REFUSALS: Final = {
    "answered": "deze vraag is al beantwoord.",
    "forwarded": "deze vraag is doorgestuurd naar een andere afdeling.",
    "cancelled": "het KCC heeft deze vraag ingetrokken.",
    "closed": "deze vraag is afgesloten (beantwoord en beoordeeld).",
    "pending": "deze vraag is nog niet aan een afdeling toegewezen.",
}


def _refusal_words(exc: InvalidTransition, request_id: str) -> str:
    if exc.state in _STATE_REFUSALS:
        return _STATE_REFUSALS[exc.state]
    holder = _context().store.get(request_id).claimed_by
    if exc.state in ("claimed", "awaiting_clarification") and holder != current_user().user_id:
        return f"{holder} werkt aan deze vraag."
    if exc.state == "waiting":
        return "pak de vraag eerst op."
    if exc.state == "awaiting_clarification":
        return "het KCC heeft je verduidelijkingsvraag nog niet beantwoord; antwoorden kan wel."
    return "dat past niet bij de status van deze vraag."


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
