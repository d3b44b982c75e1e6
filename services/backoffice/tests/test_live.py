"""The inbox's live stream: every change reaches the open inbox pages of the departments it
concerns, and nobody else's; a reconnect resumes where it left off."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from backoffice.live import inbox_feed
from backoffice.store import InboxStore
from flask import Flask
from flask.testing import FlaskClient
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.sse import Entry, LiveFeed


def login(client: FlaskClient, token: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    response = client.post("/login", data={"token": token, "csrf_token": match.group(1)})
    assert response.status_code == 302


@pytest.fixture
def feed(store: InboxStore) -> Iterator[LiveFeed]:
    # Polled by the test itself: the thread's first poll would come only after an hour.
    live = inbox_feed(store, max_subscribers=4, max_per_user=2, poll_interval=3600)
    yield live
    live.stop()


def _queued(subscription: Any) -> list[Entry]:
    entries = []
    while not subscription.queue.empty():
        entries.append(subscription.queue.get_nowait())
    return entries


def test_a_change_reaches_the_streams_of_its_department_only(
    feed: LiveFeed, deliver: Any, make: Any
) -> None:
    ours = feed.subscribe("staff-eva", frozenset({"burgerzaken"}))
    theirs = feed.subscribe("staff-gijs", frozenset({"belastingen"}))
    everyone = feed.subscribe("ops-dana", None)
    request_id = str(uuid.uuid4())
    deliver(make.submitted(request_id), make.routed(request_id, "burgerzaken"))
    assert feed.poll_once() == 1  # the submitted event is no news to an inbox
    (routed,) = _queued(ours)
    assert routed.data == {
        "request_id": request_id,
        "type": "request.routed",
        "state": "waiting",
        "departments": ["Burgerzaken"],
    }
    assert _queued(theirs) == []
    assert [e.data["type"] for e in _queued(everyone)] == ["request.routed"]
    assert "Paspoort" not in json.dumps(routed.data)  # no question text on the wire


def test_a_forward_is_told_to_the_department_it_left_and_the_one_it_reaches(
    app: Flask, feed: LiveFeed, deliver: Any, make: Any, staff_token: str
) -> None:
    request_id = str(uuid.uuid4())
    deliver(make.submitted(request_id), make.routed(request_id, "burgerzaken"))
    ours = feed.subscribe("staff-eva", frozenset({"burgerzaken"}))
    theirs = feed.subscribe("staff-gijs", frozenset({"belastingen"}))
    deliver(make.routed(request_id, "belastingen", handoff_count=1, from_department="burgerzaken"))
    feed.poll_once()
    assert [e.data["type"] for e in _queued(ours)] == ["request.routed"]
    assert [e.data["departments"] for e in _queued(theirs)] == [
        ["Belastingen en WOZ", "Burgerzaken"]
    ]


def test_one_person_may_not_take_every_stream(feed: LiveFeed) -> None:
    from kcc_shared.sse import UserStreamsFull

    feed.subscribe("staff-eva", frozenset({"burgerzaken"}))
    feed.subscribe("staff-eva", frozenset({"burgerzaken"}))
    with pytest.raises(UserStreamsFull):
        feed.subscribe("staff-eva", frozenset({"burgerzaken"}))
    assert feed.subscribers == 2


def test_the_page_stream_resumes_after_the_last_event_id_with_my_departments_only(
    app: Flask, client: FlaskClient, deliver: Any, make: Any
) -> None:
    token, _ = app.extensions[TOKENS_EXTENSION].create(
        role="staff", user_id="staff-eva", departments=["burgerzaken"]
    )
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    deliver(make.submitted(other), make.routed(other, "afval"))
    deliver(make.submitted(mine), make.routed(mine, "burgerzaken"))
    login(client, str(token))
    response = client.get("/inbox/live?last_event_id=0")
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    chunks = iter(response.response)
    try:
        assert "retry:" in _text(next(chunks))
        message = _text(next(chunks))
    finally:
        response.close()  # the stream unsubscribes: its slot is free again
    assert message.startswith("id: 4\nevent: update\n")
    data = json.loads(message.split("data: ", 1)[1])
    assert data["request_id"] == mine
    assert data["type"] == "request.routed"
    assert app.extensions["kcc.backoffice"].feed.subscribers == 0


@pytest.mark.parametrize("position", ["abc", "-1", "9" * 30])
def test_a_bad_stream_position_is_refused(
    client: FlaskClient, staff_token: str, position: str
) -> None:
    login(client, staff_token)
    response = client.get(f"/inbox/live?last_event_id={position}")
    assert response.status_code == 400
    assert "geheel getal" in response.get_data(as_text=True)


def test_too_many_streams_of_one_person_are_refused_in_dutch(
    app: Flask, client: FlaskClient, staff_token: str
) -> None:
    app.extensions["kcc.backoffice"].feed.max_per_user = 0
    login(client, staff_token)
    response = client.get("/inbox/live")
    assert response.status_code == 429
    assert "Sluit een tabblad" in response.get_data(as_text=True)


def test_the_pages_load_the_live_script_from_a_file(
    client: FlaskClient, staff_token: str, item_id: str
) -> None:
    login(client, staff_token)
    for path in ("/inbox", f"/items/{item_id}"):
        page = client.get(path).get_data(as_text=True)
        assert '<script src="/static/inbox.js" defer></script>' in page
        assert re.search(r'data-stream="/inbox/live\?last_event_id=\d+"', page)
        assert "<script>" not in page  # the CSP forbids inline scripts
    script = client.get("/static/inbox.js")
    try:
        assert script.status_code == 200
        assert "EventSource" in script.get_data(as_text=True)
    finally:
        script.close()


def _text(chunk: object) -> str:
    return chunk.decode() if isinstance(chunk, bytes) else str(chunk)
