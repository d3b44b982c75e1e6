"""What the API and the pages need, assembled once per process: store, organisation, relay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from kcc_shared.auth import Principal
from kcc_shared.events import OPEN_STATES
from kcc_shared.metrics import BSN_REDACTIONS
from kcc_shared.organisation import Organisation
from kcc_shared.outbox import Clock, OutboxRelay
from kcc_shared.privacy import redact_bsn
from kcc_shared.sse import LiveFeed

from backoffice import duplicates
from backoffice.errors import NotInGroup, NotYourDepartment, UnknownInbox
from backoffice.inbox import Item, Sla, deadline_of, sla_of
from backoffice.metrics import SERVICE, STAFF_ACTIONS
from backoffice.similar import EarlierAnswers, Similar
from backoffice.store import Action, ActionResult, InboxStore


@dataclass(frozen=True)
class Listed:
    item: Item
    sla: Sla | None


@dataclass
class BackofficeContext:
    store: InboxStore
    organisation: Organisation
    relay: OutboxRelay
    clock: Clock
    # The inbox pages' live stream (made by the app factory; None where nothing streams).
    feed: LiveFeed | None = None
    # Answered questions by meaning, for "similar earlier questions" (one per process).
    earlier: EarlierAnswers | None = None

    def __post_init__(self) -> None:
        if self.earlier is None:
            self.earlier = EarlierAnswers(self.store)

    def similar(self, item: Item, viewer: Principal) -> list[Similar]:
        """Earlier answered questions like this one, of the viewer's own departments only."""
        assert self.earlier is not None
        departments = (
            set(self.organisation.departments) if viewer.is_operator else set(viewer.departments)
        )
        return self.earlier.like(item, departments)

    def groups(self, departments: Sequence[str]) -> dict[str, list[str]]:
        """Per open item in a suggested group of similar questions: the whole group, in order
        of arrival (items not in a group are absent)."""
        found: dict[str, list[str]] = {}
        for questions in self.store.open_questions(departments).values():
            for group in duplicates.groups(questions):
                for request_id in group:
                    found[request_id] = group
        return found

    def group_of(self, item: Item) -> list[str]:
        """The item's suggested group (itself included), or [] when it is in none."""
        if not item.is_open or item.department is None:
            return []
        return self.groups([item.department]).get(item.request_id, [])

    def answer_together(
        self, request_id: str, others: Sequence[str], staff: Principal, action: Action
    ) -> list[ActionResult]:
        """Answer the item and the `others` of its group with one text, each its own answer.
        Raises NotInGroup when one of `others` is not in the item's group now (answered
        meanwhile, taken out with "Niet samenvoegen", or never in it)."""
        item = self.store.get(request_id)
        if item.department not in staff.departments:
            raise NotYourDepartment(request_id)
        group = self.group_of(item)
        strangers = [o for o in others if o not in group or o == request_id]
        if strangers:
            raise NotInGroup(
                "Some of the other questions are not in this question's group (any more): "
                "answered meanwhile, taken out of the group, or never in it."
            )
        action = self._redacted(action)
        results = self.store.answer_together([request_id, *dict.fromkeys(others)], staff, action)
        self._done(results, action.name)
        return results

    def keep_apart(self, request_id: str, staff: Principal) -> None:
        """'Niet samenvoegen': take the item out of its group; it is never grouped again.
        Raises NotInGroup when it is in no group (already taken out, or never grouped)."""
        item = self.store.get(request_id)
        if item.department not in staff.departments:
            raise NotYourDepartment(request_id)
        if not self.group_of(item):
            raise NotInGroup("This question is not in a group of similar questions.")
        self.store.keep_apart(request_id)

    def change_reuse(self, request_id: str, staff: Principal, reusable: bool) -> ActionResult:
        result = self.store.change_reuse(request_id, staff, reusable)
        if result.event is not None:
            self.relay.wake()
        return result

    def sla(self, item: Item, now: datetime | None = None) -> Sla | None:
        department = self.organisation.departments.get(item.department) if item.department else None
        if department is None:
            return None
        try:
            target = self.organisation.sla_for(department.id, item.priority)
        except KeyError:
            return None
        return sla_of(
            item,
            now or self.clock(),
            calendar=self.organisation.calendar_for(department.id),
            warning_ratio=department.warning_ratio,
            targets=(target.first_response_s, target.resolution_s),
        )

    def inbox(
        self,
        viewer: Principal,
        department: str,
        *,
        states: Sequence[str] = (),
        priority: str | None = None,
        overdue: bool = False,
        mine: bool = False,
    ) -> list[Listed]:
        """The department's items, earliest (pause-shifted) deadline first."""
        check_department(viewer, department, self.organisation)
        items = self.store.inbox(
            department,
            states=states or OPEN_STATES,
            priority=priority,
            claimed_by=viewer.user_id if mine else None,
        )
        now = self.clock()
        listed = [Listed(item, self.sla(item, now)) for item in items]
        if overdue:
            listed = [entry for entry in listed if entry.sla and entry.sla.state == "overdue"]

        def key(entry: Listed) -> tuple[int, datetime, str]:
            due = entry.sla.due if entry.sla else deadline_of(entry.item)
            # Open work first by deadline; closed items (no SLA) after, by their deadline.
            return (
                0 if entry.sla else 1,
                due or datetime.max.replace(tzinfo=now.tzinfo),
                entry.item.request_id,
            )

        return sorted(listed, key=key)

    def act(self, request_id: str, staff: Principal, action: Action) -> ActionResult:
        action = self._redacted(action)
        result = self.store.act(request_id, staff, action)
        self._done([result], action.name)
        return result

    def _redacted(self, action: Action) -> Action:
        if action.text is None:
            return action
        text, redactions = redact_bsn(action.text.strip())
        if redactions:
            BSN_REDACTIONS.labels(SERVICE, _FIELDS[action.name]).inc(redactions)
        return replace(action, text=text)

    def _done(self, results: Sequence[ActionResult], name: str) -> None:
        woke = False
        for result in results:
            if result.event is not None and result.item.department is not None:
                STAFF_ACTIONS.labels(result.item.department, name).inc()
                woke = True
        if woke:
            self.relay.wake()  # publish now rather than at the next poll


_FIELDS = {"answer": "answer", "clarification_request": "clarification", "forward": "reason"}


def check_department(viewer: Principal, department: str, organisation: Organisation) -> None:
    """Staff see only their own departments; operators see every department that exists."""
    if viewer.is_operator:
        if department not in organisation.departments:
            raise UnknownInbox(department)
        return
    if department not in viewer.departments:
        raise NotYourDepartment(department)
