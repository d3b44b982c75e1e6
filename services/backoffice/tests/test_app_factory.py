"""The back-office app builds from a Config, reports its health and its metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from backoffice.app import create_app
from backoffice.commands import openapi_document
from flask.testing import FlaskClient
from kcc_shared.config import Config

COMMITTED = Path(__file__).resolve().parents[1] / "openapi.json"


def test_healthz_and_readyz(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"database": "ok", "broker": "ok"}


def test_metrics_lists_items_per_state_outbox_and_latency(
    client: FlaskClient, item_id: str
) -> None:
    client.get("/healthz")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'kcc_backoffice_items{department="burgerzaken",state="waiting"} 1.0' in text
    assert 'kcc_outbox_backlog{service="backoffice"}' in text
    assert "kcc_http_request_duration_seconds_bucket" in text


def test_pages_refuse_to_start_without_a_secret_key(sqlite_url: str) -> None:
    config = Config(database_url=sqlite_url, broker_url="memory://", outbox_relay=False)
    with pytest.raises(ValueError, match="KCC_SECRET_KEY"):
        create_app(config)


def test_committed_openapi_matches_the_code() -> None:
    committed = json.loads(COMMITTED.read_text())
    generated = json.loads(json.dumps(openapi_document()))
    assert generated == committed, (
        "services/backoffice/openapi.json is stale: run "
        "`python -m backoffice openapi > services/backoffice/openapi.json`"
    )


def test_every_operation_documents_its_problems() -> None:
    spec = openapi_document()
    for path, item in spec["paths"].items():  # type: ignore[attr-defined]
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            assert operation.get("security") == [{"bearerAuth": []}], (method, path)
