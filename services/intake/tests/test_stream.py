"""The agent's live stream: updates arrive, a reconnect with Last-Event-ID resumes, only mine."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kcc_shared.sse import LiveFeed
from prometheus_client import REGISTRY

QUESTION = "Meneer vraagt of hij een parkeervergunning kan krijgen voor zijn tweede auto."

Deliver = Callable[..., Any]


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@pytest.fixture
def feed(app: Flask) -> Iterator[LiveFeed]:
    feed: LiveFeed = app.extensions["kcc.intake"].feed
    feed.poll_interval = 0.05
    feed.heartbeat = 0.2
    feed.max_seconds = 20
    yield feed
    feed.stop()


class Stream:
    """Reads SSE messages from a streamed test response, bounded by time."""

    def __init__(self, response: Any) -> None:
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/event-stream"
        self.response = response
        self._chunks = iter(response.response)
        self.comments: list[str] = []

    def next_messages(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count:
            assert time.monotonic() < deadline, f"only {len(messages)} of {count} arrived"
            messages += self._read_chunk()
        return messages

    def next_chunk(self) -> list[dict[str, Any]]:
        """The messages in the next piece the server sends (none for a heartbeat)."""
        return self._read_chunk()

    def _read_chunk(self) -> list[dict[str, Any]]:
        chunk = next(self._chunks)
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        fields: dict[str, str] = {}
        for line in text.strip("\n").split("\n"):
            if line.startswith(":"):
                self.comments.append(line)
            elif ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value
        if fields.get("event") == "update":
            return [{"id": int(fields["id"]), **json.loads(fields["data"])}]
        return []

    def opened(self) -> Stream:
        first = next(self._chunks)
        assert (first.decode() if isinstance(first, bytes) else first).startswith("retry: ")
        return self

    def close(self) -> None:
        self.response.close()


def open_stream(client: FlaskClient, token: str, **headers: str) -> Stream:
    response = client.get("/api/v1/stream", headers=bearer(token, **headers), buffered=False)
    return Stream(response).opened()


def file(client: FlaskClient, token: str) -> str:
    response = client.post("/api/v1/requests", json={"question": QUESTION}, headers=bearer(token))
    assert response.json is not None, response.get_data(as_text=True)
    return str(response.json["id"])


def test_updates_arrive_live_with_ids_and_status(
    client: FlaskClient,
    feed: LiveFeed,
    agent_token: str,
    deliver: Deliver,
    routed_data: Callable[..., dict[str, Any]],
) -> None:
    stream = open_stream(client, agent_token)
    request_id = file(client, agent_token)
    deliver(request_id, "routed", **routed_data("vergunningen"))
    deliver(request_id, "claimed", department="vergunningen", staff_id="staff-eva")

    submitted, routed, claimed = stream.next_messages(3)

    assert [m["entry"]["type"] for m in (submitted, routed, claimed)] == [
        "request.submitted",
        "request.routed",
        "request.claimed",
    ]
    assert submitted["id"] < routed["id"] < claimed["id"]
    assert {m["request_id"] for m in (submitted, routed, claimed)} == {request_id}
    assert claimed["status"] == "claimed"
    assert claimed["department"] == "vergunningen"
    assert routed["entry"]["details"]["department"] == "vergunningen"
    stream.close()


def test_a_reconnect_with_last_event_id_replays_what_was_missed(
    client: FlaskClient,
    feed: LiveFeed,
    agent_token: str,
    deliver: Deliver,
    routed_data: Callable[..., dict[str, Any]],
) -> None:
    stream = open_stream(client, agent_token)
    request_id = file(client, agent_token)
    [first] = stream.next_messages(1)
    stream.close()
    # While the agent is away:
    deliver(request_id, "routed", **routed_data("vergunningen"))
    deliver(request_id, "claimed", department="vergunningen", staff_id="staff-eva")
    deliver(request_id, "answered", department="vergunningen", staff_id="staff-eva", answer="Ja")

    again = open_stream(client, agent_token, **{"Last-Event-ID": str(first["id"])})
    missed = again.next_messages(3)
    assert [m["entry"]["type"] for m in missed] == [
        "request.routed",
        "request.claimed",
        "request.answered",
    ]
    assert [m["status"] for m in missed] == ["answered"] * 3
    assert missed[2]["entry"]["details"]["answer"] == "Ja"
    # ... and then it goes on live.
    client.post(
        f"/api/v1/requests/{request_id}/rating",
        json={"score": 5, "thanks": True},
        headers=bearer(agent_token),
    )
    [rated] = again.next_messages(1)
    assert rated["entry"]["type"] == "request.rated"
    assert rated["status"] == "closed"
    again.close()


def test_the_query_parameter_resumes_a_first_connection(
    client: FlaskClient, feed: LiveFeed, agent_token: str
) -> None:
    request_id = file(client, agent_token)
    stream = open_stream(client, agent_token)
    client.post(f"/api/v1/requests/{request_id}/cancel", json={}, headers=bearer(agent_token))
    [cancelled] = stream.next_messages(1)
    stream.close()

    response = client.get(
        "/api/v1/stream?last_event_id=0", headers=bearer(agent_token), buffered=False
    )
    replay = Stream(response).opened()
    assert [m["entry"]["type"] for m in replay.next_messages(2)] == [
        "request.submitted",
        "request.cancelled",
    ]
    replay.close()
    assert cancelled["status"] == "cancelled"


def test_an_agent_sees_only_their_own_updates(
    client: FlaskClient,
    feed: LiveFeed,
    agent_token: str,
    teammate_token: str,
    other_agent_token: str,
) -> None:
    others = open_stream(client, other_agent_token)
    teammate = open_stream(client, teammate_token)
    file(client, agent_token)
    theirs = file(client, other_agent_token)
    own = file(client, teammate_token)
    # A stream sends in feed order: each first update being the agent's own, filed after the
    # others', proves the earlier ones were not sent to it (not even the teammate's).
    assert [m["request_id"] for m in others.next_messages(1)] == [theirs]
    assert [m["request_id"] for m in teammate.next_messages(1)] == [own]
    others.close()
    teammate.close()


def test_a_replay_holds_only_the_agents_own_updates(
    client: FlaskClient, feed: LiveFeed, agent_token: str, other_agent_token: str
) -> None:
    theirs = file(client, other_agent_token)
    mine = file(client, agent_token)
    file(client, other_agent_token)
    cancelled = client.post(f"/api/v1/requests/{mine}/cancel", json={}, headers=bearer(agent_token))
    assert cancelled.status_code == 200

    response = client.get(
        "/api/v1/stream?last_event_id=0", headers=bearer(other_agent_token), buffered=False
    )
    replay = Stream(response).opened()
    [submitted] = replay.next_messages(1)
    assert submitted["request_id"] == theirs
    [second] = replay.next_messages(1)
    assert second["request_id"] != mine
    assert second["entry"]["type"] == "request.submitted"
    replay.close()


def test_heartbeats_keep_an_idle_stream_open(
    client: FlaskClient, feed: LiveFeed, agent_token: str
) -> None:
    stream = open_stream(client, agent_token)
    # Nothing happened for this agent: what the server sends next is a heartbeat, no update.
    assert stream.next_chunk() == []
    assert stream.comments == [": keepalive"]
    stream.close()


def test_subscribers_are_counted_and_bounded(
    client: FlaskClient, feed: LiveFeed, agent_token: str
) -> None:
    def gauge() -> float:
        return REGISTRY.get_sample_value("kcc_intake_stream_subscribers") or 0.0

    feed.max_subscribers = 2
    before = gauge()
    streams = [open_stream(client, agent_token) for _ in range(2)]
    assert gauge() == before + 2
    refused = client.get("/api/v1/stream", headers=bearer(agent_token))
    assert refused.status_code == 503
    assert refused.mimetype == "application/problem+json"
    for stream in streams:
        stream.close()
    assert gauge() == before
    assert feed.subscribers == 0


def test_a_stream_ends_after_its_maximum_duration(
    client: FlaskClient, feed: LiveFeed, agent_token: str
) -> None:
    feed.max_seconds = 0.3
    response = client.get("/api/v1/stream", headers=bearer(agent_token), buffered=False)
    started = time.monotonic()
    chunks = [c.decode() if isinstance(c, bytes) else str(c) for c in response.response]
    assert time.monotonic() - started < 5
    assert chunks[0].startswith("retry: ")
    assert feed.subscribers == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Last-Event-ID": "abc"}, 400),
        ({"Last-Event-ID": "-1"}, 400),
        ({"Last-Event-ID": "1" * 30}, 400),
    ],
)
def test_a_bad_last_event_id_is_400(
    client: FlaskClient, agent_token: str, headers: dict[str, str], status: int
) -> None:
    response = client.get("/api/v1/stream", headers=bearer(agent_token, **headers))
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_only_agents_stream(client: FlaskClient, staff_token: str, ops_token: str) -> None:
    assert client.get("/api/v1/stream").status_code == 401
    assert client.get("/api/v1/stream", headers=bearer(staff_token)).status_code == 403
    assert client.get("/api/v1/stream", headers=bearer(ops_token)).status_code == 403
