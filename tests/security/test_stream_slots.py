"""Live streams are capped per agent as well as per process, and a stream's slot is free again
as soon as its client goes away (well before the next heartbeat would have noticed). Real
HTTP connections to the intake served by a threaded server, as the agent desk makes them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from intake.app import create_app
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.sse import LiveFeed
from werkzeug.serving import BaseWSGIServer, make_server


@pytest.fixture
def served(sqlite_url: str) -> Iterator[tuple[Flask, BaseWSGIServer]]:
    config = Config(
        database_url=sqlite_url,
        broker_url="memory://",
        outbox_relay=False,
        streams_per_process=3,
        streams_per_user=2,
    )
    app = create_app(config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, server
    app.extensions["kcc.intake"].feed.stop()
    server.shutdown()
    server.server_close()
    thread.join(5)
    app.extensions["kcc.intake"].store.engine.dispose()


def _token(app: Flask, user: str) -> str:
    token, _ = app.extensions[TOKENS_EXTENSION].create(role="agent", user_id=user, team="t")
    return str(token)


def _open(server: BaseWSGIServer, token: str) -> tuple[int, socket.socket]:
    """Open a stream: the status and the connection (left open)."""
    connection = socket.create_connection(("127.0.0.1", server.server_port), timeout=5)
    connection.sendall(
        (
            "GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(4096)
        assert chunk, "the server closed the connection"
        received += chunk
    status = int(received.split(b" ", 2)[1])
    if status == 200:
        while b"retry:" not in received:
            received += connection.recv(4096)
    return status, connection


def _wait(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        assert time.monotonic() - started < timeout, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def test_one_agent_cannot_take_every_slot(served: tuple[Flask, BaseWSGIServer]) -> None:
    app, server = served
    anna, bram, chris = (_token(app, name) for name in ("agent-anna", "agent-bram", "agent-c"))
    opened = []
    for _ in range(2):
        status, connection = _open(server, anna)
        assert status == 200
        opened.append(connection)

    status, refused = _open(server, anna)  # a third tab of the same agent
    refused.close()
    assert status == 429

    status, connection = _open(server, bram)  # a colleague still gets the last slot
    assert status == 200
    opened.append(connection)
    status, full = _open(server, chris)  # now the process is full
    full.close()
    assert status == 503
    for connection in opened:
        connection.close()


def test_a_slot_is_free_as_soon_as_the_client_goes(served: tuple[Flask, BaseWSGIServer]) -> None:
    app, server = served
    feed: LiveFeed = app.extensions["kcc.intake"].feed
    assert feed.heartbeat >= 15  # the next write would only come after this long
    anna = _token(app, "agent-anna")
    connections = [_open(server, anna)[1] for _ in range(2)]
    assert feed.streams_of("agent-anna") == 2

    connections[0].close()  # the agent closes a tab
    took = _wait(lambda: feed.streams_of("agent-anna") == 1, timeout=5)

    assert took < 3
    status, again = _open(server, anna)
    assert status == 200
    for connection in (connections[1], again):
        connection.close()
    _wait(lambda: feed.subscribers == 0, timeout=5)
