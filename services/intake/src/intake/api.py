"""The agents' API: file, follow, cancel, clarify and rate questions; the live stream; catalog."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import request, url_for
from flask.views import MethodView
from kcc_shared.api import BEARER, Blueprint, current_principal, errors, requires
from kcc_shared.dutch_time import LOCAL
from kcc_shared.events import CHANNELS, PRIORITIES
from kcc_shared.privacy import contains_bsn
from marshmallow import RAISE

from intake.errors import InvalidInput
from intake.expectation import as_json, expected_answer
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
from intake.service import current
from intake.stream import last_event_id, stream_response
from intake.suggestions import Suggestion
from intake.view import Request

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


def _with_links(request_: Request) -> dict[str, Any]:
    body = dict(request_.__dict__)
    context = current()
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


def idempotency_key(effect: str) -> dict[str, Any]:
    """The OpenAPI description of the Idempotency-Key header of a POST that `effect` once."""
    return {
        "in": "header",
        "name": "Idempotency-Key",
        "required": False,
        "schema": {"type": "string", "maxLength": 200},
        "description": f"Send the same key when retrying: {effect} once and a retry gets the "
        "original back (header Idempotent-Replayed: true).",
    }


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


@requests_blp.route("")
class RequestsView(MethodView):
    @requests_blp.doc(security=BEARER, parameters=[idempotency_key("the request is created")])
    @requires("agent")
    @requests_blp.arguments(RequestCreateSchema)
    @requests_blp.response(202, RequestDetailSchema)
    @errors(requests_blp, 401, 403, 413, 422)
    def post(self, args: dict[str, Any]) -> Any:
        """File a question for a back-office department.

        Answers 202: the request is stored and will be routed; follow it at `links.self`.
        """
        submission = current().file(current_principal(), args, _idempotency_key())
        headers = {"Location": url_for("requests.RequestView", request_id=submission.request.id)}
        if submission.replayed:
            headers["Idempotent-Replayed"] = "true"
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
        page = current().store.list(
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
        return _with_links(current().store.get(str(request_id), current_principal()))


@requests_blp.route("/<uuid:request_id>/cancel")
class CancelView(MethodView):
    @requires("agent")
    @requests_blp.doc(security=BEARER)
    @requests_blp.arguments(CancelSchema)
    @requests_blp.response(200, RequestDetailSchema)
    @errors(requests_blp, 401, 403, 404, 409)
    def post(self, args: dict[str, Any], request_id: Any) -> Any:
        """Withdraw a request that is not answered yet (the department is told)."""
        return _with_links(current().cancel(current_principal(), str(request_id), args["reason"]))


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
        return _with_links(current().clarify(current_principal(), str(request_id), args["text"]))


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
        return _with_links(current().rate(current_principal(), str(request_id), args))


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
        return stream_response(current().feed, current_principal().user_id, after)


@catalog_blp.route("")
class CatalogView(MethodView):
    @requires("agent", "staff", "ops", "admin")
    @catalog_blp.doc(security=BEARER)
    @catalog_blp.response(200, CatalogSchema)
    @errors(catalog_blp, 401)
    def get(self) -> Any:
        """Categories (with the department they usually go to), priorities and channels."""
        org = current().organisation
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
    known = current().organisation.departments.get(department)
    # A department since removed from the organisation file keeps its id as its name.
    return {"id": department, "name": known.name if known else department}


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
        found = current().suggestions.search(args["q"].strip())
        return {"suggestions": [suggestion_json(s) for s in found]}


@suggestions_blp.route("/<uuid:request_id>/used")
class SuggestionUsedView(MethodView):
    @suggestions_blp.doc(security=BEARER, parameters=[idempotency_key("the use is counted")])
    @requires("agent")
    @suggestions_blp.response(201, ReuseSchema)
    @errors(suggestions_blp, 401, 403, 404, 422)
    def post(self, request_id: Any) -> Any:
        """The citizen was answered with this reusable answer: no question is filed.

        Counted per department and category (`kcc_answers_reused_total`), and the department
        hears that its answer helped (`request.answer_reused`). 404 when the answer is not
        (or no longer) suggested.
        """
        reuse = current().use_answer(current_principal(), str(request_id), _idempotency_key())
        headers = {"Idempotent-Replayed": "true"} if reuse.replayed else {}
        body = {
            "request_id": reuse.request_id,
            "department": department_json(reuse.department),
            "recorded_at": reuse.created_at,
        }
        return body, 201, headers
