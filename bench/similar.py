"""The desk's suggestions API with 100,000 reusable answers in the store, against the embedding
of one question alone (the part no index can save).

Usage: .venv/bin/python bench/similar.py [--answers 100000] [--searches 300] [--store sqlite]
           [--store postgresql]

Fills the intake's knowledge base (reusable_answers) of a fresh database with `--answers` rows:
the earlier questions of data/similar-dev.jsonl with their real answers and meaning vectors,
and for the rest realistic texts (those questions with another street, month or number) with
random unit vectors (speed only depends on how many there are). Then, per store:

  load:      a fresh intake app (create_app) loads the index: seconds, and the process's peak
             resident memory before and after;
  baseline:  `meaning([question])` for each new question of the file, alone;
  api:       GET /api/v1/suggestions?q=<question> through the app (token check, refresh
             query, embedding, index search, reading the answers back), the same questions;
  parts:     where an API call's time goes: the refresh query with nothing new, the index
             search with the vector given, reading three answers back;
  change:    one answer withdrawn (a row's sequence moves on): the next search's time.

p50/p95 in ms, and the API's p95 as a ratio to the baseline's (this machine is shared and
noisy: the ratio is what to compare across runs). Prints one JSON object.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path: drop it (house rule, see
# bench/router.py) before importing anything of the project.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.db import make_engine, write
from kcc_shared.similarity import answered_text, meaning
from sqlalchemy import insert, update

ROOT = Path(__file__).resolve().parents[1]
DEV_FILE = ROOT / "data" / "similar-dev.jsonl"
PG_ADMIN = os.environ.get("KCC_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
GOAL_P95_MS = 150.0
SEED = 20261202
CHUNK = 5000
STREETS = ("Dorpsstraat", "Kerkweg", "Molenlaan", "Stationsplein", "Beukenhof", "Havenkade")
MONTHS = ("januari", "maart", "mei", "juli", "september", "november")


def rows_of(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    earlier = [e for e in lines if e["kind"] == "earlier"]
    new = [n["question"] for n in lines if n["kind"] == "new"]
    return earlier, new


@contextmanager
def database(store: str) -> Iterator[str]:
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/intake.db"
        return
    name = f"kcc_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    host = PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{host}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(url: str, earlier: list[dict[str, Any]], count: int) -> float:
    """`count` reusable answers: the real ones first, then look-alikes with random vectors."""
    from intake.knowledge import reusable_answers
    from intake.store import RequestStore

    engine = make_engine(url)
    RequestStore(engine).create_schema()
    real = meaning([answered_text(e["question"], e["answer"]) for e in earlier])
    rng = np.random.default_rng(SEED)
    pick = random.Random(SEED)
    now = datetime.now(UTC)
    departments = sorted({e["department"] for e in earlier})
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    for n in range(count):
        if n < len(earlier):
            e = earlier[n]
            question, answer, vector, department = (
                e["question"],
                e["answer"],
                real[n],
                e["department"],
            )
        else:
            e = earlier[n % len(earlier)]
            question = f"{e['question']} ({pick.choice(STREETS)} {pick.randint(1, 180)})"
            answer = f"{e['answer']} Stand van {pick.choice(MONTHS)}."
            random_vector = rng.standard_normal(384).astype(np.float32)
            vector = (random_vector / np.linalg.norm(random_vector)).tobytes()
            department = pick.choice(departments)
        answered_at = now - timedelta(days=pick.randint(0, 300))
        batch.append(
            {
                "request_id": str(uuid.UUID(int=pick.getrandbits(128))),
                "department": department,
                "category": None,
                "question": question,
                "answer": answer,
                "answered_at": answered_at,
                "reusable": True,
                "reusable_since": answered_at,
                "vector": vector,
                "seq": n + 1,
            }
        )
        if len(batch) == CHUNK:
            with write(engine) as connection:
                connection.execute(insert(reusable_answers), batch)
            batch = []
    if batch:
        with write(engine) as connection:
            connection.execute(insert(reusable_answers), batch)
    engine.dispose()
    return time.perf_counter() - started


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def figures(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def timed(action: Any, inputs: list[str]) -> list[float]:
    times = []
    for item in inputs:
        started = time.perf_counter()
        action(item)
        times.append(time.perf_counter() - started)
    return times


def measure(store: str, answers: int, searches: int) -> dict[str, Any]:
    from intake.app import create_app
    from intake.knowledge import reusable_answers

    earlier, new = rows_of(DEV_FILE)
    queries = [new[i % len(new)] for i in range(searches)]
    with database(store) as url:
        fill_s = fill(url, earlier, answers)
        # The embedding model first: its load is not the index's.
        meaning(["opwarmen"])
        rss_before = rss_mb()
        started = time.perf_counter()
        app = create_app(Config(database_url=url, broker_url="memory://", outbox_relay=False))
        load_s = time.perf_counter() - started
        rss_after = rss_mb()
        context = app.extensions["kcc.intake"]
        token, _ = app.extensions[TOKENS_EXTENSION].create(role="agent", user_id="bench")
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        found: list[int] = []

        def api(q: str) -> None:
            response = client.get("/api/v1/suggestions", query_string={"q": q}, headers=headers)
            assert response.status_code == 200, response.get_data(as_text=True)
            found.append(len(response.json["suggestions"]))  # type: ignore[index]

        # Alternating rounds, so a noisy minute hurts both alike.
        baseline: list[float] = []
        api_times: list[float] = []
        for start in range(0, len(queries), 50):
            part = queries[start : start + 50]
            baseline += timed(lambda q: meaning([q]), part)
            api_times += timed(api, part)
        suggestions = context.suggestions
        vectors = meaning(queries[:50])
        index_times = []
        for q, v in zip(queries[:50], vectors, strict=True):
            t0 = time.perf_counter()
            suggestions._index.search(q, limit=3, vector=v)
            index_times.append(time.perf_counter() - t0)
        refresh_times = timed(lambda _: suggestions.refresh(), queries[:50])
        keys = [m.key for m in suggestions._index.search("", vector=vectors[0], limit=3)]
        read_times = timed(lambda _: suggestions._current(keys), queries[:50])
        # A withdrawal: the next search takes the changed row in first.
        change_times = []
        for n in range(5):
            with write(context.store.engine) as connection:
                connection.execute(
                    update(reusable_answers)
                    .where(reusable_answers.c.seq == answers - n)
                    .values(reusable=False, seq=answers + 1 + n)
                )
            change_times += timed(api, queries[n : n + 1])
        context.store.engine.dispose()
    return {
        "answers": answers,
        "indexed": len(suggestions),
        "fill_s": round(fill_s, 1),
        "load_s": round(load_s, 2),
        "index_memory_mb": round(rss_after - rss_before, 1),
        "peak_rss_mb": round(peak_mb(), 1),
        "baseline_embedding": figures(baseline),
        "api": figures(api_times),
        "api_p95_over_baseline_p95": round(
            figures(api_times)["p95_ms"] / figures(baseline)["p95_ms"], 2
        ),
        "parts": {
            "refresh_nothing_new": figures(refresh_times),
            "index_search": figures(index_times),
            "read_answers": figures(read_times),
        },
        "after_a_withdrawal": figures(change_times),
        "suggestions_per_search": round(statistics.mean(found), 2),
        "goal_p95_ms": GOAL_P95_MS,
        "goal_met": figures(api_times)["p95_ms"] <= GOAL_P95_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answers", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--store", action="append", choices=("sqlite", "postgresql"), default=None)
    args = parser.parse_args()
    stores = args.store or ["sqlite", "postgresql"]
    report = {store: measure(store, args.answers, args.searches) for store in stores}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
