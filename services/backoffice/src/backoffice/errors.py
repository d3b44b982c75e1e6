"""The back office's one error shape: domain exceptions mapped to problem+json."""

from __future__ import annotations

from flask import Flask, Response
from kcc_shared.problems import problem_response, register_problem_handlers

from backoffice.inbox import InvalidTransition
from backoffice.service import NotInGroup, UnknownInbox
from backoffice.store import ItemNotFound, NotYourDepartment, UnknownDepartment

NOT_YOURS = "This item or inbox is not one of your departments'."


def register_error_handlers(app: Flask) -> None:
    register_problem_handlers(app)

    @app.errorhandler(ItemNotFound)
    def _not_found(exc: ItemNotFound) -> Response:
        return problem_response(
            404, "There is no item with this id.", title="Item not found", slug="item-not-found"
        )

    @app.errorhandler(NotYourDepartment)
    def _not_yours(exc: NotYourDepartment) -> Response:
        # Says nothing about the item: not whether it exists, nor where it is.
        return problem_response(
            403, NOT_YOURS, title="Not your department", slug="not-your-department"
        )

    @app.errorhandler(InvalidTransition)
    def _invalid(exc: InvalidTransition) -> Response:
        return problem_response(
            409, exc.detail, title="Not possible in this state", slug="invalid-transition"
        )

    @app.errorhandler(NotInGroup)
    def _not_in_group(exc: NotInGroup) -> Response:
        return problem_response(409, exc.detail, title="Not in this group", slug="not-in-group")

    @app.errorhandler(UnknownDepartment)
    def _unknown_department(exc: UnknownDepartment) -> Response:
        return problem_response(
            400,
            "The request is not valid; see `errors` for each field.",
            title="Invalid request",
            slug="validation",
            errors={"to_department": [str(exc)]},
        )

    @app.errorhandler(UnknownInbox)
    def _unknown_inbox(exc: UnknownInbox) -> Response:
        return problem_response(
            404,
            "There is no department with this id; see the organisation file.",
            title="Department not found",
            slug="department-not-found",
        )
