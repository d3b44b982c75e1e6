"""The staff API: department inboxes, item detail, and the actions on an item."""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for
from flask.views import MethodView
from kcc_shared.api import BEARER, Blueprint, current_principal, errors, requires
from kcc_shared.auth import Principal
from marshmallow import RAISE

from backoffice.errors import ItemNotFound, NotYourDepartment
from backoffice.inbox import Item
from backoffice.schemas import (
    AnswerSchema,
    ClarificationRequestSchema,
    ForwardSchema,
    InboxQueryArgsSchema,
    InboxSchema,
    ItemDetailSchema,
    ReuseSchema,
    SimilarAnswersSchema,
)
from backoffice.service import BackofficeContext
from backoffice.store import Action

inbox_blp = Blueprint(
    "inbox",
    __name__,
    url_prefix="/api/v1/departments",
    description="A department's queue of questions from the KCC.",
)
items_blp = Blueprint(
    "items",
    __name__,
    url_prefix="/api/v1/items",
    description="One question in a department's inbox, and what staff do with it.",
)


def context() -> BackofficeContext:
    ctx: BackofficeContext = current_app.extensions["kcc.backoffice"]
    return ctx


def present(item: Item, *, timeline: bool = False) -> dict[str, Any]:
    """An item as the API shows it: its fields, its SLA state, links (and the timeline)."""
    ctx = context()
    body: dict[str, Any] = dict(item.__dict__)
    body["sla"] = ctx.sla(item)
    body["links"] = {
        "self": url_for("items.ItemView", request_id=item.request_id),
        **{
            name: url_for(f"items.{view}", request_id=item.request_id)
            for name, view in (
                ("claim", "ClaimView"),
                ("release", "ReleaseView"),
                ("answer", "AnswerView"),
                ("clarification_request", "ClarificationRequestView"),
                ("forward", "ForwardView"),
            )
        },
    }
    if timeline:
        body["timeline"] = ctx.store.timeline(item.request_id)
        body["group"] = ctx.group_of(item)
    return body


def visible_item(request_id: str, viewer: Principal) -> Item:
    """The item if the viewer may see it. Staff get the same 403 for an item of another
    department and for an id that does not exist, so an id reveals nothing."""
    try:
        item = context().store.get(request_id)
    except ItemNotFound:
        if viewer.is_operator:
            raise
        raise NotYourDepartment(request_id) from None
    if not viewer.is_operator and item.department not in viewer.departments:
        raise NotYourDepartment(request_id)
    return item


def _act(request_id: Any, action: Action) -> dict[str, Any]:
    try:
        result = context().act(str(request_id), current_principal(), action)
    except ItemNotFound:
        raise NotYourDepartment(str(request_id)) from None
    return present(result.item, timeline=True)


@inbox_blp.route("/<string:department>/inbox")
class InboxView(MethodView):
    @requires("staff", "ops", "admin")
    @inbox_blp.doc(security=BEARER)
    @inbox_blp.arguments(InboxQueryArgsSchema, location="query", unknown=RAISE)
    @inbox_blp.response(200, InboxSchema)
    @errors(inbox_blp, 401, 403, 404)
    def get(self, args: dict[str, Any], department: str) -> Any:
        """The department's queue, earliest deadline first (open items by default)."""
        listed = context().inbox(
            current_principal(),
            department,
            states=args["state"],
            priority=args["priority"],
            overdue=args["overdue"],
            mine=args["mine"],
        )
        items = [present(entry.item) for entry in listed]
        return {"department": department, "total": len(items), "items": items}


@items_blp.route("/<uuid:request_id>")
class ItemView(MethodView):
    @requires("staff", "ops", "admin")
    @items_blp.doc(security=BEARER)
    @items_blp.response(200, ItemDetailSchema)
    @errors(items_blp, 401, 403, 404)
    def get(self, request_id: Any) -> Any:
        """One item with its SLA state and full timeline."""
        return present(visible_item(str(request_id), current_principal()), timeline=True)


@items_blp.route("/<uuid:request_id>/claim")
class ClaimView(MethodView):
    @requires("staff")
    @items_blp.doc(security=BEARER)
    @items_blp.response(200, ItemDetailSchema)
    @errors(items_blp, 401, 403, 409)
    def post(self, request_id: Any) -> Any:
        """Take the item: you work on it now (claiming what you already hold changes nothing)."""
        return _act(request_id, Action("claim"))


@items_blp.route("/<uuid:request_id>/release")
class ReleaseView(MethodView):
    @requires("staff")
    @items_blp.doc(security=BEARER)
    @items_blp.response(200, ItemDetailSchema)
    @errors(items_blp, 401, 403, 409)
    def post(self, request_id: Any) -> Any:
        """Give the item back to the department's queue."""
        return _act(request_id, Action("release"))


@items_blp.route("/<uuid:request_id>/answer")
class AnswerView(MethodView):
    @requires("staff")
    @items_blp.doc(security=BEARER)
    @items_blp.arguments(AnswerSchema)
    @items_blp.response(200, ItemDetailSchema)
    @errors(items_blp, 400, 401, 403, 409)
    def post(self, args: dict[str, Any], request_id: Any) -> Any:
        """Answer the question; the agent who asked reads this text.

        With `reusable` the answer is offered to the desk as a suggestion; with
        `also_answer` the other questions of its group get the same answer, each its own.
        """
        action = Action("answer", args["text"], reusable=args["reusable"])
        others = [str(o) for o in args["also_answer"]]
        if not others:
            return _act(request_id, action)
        try:
            context().answer_together(str(request_id), others, current_principal(), action)
        except ItemNotFound:
            raise NotYourDepartment(str(request_id)) from None
        return present(context().store.get(str(request_id)), timeline=True)


@items_blp.route("/<uuid:request_id>/reusable")
class ReuseView(MethodView):
    @requires("staff")
    @items_blp.doc(security=BEARER)
    @items_blp.arguments(ReuseSchema)
    @items_blp.response(200, ItemDetailSchema)
    @errors(items_blp, 400, 401, 403, 409)
    def post(self, args: dict[str, Any], request_id: Any) -> Any:
        """Offer an answered question's answer for reuse at the desk, or withdraw it.

        Publishes `request.reuse_changed`; saying what is already so changes nothing (200).
        409 when the question has not been answered.
        """
        try:
            result = context().change_reuse(str(request_id), current_principal(), args["reusable"])
        except ItemNotFound:
            raise NotYourDepartment(str(request_id)) from None
        return present(result.item, timeline=True)


@items_blp.route("/<uuid:request_id>/ungroup")
class UngroupView(MethodView):
    @requires("staff")
    @items_blp.doc(security=BEARER)
    @items_blp.response(200, ItemDetailSchema)
    @errors(items_blp, 401, 403, 409)
    def post(self, request_id: Any) -> Any:
        """ "Niet samenvoegen": take the question out of its group of similar questions; it is
        never grouped again. 409 when it is in no group."""
        try:
            context().keep_apart(str(request_id), current_principal())
        except ItemNotFound:
            raise NotYourDepartment(str(request_id)) from None
        return present(context().store.get(str(request_id)), timeline=True)


@items_blp.route("/<uuid:request_id>/similar")
class SimilarView(MethodView):
    @requires("staff", "ops", "admin")
    @items_blp.doc(security=BEARER)
    @items_blp.response(200, SimilarAnswersSchema)
    @errors(items_blp, 401, 403, 404)
    def get(self, request_id: Any) -> Any:
        """Earlier answered questions most like this one (up to 3, best first), of your own
        departments only, reusable or not: to copy and adapt an answer."""
        viewer = current_principal()
        item = visible_item(str(request_id), viewer)
        found = context().similar(item, viewer) if item.is_open else []
        return {"items": [{**s.earlier.__dict__, "score": s.score} for s in found]}


@items_blp.route("/<uuid:request_id>/clarification-request")
class ClarificationRequestView(MethodView):
    @requires("staff")
    @items_blp.doc(security=BEARER)
    @items_blp.arguments(ClarificationRequestSchema)
    @items_blp.response(200, ItemDetailSchema)
    @errors(items_blp, 400, 401, 403, 409)
    def post(self, args: dict[str, Any], request_id: Any) -> Any:
        """Ask the agent a question back; the SLA clock pauses until the agent answers."""
        return _act(request_id, Action("clarification_request", args["text"]))


@items_blp.route("/<uuid:request_id>/forward")
class ForwardView(MethodView):
    @requires("staff")
    @items_blp.doc(security=BEARER)
    @items_blp.arguments(ForwardSchema)
    @items_blp.response(200, ItemDetailSchema)
    @errors(items_blp, 400, 401, 403, 409)
    def post(self, args: dict[str, Any], request_id: Any) -> Any:
        """Hand the item to another department (or let the rules choose), with a reason.

        It leaves this inbox at once and appears in the other one when the router has
        routed it there.
        """
        return _act(request_id, Action("forward", args["reason"], args["to_department"]))
