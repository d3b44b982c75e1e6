"""The intake's use cases: file, cancel, clarify, rate, reuse an answer. The API and the desk
pages both call these, so a question is checked, redacted and counted the same way whichever
way it came in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from flask import current_app
from kcc_shared.auth import Principal
from kcc_shared.metrics import BSN_REDACTIONS
from kcc_shared.organisation import Organisation
from kcc_shared.outbox import OutboxRelay
from kcc_shared.privacy import contains_bsn, redact_bsn
from kcc_shared.sse import LiveFeed

from intake.errors import InvalidInput
from intake.metrics import (
    ANSWERS_REUSED,
    CLARIFICATIONS,
    IDEMPOTENT_REPLAYS,
    RATING_THANKS,
    RATINGS,
    REQUESTS_CANCELLED,
    REQUESTS_SUBMITTED,
    SERVICE,
)
from intake.store import RequestStore
from intake.suggestions import Reuse, Suggestions
from intake.view import NewRequest, Rating, Request, Submission

CONTEXT_EXTENSION: Final = "kcc.intake"


@dataclass
class IntakeContext:
    """What the use cases work with, assembled once per process (intake.app)."""

    store: RequestStore
    organisation: Organisation
    relay: OutboxRelay
    feed: LiveFeed
    suggestions: Suggestions

    def committed(self) -> None:
        """A write committed an outbox row: publish it now rather than at the next poll."""
        self.relay.wake()

    def file(self, agent: Principal, args: Mapping[str, Any], key: str | None) -> Submission:
        """File a question (args as RequestCreateSchema loads them); a retry with the same
        Idempotency-Key gets the original back."""
        new = self._new_request(args)
        submission = self.store.submit(agent, new, key)
        if submission.replayed:
            IDEMPOTENT_REPLAYS.inc()
        else:
            REQUESTS_SUBMITTED.labels(new.channel, new.priority).inc()
            self.committed()
        return submission

    def _new_request(self, args: Mapping[str, Any]) -> NewRequest:
        """Check the catalog and strip citizen service numbers before anything is stored."""
        errors: dict[str, list[str]] = {}
        category = args["category"]
        categories = self.organisation.categories
        if category is not None and category not in categories:
            errors["category"] = [
                f"Unknown category; choose one of GET /api/v1/catalog "
                f"({', '.join(sorted(categories))})."
            ]
        # These two are refused rather than redacted: a reference or a label with [BSN] in it
        # would be useless, and the agent must see that it was not accepted. The answer names
        # the field and never repeats the value.
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
            raise InvalidInput(
                "The request is not valid; see `errors` for each field.", errors=errors
            )
        return NewRequest(
            question=redacted(args["question"].strip(), "question"),
            category=category,
            priority=args["priority"],
            channel=args["channel"],
            citizen_ref=citizen_ref,
            tags=tuple(dict.fromkeys(tags)),
        )

    def cancel(self, agent: Principal, request_id: str, reason: str | None) -> Request:
        """Withdraw a request that is not answered yet (the department is told)."""
        cancelled = self.store.cancel(
            request_id, agent, None if reason is None else redacted(reason, "cancel_reason")
        )
        REQUESTS_CANCELLED.inc()
        self.committed()
        return cancelled

    def clarify(self, agent: Principal, request_id: str, text: str) -> Request:
        """Answer the department's clarification question."""
        clarified = self.store.clarify(request_id, agent, redacted(text.strip(), "clarification"))
        CLARIFICATIONS.inc()
        self.committed()
        return clarified

    def rate(self, agent: Principal, request_id: str, args: Mapping[str, Any]) -> Request:
        """Rate the answer once; with reopen (score 1-2 and a comment) it goes back."""
        comment = args.get("comment")
        rating = Rating(
            score=args["score"],
            thanks=args["thanks"],
            comment=redacted(comment.strip(), "rating_comment") if comment else None,
            reopen=args["reopen"],
        )
        rated = self.store.rate(request_id, agent, rating)
        RATINGS.labels(str(rating.score), "true" if rating.reopen else "false").inc()
        if rating.thanks:
            RATING_THANKS.inc()
        self.committed()
        return rated

    def use_answer(self, agent: Principal, request_id: str, key: str | None) -> Reuse:
        """Count "Hiermee is de vraag beantwoord": the citizen was answered, nothing is filed."""
        reuse = self.suggestions.use(request_id, agent, key)
        if not reuse.replayed:
            org = self.organisation
            ANSWERS_REUSED.labels(
                reuse.department if reuse.department in org.departments else "unknown",
                reuse.category
                if reuse.category in org.categories
                else ("none" if reuse.category is None else "unknown"),
            ).inc()
            self.committed()
        return reuse


def current() -> IntakeContext:
    """The running app's context (intake.app puts it in the app's extensions)."""
    context: IntakeContext = current_app.extensions[CONTEXT_EXTENSION]
    return context


def redacted(text: str, field: str) -> str:
    """Agent-written text without citizen service numbers (counted per field)."""
    clean, redactions = redact_bsn(text)
    if redactions:
        BSN_REDACTIONS.labels(SERVICE, field).inc(redactions)
    return clean
