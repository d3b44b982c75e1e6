"""The intake's one error shape: domain exceptions mapped to problem+json."""

from __future__ import annotations

from flask import Flask, Response
from kcc_shared.problems import problem_response, register_problem_handlers

from intake.store import (
    IdempotencyKeyReused,
    NotAwaitingClarification,
    NotRateable,
    NotRequestOwner,
    RequestNotCancellable,
    RequestNotFound,
)
from intake.suggestions import AnswerNotReusable


def register_error_handlers(app: Flask) -> None:
    register_problem_handlers(app)

    @app.errorhandler(RequestNotFound)
    def _not_found(exc: RequestNotFound) -> Response:
        # The same answer whether the request does not exist or belongs to someone else.
        return problem_response(
            404,
            "There is no request with this id that you may see.",
            title="Request not found",
            slug="request-not-found",
        )

    @app.errorhandler(IdempotencyKeyReused)
    def _key_reused(exc: IdempotencyKeyReused) -> Response:
        return problem_response(
            422, str(exc), title="Idempotency-Key reused", slug="idempotency-key-reused"
        )

    @app.errorhandler(RequestNotCancellable)
    def _not_cancellable(exc: RequestNotCancellable) -> Response:
        return problem_response(
            409, str(exc), title="Request cannot be cancelled", slug="request-not-cancellable"
        )

    @app.errorhandler(NotRequestOwner)
    def _not_owner(exc: NotRequestOwner) -> Response:
        return problem_response(403, str(exc), title="Not your request", slug="not-your-request")

    @app.errorhandler(NotAwaitingClarification)
    def _not_awaiting(exc: NotAwaitingClarification) -> Response:
        return problem_response(
            409, str(exc), title="No clarification question open", slug="not-awaiting-clarification"
        )

    @app.errorhandler(NotRateable)
    def _not_rateable(exc: NotRateable) -> Response:
        return problem_response(409, str(exc), title="Request cannot be rated", slug="not-rateable")

    @app.errorhandler(AnswerNotReusable)
    def _not_reusable(exc: AnswerNotReusable) -> Response:
        return problem_response(
            404,
            "There is no answer with this id that is suggested for reuse now: it does not "
            "exist, its department withdrew it, or it is older than the department's shelf "
            "life. Nothing was counted.",
            title="Reusable answer not found",
            slug="reusable-answer-not-found",
        )
