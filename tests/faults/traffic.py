"""Agents filing questions at the intake, as a desktop client does: every request has its own
Idempotency-Key and is retried with that same key until the intake accepts it, so a fault
may delay a request but a client never has a reason to give up on one."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

# Longer than any fault lasts: a request that is still not accepted after this is a failure.
GIVE_UP_AFTER = 180.0
# A handler that takes longer than this "hangs": the intake's own worker timeout is 30 s, and
# no fault may make a POST wait for the broker (the outbox exists for that).
REQUEST_TIMEOUT = 20.0


@dataclass
class Filed:
    """One question a client filed, and how it went."""

    key: str
    question: str
    channel: str
    expected_department: str
    request_id: str | None = None
    attempts: int = 0
    error: str | None = None


@dataclass
class Traffic:
    """`count` questions from `questions`, filed by `clients` threads at the intake."""

    intake_url: str
    token: str
    questions: Sequence[tuple[str, str, str]]  # (question, channel, expected department)
    count: int
    clients: int = 8
    filed: list[Filed] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    slowest: float = 0.0  # seconds, the slowest single POST that got an answer
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _accepted: int = 0
    _progress: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self.filed = [
            Filed(str(uuid.uuid4()), *self.questions[i % len(self.questions)])
            for i in range(self.count)
        ]

    def start(self) -> Traffic:
        for n in range(self.clients):
            thread = threading.Thread(
                target=self._client, args=(self.filed[n :: self.clients],), daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def accepted(self) -> int:
        with self._progress:
            return self._accepted

    def wait_accepted(self, count: int, timeout: float = 120.0) -> None:
        """Block until `count` requests were accepted (to time a fault mid-stream); never
        more than there are to file, however far ahead of a fault the clients are."""
        count = min(count, self.count)
        with self._progress:
            if not self._progress.wait_for(lambda: self._accepted >= count, timeout):
                raise TimeoutError(
                    f"only {self._accepted} of {count} requests accepted in {timeout:.0f} s; "
                    f"answers so far: {dict(self.statuses)}"
                )

    def join(self, timeout: float = GIVE_UP_AFTER + 60) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._threads):
            raise TimeoutError(f"clients still busy after {timeout:.0f} s")

    def failures(self) -> list[Filed]:
        return [f for f in self.filed if f.request_id is None]

    def _client(self, share: list[Filed]) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        for filed in share:
            self._file(session, filed)

    def _file(self, session: requests.Session, filed: Filed) -> None:
        deadline = time.monotonic() + GIVE_UP_AFTER
        pause = 0.1
        while time.monotonic() < deadline:
            filed.attempts += 1
            started = time.monotonic()
            try:
                response = session.post(
                    f"{self.intake_url}/api/v1/requests",
                    json={"question": filed.question, "channel": filed.channel},
                    headers={"Idempotency-Key": filed.key},
                    timeout=REQUEST_TIMEOUT,
                )
            except requests.Timeout:
                self._count(-1, REQUEST_TIMEOUT)
                filed.error = "timeout"
            except requests.ConnectionError as exc:
                # The intake itself was unreachable (or restarting): retry, same key.
                self._count(0, 0.0)
                filed.error = type(exc).__name__
            else:
                self._count(response.status_code, time.monotonic() - started)
                if response.status_code in (200, 201, 202):
                    filed.request_id = self._id(response.json())
                    filed.error = None
                    with self._progress:
                        self._accepted += 1
                        self._progress.notify_all()
                    return
                if response.status_code < 500 and response.status_code != 429:
                    # A client error never heals by retrying: the test reports it.
                    filed.error = f"{response.status_code}: {response.text[:200]}"
                    return
                filed.error = str(response.status_code)
            time.sleep(pause)
            pause = min(2.0, pause * 2)

    def _count(self, status: int, seconds: float) -> None:
        with self._lock:
            self.statuses[status] += 1
            self.slowest = max(self.slowest, seconds)

    @staticmethod
    def _id(body: Any) -> str:
        return str(body["id"])
