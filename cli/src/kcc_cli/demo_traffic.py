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
from functools import partial
from typing import Any, Final

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
