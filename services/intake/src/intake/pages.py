"""The desk ("balie") of the KCC-medewerker: server-rendered Dutch pages to file, follow,
clarify and rate; what needs action first, the team's questions, and when the citizen can
expect an answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from kcc_shared.dutch_time import LOCAL, MONTHS, moment
from kcc_shared.events import CHANNELS, PRIORITIES
from kcc_shared.privacy import redact_bsn
from kcc_shared.routing_why import routing_in_force, why_routed
from kcc_shared.web import (
    CHANNEL_LABELS,
    PRIORITY_LABELS,
    current_user,
    current_user_or_none,
    login_required,
    page_errors,
)
from marshmallow import ValidationError
from werkzeug.wrappers import Response

from intake.errors import (
    AnswerNotReusable,
    IdempotencyKeyReused,
    InvalidInput,
    NotAwaitingClarification,
    NotInState,
    NotRateable,
    NotRequestOwner,
    RequestNotFound,
)
from intake.expectation import expected_answer
from intake.reference import MalformedReference, Reference, example, looks_like_reference
from intake.reference import parse as parse_reference
from intake.schemas import (
    QUESTION_MIN_LENGTH,
    SEARCH_MAX_LENGTH,
    ClarificationSchema,
    RatingSchema,
    RequestCreateSchema,
)
from intake.service import current
from intake.stream import last_event_id, stream_response
from intake.suggestions import Suggestion
from intake.view import Request

desk_bp = Blueprint(
    "desk", __name__, template_folder="templates", static_folder="static", url_prefix="/balie"
)
page_errors(desk_bp, "desk/fout.html")


STATUS_LABELS: Final = {
    "submitted": "Ingediend",
    "routed": "Bij de afdeling, wacht op behandeling",
    "claimed": "In behandeling",
    "awaiting_clarification": "De afdeling wacht op het KCC",
    "answered": "Beantwoord",
    "closed": "Afgesloten",
    "cancelled": "Ingetrokken",
}
EVENT_LABELS: Final = {
    "request.submitted": "Vraag gesteld",
    "request.routed": "Naar afdeling",
    "request.claimed": "Opgepakt",
    "request.released": "Terug in de wachtrij",
    "request.reroute_requested": "Doorsturen gevraagd",
    "request.clarification_requested": "Vraag van de afdeling aan het KCC",
    "request.clarified": "Verduidelijking van het KCC",
    "request.answered": "Antwoord",
    "request.rated": "Beoordeling van het KCC",
    "request.reopened": "Heropend",
    "request.cancelled": "Ingetrokken",
    "request.sla_warning": "Termijn loopt bijna af",
    "request.sla_breached": "Termijn verstreken",
}
AGENT: Final = ("agent",)
WAITING: Final = "awaiting_clarification"
# The desk's status filter: what the KCC-medewerker chooses → the statuses it shows.
STATUS_FILTERS: Final = {
    "": ("Alle", ()),
    "actie": ("Actie nodig", (WAITING,)),
    "lopend": ("Lopend", ("submitted", "routed", "claimed")),
    "beantwoord": ("Beantwoord", ("answered",)),
    "afgesloten": ("Afgesloten", ("closed",)),
    "ingetrokken": ("Ingetrokken", ("cancelled",)),
}
VIEWS: Final = {"mijn": "Mijn vragen", "team": "Vragen van mijn team"}


@desk_bp.app_template_filter("datum")
def _local_date(when: datetime) -> str:
    """The day in Dutch words: 3 december 2026."""
    day = when.astimezone(LOCAL).date()
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


@desk_bp.app_context_processor
def _labels() -> dict[str, Any]:
    context = current()
    departments = {d.id: d.name for d in context.organisation.departments.values()}
    user = current_user_or_none()
    now = context.store.now()
    return {
        # Questions a department asked back, waiting for this KCC-medewerker: in the title
        # and the header of every desk page.
        "action_count": context.store.count(user, WAITING)
        if user is not None and user.role == "agent"
        else 0,
        "expected": lambda r: expected_answer(r, context.organisation, now),
        # 'vandaag 10:14', 'donderdag 3 december 09:05', as the inbox and the overview say it.
        "moment_text": lambda when: moment(when, LOCAL, now),
        "status_labels": STATUS_LABELS,
        "event_labels": EVENT_LABELS,
        "priority_labels": PRIORITY_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "departments": departments,
        # Why a routed event chose its department, in Dutch (never its reason code).
        "why_routed": lambda details: why_routed(details, departments.get),
    }


@desk_bp.get("")
@login_required(*AGENT)
def desk() -> Any:
    """The questions (mine or my team's): those waiting for the KCC first, then the rest,
    filtered by status and found by text, reference or citizen reference."""
    # Before the lists: a change committed while they are read is then sent by the stream,
    # never missed by both (read after, it could count a change the lists do not show).
    position = current().feed.latest()
    user = current_user()
    view = request.args.get("weergave", "mijn")
    status = request.args.get("status", "")
    search = request.args.get("zoek", "").strip()
    errors: dict[str, str] = {}
    if view not in VIEWS or (view == "team" and user.team is None):
        errors["weergave"] = (
            "Je hoort niet bij een team; kies Mijn vragen."
            if view == "team"
            else "Kies Mijn vragen of Vragen van mijn team."
        )
    if status not in STATUS_FILTERS:
        errors["status"] = "Kies een status uit de lijst."
    reference: Reference | None = None
    if len(search) > SEARCH_MAX_LENGTH:
        errors["zoek"] = f"Zoek met hoogstens {SEARCH_MAX_LENGTH} tekens."
    elif len(search) == 1:
        errors["zoek"] = "Zoek met minstens 2 tekens."
    elif looks_like_reference(search):
        try:
            reference = parse_reference(search)
        except MalformedReference:
            errors["zoek"] = (
                f"Dit is geen volledig kenmerk. Een kenmerk ziet eruit als {example()}."
            )
    context = current()
    filters = {"weergave": view, "status": status, "zoek": search}
    if errors:
        return _list_page(filters, errors, [], [], 0, position), 400
    scope = "team" if view == "team" else "mine"
    found: dict[str, Any] = {
        "scope": scope,
        "reference": reference,
        "text": None if reference is not None else search or None,
    }
    shown = STATUS_FILTERS[status][1]
    waiting = (
        context.store.list(user, statuses=(WAITING,), page_size=100, **found).items
        if not shown or WAITING in shown
        else []
    )
    rest = (
        context.store.list(user, statuses=shown, excluded=(WAITING,), page_size=100, **found)
        if status != "actie"
        else None
    )
    return _list_page(
        filters,
        {},
        waiting,
        rest.items if rest else [],
        rest.total if rest else 0,
        position,
    )


def _list_page(
    filters: dict[str, str],
    errors: dict[str, str],
    waiting: list[Request],
    rest: list[Request],
    total: int,
    position: int,
) -> str:
    return render_template(
        "desk/desk.html",
        filters=filters,
        errors=errors,
        waiting=waiting,
        requests=rest,
        total=total,
        views=VIEWS,
        team_view=filters["weergave"] == "team",
        status_filters={k: label for k, (label, _) in STATUS_FILTERS.items()},
        feed_position=position,
    )


@desk_bp.get("/nieuw")
@login_required(*AGENT)
def new() -> Any:
    """The form for a new question: one step from every desk page."""
    return _new_page({}, {})


def _new_page(
    form: dict[str, Any],
    errors: dict[str, Any],
    status: int = 200,
    *,
    suggestions: list[Suggestion] | None = None,
    summary_title: str = "De vraag is niet verstuurd",
    notice: str | None = None,
) -> Any:
    context = current()
    page = render_template(
        "desk/new.html",
        form=_redisplayed(form),
        errors=errors,
        summary_title=summary_title,
        notice=notice,
        suggestions=suggestions,
        suggestions_said=_suggestions_said(suggestions),
        error_links={f: f if f in FORM_FIELDS else "question" for f in errors},
        categories=list(context.organisation.categories.values()),
        priorities=PRIORITIES,
        channels=CHANNELS,
        # A fresh key per rendered form: a double click or a resent form files once.
        idempotency_key=_form_key(form) or str(uuid.uuid4()),
        feed_position=context.feed.latest(),
    )
    return page, status


FORM_FIELDS: Final = ("question", "category", "priority", "channel", "citizen_ref")
# What the suggestion buttons post besides the form: not part of the question.
_REUSE_FIELDS: Final = ("csrf_token", "antwoord", "bevestigd")


def _suggestions_said(found: list[Suggestion] | None) -> str:
    """What the live region says about the suggestions (aria-live: read out when it changes)."""
    if found is None:
        return ""
    if not found:
        return "Geen eerder beantwoorde vraag gevonden die hierop lijkt."
    if len(found) == 1:
        return "1 eerder beantwoorde vraag gevonden die hierop lijkt."
    return f"{len(found)} eerder beantwoorde vragen gevonden die hierop lijken."


def _question_form() -> dict[str, str]:
    return {k: v for k, v in request.form.items() if k not in _REUSE_FIELDS}


@desk_bp.post("/nieuw/eerdere-antwoorden")
@login_required(*AGENT)
def earlier_answers() -> Any:
    """The new-question form again with the reusable answers most like the question: what
    the page shows while typing (desk.js asks here), and the button without script."""
    form = _question_form()
    question = form.get("question", "").strip()
    too = "kort" if len(question) < QUESTION_MIN_LENGTH else "lang" if len(question) > 4000 else ""
    if too:
        return _new_page(
            form,
            {
                "question": f"Typ minstens {QUESTION_MIN_LENGTH} tekens van de vraag om "
                "eerdere antwoorden te zoeken."
                if too == "kort"
                else "Een vraag heeft hoogstens 4000 tekens; kort hem in om te zoeken."
            },
            400,
            summary_title="Er is niet gezocht",
        )
    return _new_page(form, {}, suggestions=current().suggestions.search(question))


@desk_bp.post("/nieuw/beantwoord")
@login_required(*AGENT)
def answered_with() -> Any:
    """ "Hiermee is de vraag beantwoord": a step to confirm, then counted (nothing is filed)."""
    form = _question_form()
    context = current()
    request_id = _uuid(request.form.get("antwoord"))
    gone = (
        "Dit antwoord wordt niet meer voorgesteld: de afdeling heeft het ingetrokken of het "
        "is te oud. Er is niets geteld; je vraag staat er nog."
    )
    if request_id is None:
        return _new_page(form, {}, 404, notice=gone)
    try:
        suggestion = context.suggestions.get(request_id)
    except AnswerNotReusable:
        return _new_page(form, {}, 404, notice=gone)
    if request.form.get("bevestigd") != "ja":
        return render_template(
            "desk/reuse.html",
            s=suggestion,
            form=_redisplayed(form),
            idempotency_key=_form_key(form) or str(uuid.uuid4()),
            feed_position=context.feed.latest(),
        )
    try:
        context.use_answer(current_user(), request_id, _form_key(form))
    except AnswerNotReusable:
        return _new_page(form, {}, 404, notice=gone)
    except IdempotencyKeyReused:
        form.pop("idempotency_key", None)
        return _new_page(form, {}, 409, notice="Met dit formulier is al een ander antwoord geteld.")
    name = _department_name(suggestion.department)
    flash(f"Geteld: beantwoord zonder doorzetten, met het antwoord van {name}.")
    return redirect(url_for("desk.new"), code=303)


def _department_name(department: str) -> str:
    known = current().organisation.departments.get(department)
    return known.name if known else department


def _uuid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value and len(value) == 36 else None
    except ValueError:
        return None


@desk_bp.post("/vragen")
@login_required(*AGENT)
def file_question() -> Any:
    form = {k: v for k, v in request.form.items() if k != "csrf_token"}
    payload: dict[str, Any] = {
        "question": form.get("question", ""),
        "priority": form.get("priority") or "normal",
        "channel": form.get("channel") or "phone",
    }
    if form.get("category"):
        payload["category"] = form["category"]
    if form.get("citizen_ref", "").strip():
        payload["citizen_ref"] = form["citizen_ref"].strip()
    try:
        args = RequestCreateSchema().load(payload)
        submission = current().file(current_user(), args, _form_key(form))
    except ValidationError as exc:
        return _new_page(form, _messages(exc.messages), 400)
    except IdempotencyKeyReused:
        form.pop("idempotency_key", None)
        return _new_page(form, {"question": "Dit formulier is al verstuurd."}, 409)
    except InvalidInput as exc:
        return _new_page(form, _messages(exc.errors or {"question": None}), 400)
    flash(
        f"Je vraag is verstuurd met kenmerk {submission.request.reference}. "
        "Je ziet hier wanneer de afdeling hem oppakt."
    )
    return redirect(url_for("desk.detail", request_id=submission.request.id))


def _redisplayed(form: dict[str, Any]) -> dict[str, str]:
    """A form shown again after an error shows what was typed, without citizen service
    numbers: a refused BSN is not put back on the page (nor into the browser's history)."""
    return {k: redact_bsn(str(v))[0] for k, v in form.items() if k != "idempotency_key"}


def _form_key(form: dict[str, Any]) -> str | None:
    """The form's idempotency key: the UUID this page put in it, or nothing."""
    key = form.get("idempotency_key")
    try:
        return str(uuid.UUID(key)) if isinstance(key, str) and len(key) == 36 else None
    except ValueError:
        return None


@desk_bp.get("/vragen/<uuid:request_id>")
@login_required(*AGENT)
def detail(request_id: uuid.UUID) -> str:
    context = current()
    position = context.feed.latest()  # before the request is read (see desk())
    try:
        request_ = context.store.get(str(request_id), current_user())
    except RequestNotFound:
        abort(404)
    question = next(
        (
            e.details.get("text")
            for e in reversed(request_.timeline)
            if e.type == "request.clarification_requested"
        ),
        None,
    )
    user = current_user()
    return render_template(
        "desk/request.html",
        r=request_,
        mine=request_.agent_id == user.user_id,
        # Who may answer the department's question: the filer, or a teammate whose colleague's
        # shift ended (the store checks it again).
        may_clarify=request_.agent_id == user.user_id
        or (user.team is not None and request_.team == user.team),
        open_question=question if request_.status == "awaiting_clarification" else None,
        routing=routing_in_force(request_.timeline, request_.department),
        feed_position=position,
    )


@desk_bp.post("/vragen/<uuid:request_id>/verduidelijking")
@login_required(*AGENT)
def answer_question(request_id: uuid.UUID) -> Response:
    try:
        args = ClarificationSchema().load({"text": request.form.get("text", "")})
    except ValidationError:
        flash("Schrijf eerst je antwoord op de vraag van de afdeling.", "fout")
        return _back(request_id)
    return _act(
        request_id,
        "Je antwoord is naar de afdeling gestuurd.",
        lambda: current().clarify(current_user(), str(request_id), args["text"]),
    )


@desk_bp.post("/vragen/<uuid:request_id>/beoordeling")
@login_required(*AGENT)
def rate_answer(request_id: uuid.UUID) -> Response:
    payload: dict[str, Any] = {
        "thanks": request.form.get("thanks") == "ja",
        "reopen": request.form.get("reopen") == "ja",
        "comment": request.form.get("comment", "").strip() or None,
    }
    score = request.form.get("score", "")
    payload["score"] = int(score) if score.isdigit() else None
    try:
        args = RatingSchema().load(payload)
    except ValidationError as exc:
        flash("Beoordeling niet verstuurd: " + _sentence(exc.messages), "fout")
        return _back(request_id)
    done = (
        "De vraag gaat terug naar de afdeling, met je toelichting."
        if args["reopen"]
        else "Dank voor je beoordeling" + (" en je bedankje!" if args["thanks"] else ".")
    )
    return _act(request_id, done, lambda: current().rate(current_user(), str(request_id), args))


@desk_bp.get("/vragen/<uuid:request_id>/intrekken")
@login_required(*AGENT)
def confirm_cancel(request_id: uuid.UUID) -> Any:
    """Withdrawing cannot be undone: a step to confirm it (the page works without script)."""
    return _cancel_page(request_id, None, 200)


def _cancel_page(request_id: uuid.UUID, error: str | None, status: int) -> Any:
    try:
        request_ = current().store.get(str(request_id), current_user())
    except RequestNotFound:
        abort(404)
    return render_template(
        "desk/cancel.html",
        r=request_,
        error=error,
        mine=request_.agent_id == current_user().user_id,
        feed_position=current().feed.latest(),
    ), status


@desk_bp.post("/vragen/<uuid:request_id>/intrekken")
@login_required(*AGENT)
def cancel(request_id: uuid.UUID) -> Any:
    if request.form.get("bevestigd") != "ja":
        return _cancel_page(
            request_id, "Kruis aan dat je de vraag wilt intrekken; er is niets ingetrokken.", 400
        )
    reason = request.form.get("reden", "").strip()
    if len(reason) > 1000:
        return _cancel_page(request_id, "Schrijf een reden van hoogstens 1000 tekens.", 400)
    return _act(
        request_id,
        "Je vraag is ingetrokken; de afdeling is op de hoogte.",
        lambda: current().cancel(current_user(), str(request_id), reason or None),
    )


@desk_bp.get("/stream")
@login_required(*AGENT)
def stream() -> Response:
    """The live stream for the page's EventSource (the session, not a bearer token)."""
    return stream_response(current().feed, current_user().user_id, last_event_id())


def _act(request_id: uuid.UUID, done: str, action: Any) -> Response:
    try:
        action()
    except RequestNotFound:
        abort(404)
    except NotRequestOwner:
        flash("Alleen de KCC-medewerker die de vraag stelde kan dit doen.", "fout")
    except NotInState as exc:
        flash(_state_message(exc), "fout")
    else:
        flash(done)
    return _back(request_id)


def _state_message(exc: NotInState) -> str:
    if isinstance(exc, NotAwaitingClarification):
        return "Er staat geen vraag van de afdeling open (meer)."
    if isinstance(exc, NotRateable):
        return (
            "Deze vraag is al beoordeeld."
            if exc.state == "closed"
            else "Je kunt pas beoordelen als er een antwoord is."
        )
    return "Deze vraag kan niet meer worden ingetrokken."


def _back(request_id: uuid.UUID) -> Response:
    return redirect(url_for("desk.detail", request_id=request_id), code=303)


# The schemas' messages are English (they serve the API); the page says it in Dutch.
HINTS: Final = {
    "question": "Beschrijf de vraag in 10 tot 4000 tekens.",
    "category": "Kies een onderwerp uit de lijst (of geen).",
    "priority": "Kies een prioriteit uit de lijst.",
    "channel": "Kies een kanaal uit de lijst.",
    "citizen_ref": "Een kenmerk uit jullie eigen systeem (max. 64 tekens), nooit een BSN.",
    "tags": "Labels zijn hier niet te kiezen.",
    "score": "Kies een cijfer van 1 tot 5.",
    "comment": "Schrijf een toelichting van hoogstens 1000 tekens; verplicht als je de vraag "
    "terugstuurt.",
    "reopen": "Terugsturen kan alleen bij een 1 of een 2.",
    "thanks": "Vink het bedankje aan of niet.",
}


def _messages(messages: Any) -> dict[str, str]:
    fields = messages.keys() if isinstance(messages, dict) else ["question"]
    return {f: HINTS.get(f, "Controleer dit veld.") for f in fields}


def _sentence(messages: Any) -> str:
    return " ".join(_messages(messages).values())
