"""Embedded mode (SQLite) and PostgreSQL give the same suggestions for the same answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from intake.app import create_app
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.db import write
from kcc_shared.events import Actor, new_event

DEV_FILE = Path(__file__).resolve().parents[3] / "data" / "similar-dev.jsonl"
EARLIER = 24
SEARCHES = 12


def labelled() -> tuple[list[dict[str, Any]], list[str]]:
    rows = [json.loads(line) for line in DEV_FILE.read_text(encoding="utf-8").splitlines()]
    earlier = [r for r in rows if r["kind"] == "earlier"][:EARLIER]
    known = {e["id"] for e in earlier}
    new = [r["question"] for r in rows if r["kind"] == "new" and r.get("match") in known]
    return earlier, new[:SEARCHES]


@pytest.fixture
def apps(sqlite_url: str, postgres_url: str) -> Iterator[dict[str, Flask]]:
    made = {
        name: create_app(Config(database_url=url, broker_url="memory://", outbox_relay=False))
        for name, url in (("sqlite", sqlite_url), ("postgresql", postgres_url))
    }
    yield made
    for app in made.values():
        app.extensions["kcc.intake"].store.engine.dispose()


def fill(app: Flask, earlier: list[dict[str, Any]]) -> str:
    """File each earlier question and answer it reusably; returns an agent's token."""
    token, _ = app.extensions[TOKENS_EXTENSION].create(role="agent", user_id="agent-anna")
    client = app.test_client()
    store = app.extensions["kcc.intake"].store
    for row in earlier:
        filed = client.post(
            "/api/v1/requests",
            json={"question": row["question"]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert filed.status_code == 202
        assert filed.json is not None
        event = new_event(
            "request.answered",
            request_id=filed.json["id"],
            actor=Actor("staff", "staff-eva"),
            data={
                "department": row["department"],
                "staff_id": "staff-eva",
                "answer": row["answer"],
                "reusable": True,
            },
        )
        with write(store.engine) as connection:
            store.apply_events(connection, [event])
    return str(token)


def test_sqlite_and_postgresql_suggest_the_same(apps: dict[str, Flask]) -> None:
    earlier, searches = labelled()
    found: dict[str, list[list[tuple[str, str, str, float]]]] = {}
    for name, app in apps.items():
        token = fill(app, earlier)
        client = app.test_client()
        found[name] = []
        for q in searches:
            response = client.get(
                "/api/v1/suggestions",
                query_string={"q": q},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200
            assert response.json is not None
            found[name].append(
                [
                    (s["question"], s["answer"], s["department"]["id"], s["score"])
                    for s in response.json["suggestions"]
                ]
            )

    assert found["sqlite"] == found["postgresql"]
    # Not trivially equal: most searches find their earlier question.
    assert sum(1 for hits in found["sqlite"] if hits) >= SEARCHES * 3 // 4
