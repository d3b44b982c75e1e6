"""The agents' API: file, follow, cancel, clarify and rate questions; the live stream; catalog."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Response, current_app, request, url_for
from flask.views import MethodView
from kcc_shared.api import BEARER, Blueprint, current_principal, errors, requires
from kcc_shared.auth import Principal
from kcc_shared.events import CHANNELS, PRIORITIES
from kcc_shared.metrics import BSN_REDACTIONS
from kcc_shared.privacy import contains_bsn, redact_bsn
from kcc_shared.problems import Problem
from kcc_shared.sse import StreamsFull, UserStreamsFull, client_gone_check, parse_last_event_id
from marshmallow import RAISE

from intake.expectation import as_json, expected_answer
from intake.metrics import (
    ANSWERS_REUSED,
    CLARIFICATIONS,
    IDEMPOTENT_REPLAYS,
    RATING_THANKS,
    RATINGS,
    REQUESTS_CANCELLED,
    REQUESTS_SUBMITTED,
    SERVICE,
    STREAMS_REFUSED,
)
from intake.reference import Reference, looks_like_reference
from intake.reference import parse as parse_reference
from intake.schemas import (
    CancelSchema,
    CatalogSchema,
    ClarificationSchema,
    RatingSchema,
    RequestCreateSchema,
    RequestDetailSchema,
    RequestPageSchema,
    RequestQueryArgsSchema,
    ReuseSchema,
    SuggestionListSchema,
    SuggestionQueryArgsSchema,
)
from intake.service import IntakeContext
from intake.store import LOCAL, NewRequest, Rating, Request
from intake.suggestions import Reuse, Suggestion

requests_blp = Blueprint(
    "requests",
    __name__,
    url_prefix="/api/v1/requests",
    description="Questions filed by KCC agents, as the agent sees them.",
)
stream_blp = Blueprint(
    "stream",
    __name__,
    url_prefix="/api/v1/stream",
    description="A live stream of the calling agent's own updates (Server-Sent Events).",
)
catalog_blp = Blueprint(
    "catalog",
    __name__,
    url_prefix="/api/v1/catalog",
    description="What an agent can choose from: categories, priorities, channels.",
)
suggestions_blp = Blueprint(
    "suggestions",
    __name__,
    url_prefix="/api/v1/suggestions",
    description="Earlier questions with the answer their department marked reusable: look "
    "before filing, and count it when the citizen was answered with one.",
)

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


# One event of the stream, as an SSE parser hands it over: the first carries only `retry`,
# each update `id`, `event: update` and `data` (JSON text). Comment lines are not events.
STREAM_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One Server-Sent Event (the fields of an event, not a JSON body).",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The feed position."},
        "event": {"type": "string", "enum": ["update"]},
        "retry": {"type": "integer", "description": "Milliseconds before reconnecting."},
        "data": {
            "type": "string",
            "description": "JSON text: {seq, request_id, status, department, entry}.",
        },
    },
    "additionalProperties": False,
}


class InvalidInput(Problem):
    status, title, slug = 400, "Invalid request", "validation"


class TooManyStreams(Problem):
    status, title, slug = 503, "Too many live streams", "too-many-streams"


class TooManyOwnStreams(Problem):
    status, title, slug = 429, "Too many live streams of yours", "too-many-own-streams"


def _context() -> IntakeContext:
    context: IntakeContext = current_app.extensions["kcc.intake"]
    return context


def _with_links(request_: Request) -> dict[str, Any]:
    body = dict(request_.__dict__)
    context = _context()
    body["expected_answer"] = as_json(
        expected_answer(request_, context.organisation, context.store.now())
    )
    body["links"] = {
        "self": url_for("requests.RequestView", request_id=request_.id),
        "cancel": url_for("requests.CancelView", request_id=request_.id),
        "clarification": url_for("requests.ClarificationView", request_id=request_.id),
        "rating": url_for("requests.RatingView", request_id=request_.id),
    }
    return body


def redacted(text: str, field: str) -> str:
    """Agent-written text without citizen service numbers (counted per field)."""
    clean, redactions = redact_bsn(text)
    if redactions:
        BSN_REDACTIONS.labels(SERVICE, field).inc(redactions)
    return clean


def clarify(context: IntakeContext, agent: Principal, request_id: str, text: str) -> Request:
    """Answer the clarification question (the API and the agent desk page share this)."""
    clarified = context.store.clarify(request_id, agent, redacted(text.strip(), "clarification"))
    CLARIFICATIONS.inc()
    context.committed()
    return clarified


def rate(
    context: IntakeContext, agent: Principal, request_id: str, args: Mapping[str, Any]
) -> Request:
    """Rate the answer once; with reopen (score 1-2 and a comment) it goes back."""
    comment = args.get("comment")
    rating = Rating(
        score=args["score"],
        thanks=args["thanks"],
        comment=redacted(comment.strip(), "rating_comment") if comment else None,
        reopen=args["reopen"],
    )
    rated = context.store.rate(request_id, agent, rating)
    RATINGS.labels(str(rating.score), "true" if rating.reopen else "false").inc()
    if rating.thanks:
        RATING_THANKS.inc()
    context.committed()
    return rated


def last_event_id() -> int | None:
    """Where a reconnecting stream resumes: the Last-Event-ID header (EventSource sends it)
    or, for a first connection, ?last_event_id= (a page knows the feed position it showed)."""
    try:
        return parse_last_event_id(
            request.headers.get("Last-Event-ID") or request.args.get("last_event_id")
        )
    except ValueError:
        raise InvalidInput(
            "Last-Event-ID must be the id of an event this stream sent (a whole number).",
            errors={"Last-Event-ID": ["Not a valid event id."]},
        ) from None


def stream_response(context: IntakeContext, agent_id: str, after: int | None) -> Response:
    """The text/event-stream response for one agent (the API and the desk page share this)."""
    try:
        # Only the agent's own feed rows (the store writes a row per agent who should see it).
        subscription = context.feed.subscribe(agent_id, frozenset({agent_id}))
    except UserStreamsFull:
        STREAMS_REFUSED.inc()
        raise TooManyOwnStreams(
            f"You already have {context.feed.max_per_user} live streams open here; close a "
            "tab with the desk, or retry in a few seconds."
        ) from None
    except StreamsFull:
        STREAMS_REFUSED.inc()
        raise TooManyStreams(
            "This server already serves its maximum of live streams; retry in a few seconds."
        ) from None
    return Response(
        context.feed.events(subscription, after, client_gone_check(request.environ)),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise InvalidInput(
            "Idempotency-Key must be 1-200 visible ASCII characters (a UUID is a good choice).",
            errors={"Idempotency-Key": ["Not a valid idempotency key."]},
        )
    if contains_bsn(key):
        # Only the key's SHA-256 is stored, but a hash of a BSN is found back by trying all
        # of them: a key holding one is refused, like any other field that must not hold one.
        raise InvalidInput(
            "Idempotency-Key may not contain a citizen service number (BSN); use a UUID.",
            errors={"Idempotency-Key": ["Contains a citizen service number (BSN)."]},
        )
    return key


def new_request(args: Mapping[str, Any]) -> NewRequest:
    """Check the catalog and strip citizen service numbers before anything is stored."""
    context = _context()
    errors: dict[str, list[str]] = {}
    category = args["category"]
    if category is not None and category not in context.organisation.categories:
        errors["category"] = [
            f"Unknown category; choose one of GET /api/v1/catalog "
            f"({', '.join(sorted(context.organisation.categories))})."
        ]
    # These two are refused rather than redacted: a reference or a label with [BSN] in it
    # would be useless, and the agent must see that it was not accepted. The answer names the
    # field and never repeats the value.
    citizen_ref = args["citizen_ref"]
    if citizen_ref is not None and contains_bsn(citizen_ref):
        errors["citizen_ref"] = [
            "A citizen service number (BSN) may not be used as a reference; use the KCC "
            "system's own reference."
        ]
    tags = [t.strip() for t in args["tags"]]
    if not all(tags):
        errors["tags"] = ["A tag may not be empty or only spaces."]
    elif any(contains_bsn(t) for t in tags):
        errors["tags"] = ["A tag may not contain a citizen service number (BSN)."]
    if errors:
        raise InvalidInput("The request is not valid; see `errors` for each field.", errors=errors)
    question, redactions = redact_bsn(args["question"].strip())
    if redactions:
        BSN_REDACTIONS.labels(SERVICE, "question").inc(redactions)
    return NewRequest(
        question=question,
        category=category,
        priority=args["priority"],
        channel=args["channel"],
        citizen_ref=citizen_ref,
        tags=tuple(dict.fromkeys(tags)),
    )


@requests_blp.route("")
class RequestsView(MethodView):
    @requests_blp.doc(
        security=BEARER,
        parameters=[
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "Send the same key when retrying: the request is created once and "
                "a retry gets the original back (header Idempotent-Replayed: true).",
            }
        ],
    )
    @requires("agent")
    @requests_blp.arguments(RequestCreateSchema)
    @requests_blp.response(202, RequestDetailSchema)
    @errors(requests_blp, 401, 403, 413, 422)
    def post(self, args: dict[str, Any]) -> Any:
        """File a question for a back-office department.

        Answers 202: the request is stored and will be routed; follow it at `links.self`.
        """
        new = new_request(args)
        context = _context()
        submission = context.store.submit(current_principal(), new, _idempotency_key())
        headers = {"Location": url_for("requests.RequestView", request_id=submission.request.id)}
        if submission.replayed:
            IDEMPOTENT_REPLAYS.inc()
            headers["Idempotent-Replayed"] = "true"
        else:
            REQUESTS_SUBMITTED.labels(new.channel, new.priority).inc()
            context.committed()
        return _with_links(submission.request), 202, headers

    @requires("agent", "ops", "admin")
    @requests_blp.doc(security=BEARER)
    @requests_blp.arguments(RequestQueryArgsSchema, location="query", unknown=RAISE)
    @requests_blp.response(200, RequestPageSchema)
    @errors(requests_blp, 401, 403)
    def get(self, args: dict[str, Any]) -> Any:
        """List my requests (or my team's, or all for operators), newest first.

        Search with `q` (words in the question or citizen reference, or a whole reference),
        `reference` or `citizen_ref`.
        """
        principal = current_principal()
        if args["scope"] == "all" and not principal.is_operator:
            raise InvalidInput("scope=all is for operators", errors={"scope": ["Not allowed."]})
        if args["scope"] == "team" and principal.team is None:
            raise InvalidInput("you are not in a team", errors={"scope": ["No team."]})
        page = _context().store.list(
            principal,
            scope=args["scope"],
            statuses=args["status"],
            priority=args["priority"],
            text=None if args["q"] is None or looks_like_reference(args["q"]) else args["q"],
            reference=_reference_of(args),
            citizen_ref=args["citizen_ref"],
            page=args["page"],
            page_size=args["page_size"],
        )
        return {
            "items": [_with_links(r) for r in page.items],
            "total": page.total,
            "page": page.page,
            "page_size": page.page_size,
        }


def _reference_of(args: Mapping[str, Any]) -> Reference | None:
    """?reference=, or ?q= when it is one (the schema refused malformed ones)."""
    if args["reference"] is not None:
        return parse_reference(args["reference"])
    if args["q"] is not None and looks_like_reference(args["q"]):
        return parse_reference(args["q"])
    return None


@requests_blp.route("/<uuid:request_id>")
class RequestView(MethodView):
    @requires("agent", "ops", "admin")
    @requests_blp.doc(security=BEARER)
    @requests_blp.response(200, RequestDetailSchema)
    @errors(requests_blp, 401, 403, 404)
    def get(self, request_id: Any) -> Any:
        """One request with its status, department, timeline and answer."""
        return _with_links(_context().store.get(str(request_id), current_principal()))


@requests_blp.route("/<uuid:request_id>/cancel")
class CancelView(MethodView):
    @requires("agent")
    @requests_blp.doc(security=BEARER)
    @requests_blp.arguments(CancelSchema)
    @requests_blp.response(200, RequestDetailSchema)
    @errors(requests_blp, 401, 403, 404, 409)
    def post(self, args: dict[str, Any], request_id: Any) -> Any:
        """Withdraw a request that is not answered yet (the department is told)."""
        reason = args["reason"]
        if reason is not None:
            reason = redacted(reason, "cancel_reason")
        context = _context()
        cancelled = context.store.cancel(str(request_id), current_principal(), reason)
        REQUESTS_CANCELLED.inc()
        context.committed()
        return _with_links(cancelled)


@requests_blp.route("/<uuid:request_id>/clarification")
class ClarificationView(MethodView):
    @requires("agent")
    @requests_blp.doc(security=BEARER)
    @requests_blp.arguments(ClarificationSchema)
    @requests_blp.response(200, RequestDetailSchema)
    @errors(requests_blp, 401, 403, 404, 409)
    def post(self, args: dict[str, Any], request_id: Any) -> Any:
        """Answer the department's clarification question (only while it is open: else 409).

        The agent who filed the request or a teammate (who takes over when a shift ended; the
        event's actor records who answered); the department gets `request.clarified` and the
        request goes back to whoever asked.
        """
        return _with_links(clarify(_context(), current_principal(), str(request_id), args["text"]))


@requests_blp.route("/<uuid:request_id>/rating")
class RatingView(MethodView):
    @requires("agent")
    @requests_blp.doc(security=BEARER)
    @requests_blp.arguments(RatingSchema)
    @requests_blp.response(200, RequestDetailSchema)
    @errors(requests_blp, 401, 403, 404, 409)
    def post(self, args: dict[str, Any], request_id: Any) -> Any:
        """Rate the answer: score 1-5, a thank-you, a comment. Once per answer (again: 409).

        The request is then `closed`; with `reopen` (score 1 or 2, and a comment) it goes back
        to the department that answered, which reads the comment (`request.reopened`).
        """
        return _with_links(rate(_context(), current_principal(), str(request_id), args))


@stream_blp.route("")
class StreamView(MethodView):
    @requires("agent")
    @stream_blp.doc(
        security=BEARER,
        parameters=[
            {
                "in": "header",
                "name": "Last-Event-ID",
                "required": False,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
                "description": "Resume after this event: every update missed since is sent "
                "first. Without it the stream starts with what happens from now on.",
            },
            {
                "in": "query",
                "name": "last_event_id",
                "required": False,
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
                "description": "The same, for a first connection (the header wins).",
            },
        ],
        responses={
            "200": {
                "description": "text/event-stream. Each message: `id` (feed position), "
                "`event: update`, `data`: {seq, request_id, status, department, entry} where "
                "entry is a timeline entry and status/department are the request's state now. "
                "Comment lines are heartbeats. The server ends a stream after a few minutes; "
                "reconnect with Last-Event-ID (EventSource does this itself).",
                "content": {"text/event-stream": {"schema": STREAM_EVENT_SCHEMA}},
            }
        },
    )
    @errors(stream_blp, 400, 401, 403, 429, 503)
    def get(self) -> Any:
        """A live stream of my requests' updates (Server-Sent Events)."""
        after = last_event_id()
        return stream_response(_context(), current_principal().user_id, after)


@catalog_blp.route("")
class CatalogView(MethodView):
    @requires("agent", "staff", "ops", "admin")
    @catalog_blp.doc(security=BEARER)
    @catalog_blp.response(200, CatalogSchema)
    @errors(catalog_blp, 401)
    def get(self) -> Any:
        """Categories (with the department they usually go to), priorities and channels."""
        org = _context().organisation
        return {
            "categories": [
                {"id": c.id, "label": c.label, "department": c.department}
                for c in org.categories.values()
            ],
            "departments": [{"id": d.id, "name": d.name} for d in org.departments.values()],
            "priorities": list(PRIORITIES),
            "channels": list(CHANNELS),
        }


def suggestion_json(suggestion: Suggestion) -> dict[str, Any]:
    return {
        "request_id": suggestion.request_id,
        "question": suggestion.question,
        "answer": suggestion.answer,
        "department": department_json(suggestion.department),
        "answered_on": suggestion.answered_at.astimezone(LOCAL).date(),
        "score": suggestion.score,
    }


def department_json(department: str) -> dict[str, str]:
    known = _context().organisation.departments.get(department)
    # A department since removed from the organisation file keeps its id as its name.
    return {"id": department, "name": known.name if known else department}


def use_answer(context: IntakeContext, agent: Principal, request_id: str, key: str | None) -> Reuse:
    """Count "Hiermee is de vraag beantwoord" (the API and the desk page share this)."""
    reuse = context.suggestions.use(request_id, agent, key)
    if not reuse.replayed:
        org = context.organisation
        ANSWERS_REUSED.labels(
            reuse.department if reuse.department in org.departments else "unknown",
            reuse.category
            if reuse.category in org.categories
            else ("none" if reuse.category is None else "unknown"),
        ).inc()
        context.committed()
    return reuse


@suggestions_blp.route("")
class SuggestionsView(MethodView):
    @requires("agent")
    @suggestions_blp.doc(security=BEARER)
    @suggestions_blp.arguments(SuggestionQueryArgsSchema, location="query", unknown=RAISE)
    @suggestions_blp.response(200, SuggestionListSchema)
    @errors(suggestions_blp, 401, 403)
    def get(self, args: dict[str, Any]) -> Any:
        """Earlier answered questions like this one, with their reusable answers.

        At most three, most alike first: each is a question a department answered and marked
        reusable (not withdrawn, not older than the department's shelf life). Show them as
        "looks like"; the KCC-medewerker judges whether the answer fits.
        """
        found = _context().suggestions.search(args["q"].strip())
        return {"suggestions": [suggestion_json(s) for s in found]}


@suggestions_blp.route("/<uuid:request_id>/used")
class SuggestionUsedView(MethodView):
    @suggestions_blp.doc(
        security=BEARER,
        parameters=[
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "Send the same key when retrying: the use is counted once and "
                "a retry gets the original back (header Idempotent-Replayed: true).",
            }
        ],
    )
    @requires("agent")
    @suggestions_blp.response(201, ReuseSchema)
    @errors(suggestions_blp, 401, 403, 404, 422)
    def post(self, request_id: Any) -> Any:
        """The citizen was answered with this reusable answer: no question is filed.

        Counted per department and category (`kcc_answers_reused_total`), and the department
        hears that its answer helped (`request.answer_reused`). 404 when the answer is not
        (or no longer) suggested.
        """
        context = _context()
        reuse = use_answer(context, current_principal(), str(request_id), _idempotency_key())
        headers = {"Idempotent-Replayed": "true"} if reuse.replayed else {}
        body = {
            "request_id": reuse.request_id,
            "department": department_json(reuse.department),
            "recorded_at": reuse.created_at,
        }
        return body, 201, headers
