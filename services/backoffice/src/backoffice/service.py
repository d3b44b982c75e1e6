"""What the API and the pages need, assembled once per process: store, organisation, relay."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kcc_shared.auth import Principal
from kcc_shared.metrics import BSN_REDACTIONS
from kcc_shared.organisation import Organisation
from kcc_shared.outbox import Clock, OutboxRelay
from kcc_shared.privacy import redact_bsn
from kcc_shared.sse import LiveFeed

from backoffice.inbox import OPEN_STATES, Item, Sla, deadline_of, sla_of
from backoffice.metrics import SERVICE, STAFF_ACTIONS
from backoffice.store import Action, ActionResult, InboxStore, NotYourDepartment


class UnknownInbox(LookupError):
    """No department with this id in the organisation file."""


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
        if action.text is not None:
            text, redactions = redact_bsn(action.text.strip())
            if redactions:
                BSN_REDACTIONS.labels(SERVICE, _FIELDS[action.name]).inc(redactions)
            action = Action(action.name, text, action.to_department)
        result = self.store.act(request_id, staff, action)
        if result.event is not None and result.item.department is not None:
            STAFF_ACTIONS.labels(result.item.department, action.name).inc()
            self.relay.wake()  # publish now rather than at the next poll
        return result


_FIELDS = {"answer": "answer", "clarification_request": "clarification", "forward": "reason"}


def check_department(viewer: Principal, department: str, organisation: Organisation) -> None:
    """Staff see only their own departments; operators see every department that exists."""
    if viewer.is_operator:
        if department not in organisation.departments:
            raise UnknownInbox(department)
        return
    if department not in viewer.departments:
        raise NotYourDepartment(department)
