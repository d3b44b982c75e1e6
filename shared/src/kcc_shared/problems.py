"""One error shape for every HTTP service: application/problem+json (RFC 9457)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, json
from marshmallow import Schema, fields
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from kcc_shared.privacy import redact_bsn

__all__ = [
    "PROBLEM_JSON",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Problem",
    "ProblemSchema",
    "Unauthorized",
    "log_database_unavailable",
    "problem_response",
    "register_problem_handlers",
]

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ProblemSchema(Schema):
    type = fields.String(metadata={"description": "A URI naming the kind of problem."})
    title = fields.String(metadata={"description": "Short summary of the kind of problem."})
    status = fields.Integer()
    detail = fields.String(metadata={"description": "What went wrong here, in plain words."})
    errors = fields.Dict(
        keys=fields.String(),
        metadata={"description": "Per field (dotted path), the list of problems with it."},
    )


class Problem(Exception):
    """Raise to answer with a problem; subclasses name a condition and fix status and title."""

    status: int = 400
    title: str = "Bad request"
    slug: str = "bad-request"

    def __init__(self, detail: str, *, errors: Mapping[str, list[str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = dict(errors) if errors else None


class Unauthorized(Problem):
    status, title, slug = 401, "Not authenticated", "unauthorized"


class Forbidden(Problem):
    status, title, slug = 403, "Not allowed", "forbidden"


class NotFound(Problem):
    status, title, slug = 404, "Not found", "not-found"


class Conflict(Problem):
    status, title, slug = 409, "Conflict", "conflict"


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    slug: str | None = None,
    errors: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": f"https://kcc.example/problems/{slug or phrase.lower().replace(' ', '-')}",
        "title": title or phrase,
        "status": status,
        "detail": redact_bsn(detail)[0],
    }
    if errors:
        body["errors"] = _without_bsn(_flatten_errors(errors))
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    if status == 401:
        response.headers.setdefault("WWW-Authenticate", 'Bearer realm="kcc"')
    return response


def _flatten_errors(errors: Mapping[str, Any], prefix: str = "") -> dict[str, list[str]]:
    """webargs nests errors by location and field; clients want `field.path: [messages]`."""
    flat: dict[str, list[str]] = {}
    for key, value in errors.items():
        if key in ("json", "query", "form", "headers", "view_args") and not prefix:
            flat.update(_flatten_errors(value) if isinstance(value, Mapping) else {key: value})
            continue
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten_errors(value, f"{path}."))
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            flat[path] = list(value)
        else:
            flat[path] = [str(value)]
    return flat


def _without_bsn(errors: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """An answer never repeats a refused BSN: not in a message and not in a field name (an
    unknown field's name is the client's text: {"123456782": 1} is answered as "[BSN]")."""
    clean: dict[str, list[str]] = {}
    for key, messages in errors.items():
        clean.setdefault(redact_bsn(key)[0], []).extend(redact_bsn(m)[0] for m in messages)
    return clean


def log_database_unavailable(exc: OperationalError) -> None:
    """The log line of a request that found the database unreachable (the API's and the
    pages'). Only the driver's error class: its message and the URL may hold a password."""
    log.warning("database_unavailable", extra={"error_type": type(exc.orig).__name__})


def register_problem_handlers(app: Flask) -> None:
    """Every error a client can see, including Flask's and webargs', becomes a problem."""

    @app.errorhandler(Problem)
    def _problem(exc: Problem) -> Response:
        return problem_response(
            exc.status, exc.detail, title=exc.title, slug=exc.slug, errors=exc.errors
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        # Keep the exception's own headers (a 405's Allow, a 401's WWW-Authenticate, a 429's
        # Retry-After): the problem body replaces only the body.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        data = getattr(exc, "data", None) or {}
        messages = data.get("messages") if isinstance(data, Mapping) else None
        if messages:
            return problem_response(
                400 if status == 422 else status,
                "The request is not valid; see `errors` for each field.",
                title="Invalid request",
                slug="validation",
                errors=messages,
                headers=headers,
            )
        detail = exc.description or HTTPStatus(status).phrase
        return problem_response(status, detail, headers=headers)

    @app.errorhandler(OperationalError)
    def _database_unavailable(exc: OperationalError) -> Response:
        # A database restart or failover: the client should retry, not report a bug.
        log_database_unavailable(exc)
        return problem_response(
            503,
            "The database is not reachable right now. Retry in a moment; a POST with the "
            "same Idempotency-Key is never stored twice.",
            title="Service unavailable",
            slug="database-unavailable",
            headers={"Retry-After": "1"},
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("request_failed", extra={"error_type": type(exc).__name__}, exc_info=exc)
        return problem_response(500, "Something went wrong on our side; it has been logged.")
