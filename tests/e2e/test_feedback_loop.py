"""The feedback loop end to end: intake, router, back office and SLA monitor as real processes
(tests/stack.py) on the real RabbitMQ (a fresh vhost) and PostgreSQL. An agent files a question,
staff of the right department claim it, ask for clarification, the agent answers, staff answer,
the agent sees the answer on the live stream and rates it, both timelines show every step in
order, and the SLA monitor has seen the rating."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import requests

from conftest import POSTGRES_ADMIN_DSN, _unavailable, harness, wait_for

if TYPE_CHECKING:
    from tests.stack import Stack
else:
    Stack = harness().Stack

QUESTION = "Paspoort verlopen en de burger vertrekt over tien dagen naar Spanje. Kan dat nog?"


@pytest.fixture
def stack(tmp_path: Path, broker_url: str) -> Iterator[Stack]:
    try:
        s = Stack(
            tmp_path,
            broker_url,
            POSTGRES_ADMIN_DSN,
            name="e2e",
            env={"KCC_OUTBOX_POLL_INTERVAL": "0.2", "KCC_AUTH_CACHE_SECONDS": "0"},
        )
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    with s:
        s.start_all()
        yield s


class StreamReader:
    """Reads the agent's Server-Sent Events in a thread and keeps every `data` object."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.updates: list[dict[str, Any]] = []
        self._response = requests.get(url, headers=headers, stream=True, timeout=(5, 120))
        assert self._response.status_code == 200, self._response.text
        assert self._response.headers["Content-Type"].startswith("text/event-stream")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    self.updates.append(json.loads(line[5:].strip()))
        except (requests.RequestException, AttributeError, ValueError):
            return

    def close(self) -> None:
        self._response.close()


# Starting its processes may take minutes on a busy two-core machine (the readiness bounds).
@pytest.mark.timeout(480)
def test_question_to_answer_to_rating(stack: Stack) -> None:
    intake, backoffice = stack.intake_url, stack.backoffice_url
    agent = {"Authorization": f"Bearer {stack.agent_token}"}
    staff = {"Authorization": f"Bearer {stack.staff_token}"}

    # The agent opens the live stream first, then files the question.
    stream = StreamReader(f"{intake}/api/v1/stream", agent)
    try:
        filed = requests.post(
            f"{intake}/api/v1/requests",
            headers={**agent, "Idempotency-Key": str(uuid.uuid4())},
            json={"question": QUESTION, "category": "documenten", "priority": "normal"},
            timeout=10,
        )
        assert filed.status_code == 202, filed.text
        rid = filed.json()["id"]

        # It lands in the right inbox, with the question text.
        inbox_url = f"{backoffice}/api/v1/departments/burgerzaken/inbox"

        def in_inbox() -> bool:
            stack.assert_alive()
            items = requests.get(inbox_url, headers=staff, timeout=5).json()["items"]
            return any(i["request_id"] == rid and i["question"] == QUESTION for i in items)

        wait_for(in_inbox, timeout=30, interval=0.2)

        def staff_post(action: str, body: Any = None) -> dict[str, Any]:
            response = requests.post(
                f"{backoffice}/api/v1/items/{rid}/{action}", headers=staff, json=body, timeout=10
            )
            assert response.status_code == 200, response.text
            result: dict[str, Any] = response.json()
            return result

        staff_post("claim")
        asked = staff_post("clarification-request", {"text": "Heeft de burger een afspraak?"})
        assert asked["state"] == "awaiting_clarification"

        def agent_status() -> str:
            detail = requests.get(f"{intake}/api/v1/requests/{rid}", headers=agent, timeout=5)
            return str(detail.json()["status"])

        wait_for(lambda: agent_status() == "awaiting_clarification", timeout=30, interval=0.2)
        clarified = requests.post(
            f"{intake}/api/v1/requests/{rid}/clarification",
            headers=agent,
            json={"text": "Ja, morgen om 9 uur aan de balie."},
            timeout=10,
        )
        assert clarified.status_code == 200, clarified.text

        def item_state() -> str:
            item = requests.get(f"{backoffice}/api/v1/items/{rid}", headers=staff, timeout=5)
            return str(item.json()["state"])

        wait_for(lambda: item_state() == "claimed", timeout=30, interval=0.2)
        answer = "Ja: vraag met de afspraak een spoedpaspoort aan; het is binnen 2 dagen klaar."
        staff_post("answer", {"text": answer})

        # The agent sees the answer arrive on the stream.
        def answered_on_stream() -> bool:
            return any(
                u.get("request_id") == rid and u.get("status") == "answered" for u in stream.updates
            )

        wait_for(answered_on_stream, timeout=30, interval=0.2)
    finally:
        stream.close()
    detail = requests.get(f"{intake}/api/v1/requests/{rid}", headers=agent, timeout=5).json()
    assert detail["answer"] == answer
    assert detail["department"] == "burgerzaken"

    rated = requests.post(
        f"{intake}/api/v1/requests/{rid}/rating",
        headers=agent,
        json={"score": 5, "thanks": True},
        timeout=10,
    )
    assert rated.status_code == 200, rated.text
    wait_for(lambda: item_state() == "closed", timeout=30, interval=0.2)

    steps = [
        "request.submitted",
        "request.routed",
        "request.claimed",
        "request.clarification_requested",
        "request.clarified",
        "request.answered",
        "request.rated",
    ]

    def agent_timeline() -> list[str]:
        detail = requests.get(f"{intake}/api/v1/requests/{rid}", headers=agent, timeout=5)
        return [e["type"] for e in detail.json()["timeline"]]

    wait_for(lambda: agent_timeline() == steps, timeout=30, interval=0.2)
    staff_view = requests.get(f"{backoffice}/api/v1/items/{rid}", headers=staff, timeout=5)
    assert [e["type"] for e in staff_view.json()["timeline"]] == steps
    assert staff_view.json()["rating"] == 5

    # The SLA monitor, a consumer of every event too, has the whole story as well.
    def sla_has_rating() -> float:
        return stack.metric("sla-monitor", "kcc_sla_events_ingested_total", type="request.rated")

    wait_for(lambda: sla_has_rating() == 1, timeout=30, interval=0.2)
    stack.assert_alive()
