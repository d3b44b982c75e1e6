"""The process harness itself (tests/stack.py), on what the fault-injection suite relies on:
a kill takes gunicorn's workers too, a restart comes back on the same address with the same
data, an exit nobody asked for is reported, and close() leaves no process and no database."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import requests

from conftest import POSTGRES_ADMIN_DSN, _unavailable, harness, wait_for

if TYPE_CHECKING:
    from tests.stack import Stack, live_members
else:
    Stack = harness().Stack
    live_members = harness().live_members


def post_question(stack: Stack) -> Any:
    return requests.post(
        f"{stack.intake_url}/api/v1/requests",
        headers={
            "Authorization": f"Bearer {stack.agent_token}",
            "Idempotency-Key": str(uuid.uuid4()),
        },
        json={"question": "Wanneer wordt het grofvuil in de Lindelaan opgehaald?"},
        timeout=10,
    )


# Starting its processes may take minutes on a busy two-core machine (the readiness bounds).
@pytest.mark.timeout(480)
def test_kill_restart_and_unexpected_exit(tmp_path: Path, broker_url: str) -> None:
    try:
        stack = Stack(tmp_path, broker_url, POSTGRES_ADMIN_DSN, name="harness")
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    databases = [stack.database_dsn(s).rsplit("/", 1)[1] for s in ("intake", "auth")]
    with stack:
        stack.start("intake-api")
        stack.wait_ready("intake-api")
        first = post_question(stack)
        assert first.status_code == 202, first.text

        master = stack.pid("intake-api")
        assert len(live_members(master)) == 3  # gunicorn's master and its two workers
        stack.kill("intake-api")
        assert live_members(master) == [], "a gunicorn worker outlived the kill of its group"
        assert not stack.ready("intake-api")
        assert stack.alive(), "a kill through the harness is not an unexpected exit"

        url = stack.intake_url
        stack.restart("intake-api")
        assert stack.intake_url == url
        detail = requests.get(
            f"{url}/api/v1/requests/{first.json()['id']}",
            headers={"Authorization": f"Bearer {stack.agent_token}"},
            timeout=10,
        )
        assert detail.status_code == 200, "the restarted intake lost what it had stored"
        assert "=== intake-api: start 2" in stack.logs("intake-api")

        # Only the master dies: an exit nobody asked for, with orphaned workers left behind.
        master = stack.pid("intake-api")
        os.kill(master, signal.SIGKILL)
        wait_for(lambda: stack.dead() == ["intake-api"], timeout=10)
        with pytest.raises(AssertionError, match="exited unexpectedly: intake-api"):
            stack.assert_alive()
    assert live_members(master) == [], "close() left a worker of a crashed master running"
    with psycopg.connect(POSTGRES_ADMIN_DSN) as admin:
        left = admin.execute(
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)", (databases,)
        ).fetchall()
    assert left == []
