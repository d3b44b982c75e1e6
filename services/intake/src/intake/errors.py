"""The intake's domain exceptions, each with the problem+json answer it gets (kcc_shared.problems
answers any Problem; the desk pages catch them by type and say it in Dutch)."""

from __future__ import annotations

from kcc_shared.problems import Problem


class InvalidInput(Problem):
    status, title, slug = 400, "Invalid request", "validation"


class RequestNotFound(Problem):
    """No such request, or not one the caller may see (the two are not told apart)."""

    status, title, slug = 404, "Request not found", "request-not-found"

    def __init__(self) -> None:
        super().__init__("There is no request with this id that you may see.")


class NotRequestOwner(Problem):
    """Only the agent who filed a request (or, for some actions, a teammate) may act on it."""

    status, title, slug = 403, "Not your request", "not-your-request"


class IdempotencyKeyReused(Problem):
    """The Idempotency-Key was used before for a request (or a use) with different content."""

    status, title, slug = 422, "Idempotency-Key reused", "idempotency-key-reused"


class NotInState(Problem):
    """The request's state does not allow the action; `state` is the request's status."""

    status = 409

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(f"the request is {state}{detail}")
        self.state = state


class RequestNotCancellable(NotInState):
    title, slug = "Request cannot be cancelled", "request-not-cancellable"

    def __init__(self, state: str) -> None:
        super().__init__(state, " and can no longer be cancelled")


class NotAwaitingClarification(NotInState):
    title, slug = "No clarification question open", "not-awaiting-clarification"

    def __init__(self, state: str) -> None:
        super().__init__(state, ": there is no open clarification question to answer")


class NotRateable(NotInState):
    """Only an answered request can be rated, once per answer."""

    title, slug = "Request cannot be rated", "not-rateable"

    def __init__(self, state: str) -> None:
        reason = {"closed": "it has already been rated", "cancelled": "it was cancelled"}
        super().__init__(
            state, f" and cannot be rated: {reason.get(state, 'it has not been answered yet')}"
        )


class AnswerNotReusable(Problem):
    """No answer with this request id is suggested now (unknown, withdrawn or too old)."""

    status, title, slug = 404, "Reusable answer not found", "reusable-answer-not-found"

    def __init__(self) -> None:
        super().__init__(
            "There is no answer with this id that is suggested for reuse now: it does not "
            "exist, its department withdrew it, or it is older than the department's shelf "
            "life. Nothing was counted."
        )


class TooManyStreams(Problem):
    status, title, slug = 503, "Too many live streams", "too-many-streams"


class TooManyOwnStreams(Problem):
    status, title, slug = 429, "Too many live streams of yours", "too-many-own-streams"
