"""The back office's domain exceptions, each with the problem+json answer it gets
(kcc_shared.problems answers any Problem; the pages catch them by type and say it in Dutch)."""

from __future__ import annotations

from kcc_shared.problems import Problem

__all__ = [
    "BadFilter",
    "InvalidTransition",
    "ItemNotFound",
    "NotInGroup",
    "NotYourDepartment",
    "UnknownDepartment",
    "UnknownInbox",
]


class ItemNotFound(Problem):
    """No such item (or, for staff, not one of their departments: the two look the same)."""

    status, title, slug = 404, "Item not found", "item-not-found"

    def __init__(self, request_id: str) -> None:
        super().__init__("There is no item with this id.")
        self.request_id = request_id


class NotYourDepartment(Problem):
    """The item or inbox belongs to a department the person does not work for. The answer
    says nothing about the item: not whether it exists, nor where it is."""

    status, title, slug = 403, "Not your department", "not-your-department"

    def __init__(self, what: str) -> None:
        super().__init__("This item or inbox is not one of your departments'.")
        self.what = what


class InvalidTransition(Problem):
    """The action does not fit the item's state (answered, held by someone else, ...)."""

    status, title, slug = 409, "Not possible in this state", "invalid-transition"

    def __init__(self, detail: str, *, state: str, action: str) -> None:
        super().__init__(detail)
        self.state = state
        self.action = action


class NotInGroup(Problem):
    """The item is not (or no longer) in a group of similar questions with the others."""

    status, title, slug = 409, "Not in this group", "not-in-group"


class UnknownDepartment(Problem):
    """A forward names a department the organisation does not have (or the item's own)."""

    status, title, slug = 400, "Invalid request", "validation"

    def __init__(self, reason: str) -> None:
        super().__init__(
            "The request is not valid; see `errors` for each field.",
            errors={"to_department": [reason]},
        )
        self.reason = reason


class UnknownInbox(Problem):
    """No department with this id in the organisation file."""

    status, title, slug = 404, "Department not found", "department-not-found"

    def __init__(self, department: str) -> None:
        super().__init__("There is no department with this id; see the organisation file.")
        self.department = department


class BadFilter(ValueError):
    """A filter value the page does not offer (a hand-edited address): said in Dutch."""
