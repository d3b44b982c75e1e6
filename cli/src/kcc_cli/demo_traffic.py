"""Demo traffic for `kcc dev --demo-traffic`: demo agents and staff using the running system.

Everything goes through the public HTTP API of the dev server, with the demo users' tokens, so
the pages, the live stream, the logs and every metric show what real use would show. The bot is
stateless: each round it reads the current state from the API and takes a step, so it picks up
where it left off after a restart, and a request someone changed by hand is simply seen as is.

It only works questions filed by its own agents (`agents`): a question you file as another
demo agent (agent-anna) waits for you to handle it in the inbox. A failing step is logged and
the next round tries again; nothing here may take the dev server down.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final

from kcc_shared.events import SYSTEM, Actor, Event, derived_event_id, new_event
from kcc_shared.publisher import Outgoing, Publisher, connection_factory
from kcc_shared.topology import declare_service_queues

from kcc_cli.demo_questions import (
    GENERIC_ANSWER,
    GENERIC_CLARIFICATION,
    RATING_COMMENTS,
    SCRIPTS,
    Script,
)

log = logging.getLogger(__name__)

DEFAULT_PACE: Final = 3.0
# Unfinished questions of the bot agents together; filing waits above this, so a run left on
# all day keeps a lively but bounded inbox.
DEFAULT_MAX_OPEN: Final = 12
# Per round: the chance an agent files, a staff member acts, an agent reacts. Below 1 so the
# inboxes show waiting work and not everything happens in lockstep.
FILE_CHANCE: Final = 0.6
STAFF_CHANCE: Final = 0.7
AGENT_CHANCE: Final = 0.7

AGENT_OPEN: Final = ("submitted", "routed", "claimed", "awaiting_clarification", "answered")
# Mostly satisfied agents, now and then a lukewarm one: the averages look like real ones.
SCORES: Final = (5, 5, 5, 4, 4, 4, 3, 2)


class Stopped(Exception):
    """The traffic is stopping: the rest of this step is skipped."""


class ApiError(Exception):
    """A call to the dev server's API failed; the text has the method, path and status only
    (never a request's text)."""


class Api:
    """A tiny JSON client for the dev server (stdlib only: the CLI needs no HTTP library)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        token: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (the URL is our own http base)
            self.base_url + path, data=data, method=method
        )
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        where = f"{method} {path.split('?', 1)[0]}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            # The problem title says what went wrong without quoting input.
            title = _problem_title(exc)
            raise ApiError(f"{where}: HTTP {exc.code}{f' ({title})' if title else ''}") from None
        except (OSError, ValueError) as exc:
            raise ApiError(f"{where}: {type(exc).__name__}: {exc}") from None


def _problem_title(exc: urllib.error.HTTPError) -> str:
    try:
        problem = json.loads(exc.read())
    except (OSError, ValueError):
        return ""
    title = problem.get("title") if isinstance(problem, dict) else None
    return title if isinstance(title, str) else ""


class DemoTraffic:
    """A background thread that runs one round of demo work every `pace` seconds."""

    def __init__(
        self,
        base_url: str,
        tokens: Mapping[str, str],
        *,
        agents: Sequence[str],
        staff: Mapping[str, Sequence[str]],
        pace: float = DEFAULT_PACE,
        max_open: int = DEFAULT_MAX_OPEN,
        rng: random.Random | None = None,
        timeout: float = 10.0,
    ) -> None:
        if pace <= 0:
            raise ValueError(f"the demo traffic pace must be a positive number of seconds: {pace}")
        missing = sorted(u for u in (*agents, *staff) if u not in tokens)
        if missing:
            raise ValueError(f"no token for the demo user(s) {', '.join(missing)}")
        if not agents or not staff:
            raise ValueError("demo traffic needs at least one agent and one staff member")
        self.api = Api(base_url, timeout)
        self.tokens = dict(tokens)
        self.agents = tuple(agents)
        self.staff = {user: tuple(departments) for user, departments in staff.items()}
        self.pace = pace
        self.max_open = max_open
        self.rng = rng or random.Random()  # noqa: S311 (demo behaviour, not security)
        self.scripts = {script.question: script for script in SCRIPTS}
        self.rounds = 0
        self.failures = 0
        self.actions: Counter[str] = Counter()
        self._deck: list[Script] = []
        self._open: dict[str, int] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="demo-traffic", daemon=True)
        self._thread.start()
        log.info("demo_traffic_started", extra={"pace_seconds": self.pace})

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return
        thread.join(timeout)
        log.info(
            "demo_traffic_stopped",
            extra={"rounds": self.rounds, "failures": self.failures, **dict(self.actions)},
        )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        # The first round right away: a fresh `kcc dev` shows activity within seconds.
        while not self._stopping.is_set():
            self.run_round()
            self._stopping.wait(self.pace)

    # -- one round ----------------------------------------------------------------------------

    def run_round(self) -> None:
        """Agents react to their answered and questioned requests, staff work their inboxes,
        then perhaps a new question is filed. Each step fails on its own."""
        steps: list[tuple[str, Callable[[], None]]] = [
            *((f"agent {a}", partial(self._agent_turn, a)) for a in self.agents),
            *((f"staff {s}", partial(self._staff_turn, s)) for s in self.staff),
            ("file", self._maybe_file),
        ]
        for name, step in steps:
            if self._stopping.is_set():
                return
            try:
                step()
            except Stopped:
                return
            except Exception as exc:  # a failed step must never end the thread
                self.failures += 1
                log.warning(
                    "demo_traffic_step_failed",
                    extra={"step": name, "error": str(exc), "error_type": type(exc).__name__},
                )
        self.rounds += 1

    def _did(self, action: str) -> None:
        self.actions[action] += 1

    def _call(
        self,
        method: str,
        path: str,
        token: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        # Checked before every call: stopping waits for at most the one call under way.
        if self._stopping.is_set():
            raise Stopped
        return self.api.call(method, path, token, body, headers)

    # -- agents -------------------------------------------------------------------------------

    def _agent_turn(self, agent: str) -> None:
        token = self.tokens[agent]
        query = urllib.parse.urlencode([("status", s) for s in AGENT_OPEN] + [("page_size", 100)])
        page = self._call("GET", f"/api/v1/requests?{query}", token)
        self._open[agent] = int(page["total"])
        if self.rng.random() >= AGENT_CHANCE:
            return
        for request in page["items"]:
            script = self.scripts.get(request["question"])
            path = f"/api/v1/requests/{request['id']}"
            if request["status"] == "awaiting_clarification":
                text = script.clarify if script and script.clarify else GENERIC_CLARIFICATION
                self._call("POST", f"{path}/clarification", token, {"text": text})
                self._did("clarify")
                return
            if request["status"] == "answered":
                self._call("POST", f"{path}/rating", token, self._rating())
                self._did("rate")
                return

    def _rating(self) -> dict[str, Any]:
        score = self.rng.choice(SCORES)
        rating: dict[str, Any] = {"score": score, "thanks": score >= 4 and self.rng.random() < 0.6}
        if self.rng.random() < 0.4:
            rating["comment"] = self.rng.choice(RATING_COMMENTS)
        return rating

    def _maybe_file(self) -> None:
        if sum(self._open.values()) >= self.max_open or self.rng.random() >= FILE_CHANCE:
            return
        agent = self.rng.choice(self.agents)
        script = self._next_script()
        body: dict[str, Any] = {
            "question": script.question,
            "priority": script.priority,
            "channel": self.rng.choice(("phone", "phone", "phone", "email", "chat", "counter")),
        }
        if script.category:
            body["category"] = script.category
        self._call(
            "POST",
            "/api/v1/requests",
            self.tokens[agent],
            body,
            {"Idempotency-Key": str(uuid.uuid4())},
        )
        self._open[agent] = self._open.get(agent, 0) + 1
        self._did("file")

    def _next_script(self) -> Script:
        # A shuffled deck, not independent draws: every question (so every department, and
        # every clarification dialogue) comes by within one pass.
        if not self._deck:
            self._deck = list(SCRIPTS)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    # -- staff --------------------------------------------------------------------------------

    def _staff_turn(self, user: str) -> None:
        if self.rng.random() >= STAFF_CHANCE:
            return
        token = self.tokens[user]
        held: list[dict[str, Any]] = []
        waiting: list[dict[str, Any]] = []
        for department in self.staff[user]:
            path = f"/backoffice/api/v1/departments/{department}/inbox"
            inbox = self._call("GET", path, token)
            for item in inbox["items"]:
                if item["agent_id"] not in self.agents:
                    continue  # someone else's question: left for a person to handle
                if item["state"] == "claimed" and item["claimed_by"] == user:
                    held.append(item)
                elif item["state"] == "waiting":
                    waiting.append(item)
        if held:
            self._finish(token, held[0])
        elif waiting:
            # Earliest deadline first, across this person's departments.
            first = min(waiting, key=lambda item: item["sla"]["due"] if item["sla"] else "~")
            self._call("POST", f"/backoffice/api/v1/items/{first['request_id']}/claim", token)
            self._did("claim")

    def _finish(self, token: str, item: dict[str, Any]) -> None:
        path = f"/backoffice/api/v1/items/{item['request_id']}"
        script = self.scripts.get(item["question"] or "")
        if script and script.ask:
            detail = self._call("GET", path, token)
            asked = any(e["type"] == "request.clarification_requested" for e in detail["timeline"])
            if not asked:
                self._call("POST", f"{path}/clarification-request", token, {"text": script.ask})
                self._did("ask")
                return
        answer = script.answer if script else GENERIC_ANSWER
        self._call("POST", f"{path}/answer", token, {"text": answer})
        self._did("answer")


# -- a backlog that is already late ---------------------------------------------------------------
#
# Demo traffic is answered within minutes, and the norms are hours of business time: without
# help a first-time viewer of the SLA overview never sees a question at risk or late. So
# `kcc dev --demo-traffic` publishes, once at start, a few questions whose events happened
# earlier today or before (back-dated events on the bus, as an import of yesterday's phone notes
# would be): every service then times them from their true start, and the overview, the inbox
# and the drill-down agree. They are agent-anna's (team kcc-noord), so the demo staff leave
# them for a person to handle; nobody has claimed them (a claim is the back office's own event,
# which it does not take from the bus).

BACKLOG_AGENT: Final = "agent-anna"
BACKLOG_TEAM: Final = "kcc-noord"
BACKLOG_NAMESPACE: Final = uuid.UUID("7d2b6c3e-4f1a-5b8e-9c0d-2a3b4c5d6e7f")


@dataclass(frozen=True)
class Backlogged:
    """One question of the backlog: where, how urgent, how far into its norm."""

    department: str
    priority: str
    clock: str  # the clock whose norm `share` is of: first_response or resolution
    share: float  # business time spent, as a share of that clock's norm (1.0 = the deadline)
    question: str


BACKLOG: Final = (
    Backlogged("burgerzaken", "urgent", "first_response", 1.6,
               "Paspoort kwijtgeraakt op vakantie, vlucht terug is overmorgen. Wat nu?"),
    Backlogged("burgerzaken", "high", "resolution", 1.25,
               "Verhuizing doorgegeven maar de oude adresgegevens staan nog in de BRP."),
    Backlogged("afval", "high", "first_response", 0.9,
               "Container is al twee weken niet geleegd in de Lindelaan."),
    Backlogged("afval", "normal", "resolution", 1.1,
               "Grofvuil opgehaald maar de helft is blijven staan."),
    Backlogged("belastingen", "normal", "first_response", 0.85,
               "Bezwaar tegen de WOZ-waarde ingediend, nog geen ontvangstbevestiging."),
    Backlogged("parkeren", "high", "resolution", 0.9,
               "Bezoekersvergunning werkt niet in de app sinds de update."),
)  # fmt: skip


def _started_before(calendar: Any, now: datetime, business_seconds: float) -> datetime:
    """The moment from which `business_seconds` of the calendar's business time pass by `now`
    (a binary search over the wall clock: business time only grows with it)."""
    low, high = now - timedelta(days=120), now
    for _ in range(60):
        middle = low + (high - low) / 2
        if calendar.business_seconds_between(middle, now) > business_seconds:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def backlog_events(organisation: Any, now: datetime) -> list[Event]:
    """The backlog's events, in the order to publish them: per question the routed event first
    (with the id the router would give it, so its own routing of the submitted event is a
    duplicate that every consumer drops), then the submitted event. Ids are
    fixed per day, so a restart the same day publishes nothing new."""
    events: list[Event] = []
    day = now.date().isoformat()
    for number, item in enumerate(BACKLOG):
        department = organisation.departments.get(item.department)
        if department is None or item.priority not in department.sla:
            continue  # another organisation file: this question has nowhere to wait
        target = department.sla[item.priority]
        norm = target.first_response_s if item.clock == "first_response" else target.resolution_s
        calendar = organisation.calendar_for(item.department)
        routed_at = _started_before(calendar, now, norm * item.share)
        submitted_at = routed_at - timedelta(seconds=2)
        submitted_id = str(uuid.uuid5(BACKLOG_NAMESPACE, f"{day}:{number}"))
        request_id = str(uuid.uuid5(BACKLOG_NAMESPACE, f"{day}:{number}:request"))
        submitted = new_event(
            "request.submitted",
            request_id=request_id,
            actor=Actor("agent", BACKLOG_AGENT),
            event_id=submitted_id,
            occurred_at=submitted_at,
            data={
                "question": item.question,
                "category": None,
                "priority": item.priority,
                "channel": "phone",
                "agent_id": BACKLOG_AGENT,
                "team": BACKLOG_TEAM,
                "citizen_ref": None,
                "tags": [],
            },
        )
        routed = new_event(
            "request.routed",
            request_id=request_id,
            actor=SYSTEM,
            event_id=derived_event_id(submitted_id, "routed"),
            occurred_at=routed_at,
            data={
                "department": item.department,
                "from_department": None,
                "rule_id": None,
                "rules_version": "demo-backlog",
                "reason": "category",
                "priority": item.priority,
                "handoff_count": 0,
                "first_response_due": calendar.add_business_seconds(
                    submitted_at, target.first_response_s
                ),
                "resolution_due": calendar.add_business_seconds(submitted_at, target.resolution_s),
            },
        )
        events += [routed, submitted]
    return events


def publish_backlog(
    broker_url: str, organisation: Any, now: datetime, *, timeout: float = 5.0
) -> int:
    """Publish the backlog's events to the running system; returns how many."""
    events = backlog_events(organisation, now)
    publisher = Publisher(
        connection_factory(broker_url, timeout=timeout),
        timeout=timeout,
        on_connect=declare_service_queues,
    )
    try:
        publisher.publish(
            [Outgoing(message_id=e.id, routing_key=e.routing_key, body=e.to_json()) for e in events]
        )
    finally:
        publisher.close()
    log.info("demo_backlog_published", extra={"events": len(events)})
    return len(events)
