"""The reference read out on the phone: given once at filing, numbered per year, distinct under
concurrent filings (SQLite and PostgreSQL), kept by a retry, and found back through the API."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.reference import MalformedReference, Reference, looks_like_reference, parse
from intake.store import RequestStore, reference_counters, references_table
from intake.view import NewRequest
from kcc_shared.auth import Principal
from sqlalchemy import delete, select

QUESTION = "Meneer wil weten wanneer de grofvuilafspraak van vorige week wordt ingehaald."
ANNA = Principal("agent-anna", "agent", team="kcc-noord")


def body(response: Any) -> Any:
    data = response.json
    assert data is not None, response.get_data(as_text=True)
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_reference_reads_as_people_say_it() -> None:
    assert str(Reference(2026, 4217)) == "KV-2026-004217"
    for spoken in ("KV-2026-004217", "kv-2026-4217", " kv 2026 004217 ", "KV2026-4217"):
        assert parse(spoken) == Reference(2026, 4217), spoken
    assert str(Reference(2026, 1_234_567)) == "KV-2026-1234567"


@pytest.mark.parametrize("text", ["KV-2026", "KV-20-1", "KV-2026-", "kv 2026 abc", "KV-2026-0"])
def test_a_malformed_reference_is_refused(text: str) -> None:
    assert looks_like_reference(text) or text.startswith("KV-2026")
    with pytest.raises(MalformedReference):
        parse(text)


def test_words_are_not_taken_for_a_reference() -> None:
    assert not looks_like_reference("kvk-nummer van de ondernemer")
    assert not looks_like_reference("grofvuil")


def _store(app: Flask, clock: Callable[[], datetime] | None = None) -> RequestStore:
    store: RequestStore = app.extensions["kcc.intake"].store
    return store if clock is None else RequestStore(store.engine, clock)


def new(question: str = QUESTION) -> NewRequest:
    return NewRequest(question, None, "normal", "phone", None)


def test_numbers_count_per_year_and_a_retry_keeps_its_reference(app: Flask) -> None:
    now = [datetime(2025, 12, 31, 22, 0, tzinfo=UTC)]  # 23:00 in the Netherlands: 2025
    store = _store(app, lambda: now[0])
    first = store.submit(ANNA, new(), "key-1").request
    now[0] = datetime(2025, 12, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 January: 2026
    second = store.submit(
        ANNA, new("Een andere vraag over de ophaaldag van het oud papier.")
    ).request
    now[0] = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    third = store.submit(ANNA, new("Nog een vraag, over de container die kapot is gegaan.")).request
    assert [first.reference, second.reference, third.reference] == [
        "KV-2025-000001",
        "KV-2026-000001",
        "KV-2026-000002",
    ]
    replay = store.submit(ANNA, new(), "key-1")
    assert replay.replayed
    assert replay.request.reference == "KV-2025-000001"
    assert store.get(third.id).reference == "KV-2026-000002"


def test_concurrent_filings_get_distinct_numbers(app: Flask) -> None:
    store = _store(app)
    references: list[str | None] = []
    failures: list[BaseException] = []

    def file(n: int) -> None:
        try:
            for i in range(5):
                submitted = store.submit(ANNA, new(f"{QUESTION} (tak {n}, vraag {i})"))
                references.append(submitted.request.reference)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=file, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(references) == 30
    numbers = sorted(parse(r).number for r in references if r)
    assert numbers == list(range(1, 31))


def test_requests_filed_before_references_get_theirs_at_start(app: Flask) -> None:
    store = _store(app)
    older = store.submit(ANNA, new()).request
    newer = store.submit(
        ANNA, new("Een andere vraag over de ophaaldag van het oud papier.")
    ).request
    with store.engine.begin() as connection:
        connection.execute(delete(references_table))
        connection.execute(delete(reference_counters))
    assert store.get(older.id).reference is None
    store.create_schema()
    assert store.get(older.id).reference is not None
    assert parse(store.get(older.id).reference or "").number == 1
    assert parse(store.get(newer.id).reference or "").number == 2
    with store.engine.connect() as connection:
        assert connection.execute(select(reference_counters.c.last)).scalar_one() == 2


def test_the_api_shows_the_reference_and_finds_by_it(
    client: FlaskClient, agent_token: str, teammate_token: str, other_agent_token: str
) -> None:
    filed = client.post(
        "/api/v1/requests",
        json={"question": QUESTION, "citizen_ref": "K-77812"},
        headers=bearer(agent_token),
    )
    reference = body(filed)["reference"]
    assert parse(reference)
    assert body(filed)["expected_answer"]["state"] == "pending"
    client.post(
        "/api/v1/requests",
        json={"question": "Een andere vraag over de ophaaldag van het oud papier."},
        headers=bearer(agent_token),
    )

    def found(query: dict[str, Any], token: str = agent_token) -> list[str]:
        response = client.get("/api/v1/requests", query_string=query, headers=bearer(token))
        assert response.status_code == 200, response.json
        return [item["reference"] for item in body(response)["items"]]

    spoken = f"kv {reference[3:7]} {int(reference[8:])}"
    assert found({"reference": spoken}) == [reference]
    assert found({"q": reference}) == [reference]
    assert found({"q": "GROFVUILAFSPRAAK"}) == [reference]
    assert found({"q": "k-778"}) == [reference]
    assert found({"citizen_ref": "K-77812"}) == [reference]
    assert found({"citizen_ref": "K-778"}) == []
    # A teammate finds it in the team's requests; another team does not.
    assert found({"q": reference, "scope": "team"}, teammate_token) == [reference]
    assert found({"q": reference}, teammate_token) == []
    assert found({"q": reference, "scope": "team"}, other_agent_token) == []
    listed = body(client.get("/api/v1/requests", headers=bearer(agent_token)))["items"]
    assert all(item["expected_answer"]["text"] for item in listed)


@pytest.mark.parametrize(
    "query",
    [
        {"reference": "KV-20-1"},
        {"reference": "grofvuil"},
        {"q": "KV-2026-"},
        {"q": "x"},
        {"scope": "iedereen"},
        {"status": "wachtend"},
        {"zoek": "grofvuil"},
    ],
)
def test_bad_filters_are_a_clear_400(
    client: FlaskClient, agent_token: str, query: dict[str, str]
) -> None:
    response = client.get("/api/v1/requests", query_string=query, headers=bearer(agent_token))
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    # The problem names what was wrong (the field, under the query string's errors).
    assert str(next(iter(query))) in str(body(response)["errors"])
