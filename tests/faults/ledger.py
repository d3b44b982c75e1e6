"""Accounting for every request a fault run filed, read straight from each service's store.

Several faults may share one stack: each looks only at its own requests (duplicates are
counted over the whole store, which must have none at any time).

A request is accounted for when it is in the agent's view (the intake) as routed to the
department the rules pick, in that department's inbox (the back office), and in the SLA
monitor under the same department. Duplicates are counted where a user would see them: a
second routed step in a timeline, a second request for one Idempotency-Key, a second
first-response clock.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

if TYPE_CHECKING:
    from traffic import Filed


class Stack(Protocol):
    """What the accounting needs of a running pipeline (tests/stack.py's Stack, or a stack
    with replicas around it)."""

    def database_dsn(self, service: str) -> str: ...

    def assert_alive(self) -> None: ...


@dataclass
class Ledger:
    filed: int = 0
    accepted: int = 0
    # Per place: requests that are there with the right department, or are not.
    in_agent_view: int = 0
    in_inbox: int = 0
    in_sla_monitor: int = 0
    lost: dict[str, int] = field(default_factory=dict)
    wrong_department: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    outbox_unsent: dict[str, int] = field(default_factory=dict)
    seconds_to_settle: float = 0.0

    @property
    def complete(self) -> bool:
        return (
            self.accepted == self.filed
            and not any(self.lost.values())
            and not any(self.wrong_department.values())
            and not any(self.duplicates.values())
            and not any(self.outbox_unsent.values())
        )

    def summary(self, fault: str, **extra: Any) -> str:
        return json.dumps({"fault": fault, **asdict(self), **extra}, sort_keys=True)


def _rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, connect_timeout=5) as connection:
        return list(connection.execute(query).fetchall())


def _duplicated(dsn: str, table: str, types: Sequence[str]) -> int:
    listed = ", ".join(f"'{t}'" for t in types)
    return len(
        _rows(
            dsn,
            f"SELECT request_id FROM {table} WHERE type IN ({listed}) "
            "GROUP BY request_id, type HAVING count(*) > 1",
        )
    )


def take_stock(stack: Stack, filed: Sequence[Filed]) -> Ledger:
    """One look at every store now."""
    expected = {f.request_id: f.expected_department for f in filed if f.request_id}
    intake = stack.database_dsn("intake")
    backoffice = stack.database_dsn("backoffice")
    sla = stack.database_dsn("sla-monitor")
    ledger = Ledger(filed=len(filed), accepted=len(expected))

    def place(rows: list[tuple[Any, ...]]) -> tuple[int, int, int]:
        seen = {str(r[0]): r[1] for r in rows}
        right = sum(1 for rid, dept in expected.items() if seen.get(rid) == dept)
        missing = sum(1 for rid in expected if seen.get(rid) is None)
        return right, missing, len(expected) - right - missing

    view = _rows(intake, "SELECT id, department FROM requests WHERE status <> 'submitted'")
    inbox = _rows(backoffice, "SELECT request_id, department FROM items")
    monitor = _rows(sla, "SELECT request_id, department FROM sla_requests")
    for name, rows in (("agent_view", view), ("inbox", inbox), ("sla_monitor", monitor)):
        right, missing, wrong = place(rows)
        setattr(ledger, f"in_{name}", right)
        ledger.lost[name] = missing
        ledger.wrong_department[name] = wrong

    # The intake stores each key's SHA-256, never the key itself.
    keys = {hashlib.sha256(f.key.encode()).hexdigest() for f in filed}
    stored_keys = [r[0] for r in _rows(intake, "SELECT idempotency_key FROM requests")]
    ledger.duplicates = {
        # One Idempotency-Key, one request: a second row for a key is a doubled request.
        "intake_requests": sum(1 for k in stored_keys if k in keys) - len(expected),
        "agent_view_steps": _duplicated(intake, "timeline", ("request.routed",)),
        "inbox_items": _duplicated(backoffice, "timeline", ("request.routed",)),
        "sla_first_response_clocks": len(
            _rows(
                sla,
                "SELECT request_id FROM sla_clocks WHERE kind = 'first_response' "
                "GROUP BY request_id HAVING count(*) > 1",
            )
        ),
    }
    for service in ("intake", "backoffice", "sla-monitor"):
        ledger.outbox_unsent[service] = outbox_unsent(stack, service)
    return ledger


def outbox_unsent(stack: Stack, service: str) -> int:
    """Events a service has stored and not yet had confirmed by the broker."""
    [(unsent,)] = _rows(
        stack.database_dsn(service), "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
    )
    return int(unsent)


def settle(stack: Stack, filed: Sequence[Filed], timeout: float = 240.0) -> Ledger:
    """Wait until every accepted request is accounted for everywhere (or `timeout`), and
    return the last look. A process that died on its own fails at once."""
    started = time.monotonic()
    while True:
        stack.assert_alive()
        ledger = take_stock(stack, filed)
        ledger.seconds_to_settle = round(time.monotonic() - started, 1)
        if ledger.complete or time.monotonic() - started > timeout:
            return ledger
        time.sleep(0.5)


@dataclass
class Announcements:
    """SLA breach announcements for requests whose every clock must have breached: each
    (request, clock) announced exactly once, however many schedulers watched it."""

    requests: int = 0
    expected: int = 0  # requests x clocks
    in_agent_view: int = 0  # distinct (request, clock) breaches in the intake's timelines
    duplicated_in_agent_view: int = 0
    in_outbox: int = 0  # distinct (request, clock) breaches the SLA monitor stored to send
    duplicated_in_outbox: int = 0
    clocks_breached: int = 0  # clocks the SLA monitor marked breached

    @property
    def complete(self) -> bool:
        return (
            self.in_agent_view == self.expected
            and self.in_outbox == self.expected
            and self.clocks_breached == self.expected
            and not self.duplicated_in_agent_view
            and not self.duplicated_in_outbox
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


BREACHED = "request.sla_breached"
CLOCK_KINDS = ("first_response", "resolution")


def breach_announcements(stack: Stack, request_ids: Sequence[str]) -> Announcements:
    """Count the breach announcements of `request_ids` in the agent's view, the SLA monitor's
    outbox and its clocks."""
    wanted = set(request_ids)
    result = Announcements(requests=len(wanted), expected=len(wanted) * len(CLOCK_KINDS))

    def tally(pairs: list[tuple[str, str]]) -> tuple[int, int]:
        counts = Counter(p for p in pairs if p[0] in wanted)
        return len(counts), sum(1 for n in counts.values() if n > 1)

    timeline = _rows(
        stack.database_dsn("intake"),
        f"SELECT request_id, details FROM timeline WHERE type = '{BREACHED}'",
    )
    result.in_agent_view, result.duplicated_in_agent_view = tally(
        [(str(r[0]), json.loads(r[1]).get("clock", "")) for r in timeline]
    )
    outbox = _rows(
        stack.database_dsn("sla-monitor"),
        f"SELECT body FROM outbox WHERE routing_key = '{BREACHED}'",
    )
    bodies = [json.loads(r[0]) for r in outbox]
    result.in_outbox, result.duplicated_in_outbox = tally(
        [(str(b["request_id"]), str(b["data"]["clock"])) for b in bodies]
    )
    clocks = _rows(
        stack.database_dsn("sla-monitor"),
        "SELECT DISTINCT request_id, kind FROM sla_clocks WHERE breached",
    )
    result.clocks_breached = sum(1 for r in clocks if str(r[0]) in wanted)
    return result
