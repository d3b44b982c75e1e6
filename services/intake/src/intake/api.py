"""The agents' API: file a question, follow it, cancel it, read the catalog."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import current_app, request, url_for
from flask.views import MethodView
from kcc_shared.api import BEARER, Blueprint, current_principal, errors, requires
from kcc_shared.events import CHANNELS, PRIORITIES
from kcc_shared.privacy import is_bsn, redact_bsn
from kcc_shared.problems import Problem
from marshmallow import RAISE

from intake.metrics import (
    BSN_REDACTIONS,
    IDEMPOTENT_REPLAYS,
    REQUESTS_CANCELLED,
    REQUESTS_SUBMITTED,
)
from intake.schemas import (
    CancelSchema,
    CatalogSchema,
    RequestCreateSchema,
    RequestDetailSchema,
    RequestPageSchema,
    RequestQueryArgsSchema,
)
from intake.service import IntakeContext
from intake.store import NewRequest, Request

requests_blp = Blueprint(
    "requests",
    __name__,
    url_prefix="/api/v1/requests",
    description="Questions filed by KCC agents, as the agent sees them.",
)
catalog_blp = Blueprint(
    "catalog",
    __name__,
    url_prefix="/api/v1/catalog",
    description="What an agent can choose from: categories, priorities, channels.",
)

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


class InvalidInput(Problem):
    status, title, slug = 400, "Invalid request", "validation"


def _context() -> IntakeContext:
    context: IntakeContext = current_app.extensions["kcc.intake"]
    return context


def _with_links(request_: Request) -> dict[str, Any]:
    body = dict(request_.__dict__)
    body["links"] = {
        "self": url_for("requests.RequestView", request_id=request_.id),
        "cancel": url_for("requests.CancelView", request_id=request_.id),
    }
    return body


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not _IDEMPOTENCY_KEY.match(key):
        raise InvalidInput(
            "Idempotency-Key must be 1-200 visible ASCII characters (a UUID is a good choice).",
            errors={"Idempotency-Key": ["Not a valid idempotency key."]},
        )
    return key


def _new_request(args: Mapping[str, Any]) -> NewRequest:
    """Check the catalog and strip citizen service numbers before anything is stored."""
    context = _context()
    errors: dict[str, list[str]] = {}
    category = args["category"]
    if category is not None and category not in context.organisation.categories:
        errors["category"] = [
            f"Unknown category; choose one of GET /api/v1/catalog "
            f"({', '.join(sorted(context.organisation.categories))})."
        ]
    citizen_ref = args["citizen_ref"]
    if citizen_ref is not None and (redact_bsn(citizen_ref)[1] or is_bsn(citizen_ref.strip())):
        errors["citizen_ref"] = [
            "A citizen service number (BSN) may not be used as a reference; use the KCC "
            "system's own reference."
        ]
    tags = [t.strip() for t in args["tags"]]
    if any(redact_bsn(t)[1] for t in tags):
        errors["tags"] = ["A tag may not contain a citizen service number (BSN)."]
    if errors:
        raise InvalidInput("The request is not valid; see `errors` for each field.", errors=errors)
    question, redactions = redact_bsn(args["question"].strip())
    if redactions:
        BSN_REDACTIONS.labels("question").inc(redactions)
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
        new = _new_request(args)
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
        """List my requests (or my team's, or all for operators), newest first."""
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
            page=args["page"],
            page_size=args["page_size"],
        )
        return {
            "items": [_with_links(r) for r in page.items],
            "total": page.total,
            "page": page.page,
            "page_size": page.page_size,
        }


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
            reason, redactions = redact_bsn(reason)
            if redactions:
                BSN_REDACTIONS.labels("cancel_reason").inc(redactions)
        context = _context()
        cancelled = context.store.cancel(str(request_id), current_principal(), reason)
        REQUESTS_CANCELLED.inc()
        context.committed()
        return _with_links(cancelled)


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
