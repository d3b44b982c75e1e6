"""The intake app builds from a Config and reports its health."""

from __future__ import annotations

from flask.testing import FlaskClient
from intake.app import create_app
from kcc_shared.config import Config


def test_healthz_answers_without_a_token(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_checks_database_and_broker(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_is_503_when_the_broker_is_unreachable(sqlite_url: str) -> None:
    config = Config(
        database_url=sqlite_url,
        broker_url="amqp://guest:guest@127.0.0.1:1//",
        outbox_relay=False,
        publish_timeout=1,
    )
    client = create_app(config).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["broker"].startswith("failing")
    assert response.get_json()["checks"]["database"] == "ok"


def test_metrics_lists_the_contract_metrics(client: FlaskClient) -> None:
    client.get("/healthz")
    text = client.get("/metrics").get_data(as_text=True)
    for name in (
        "kcc_requests_submitted_total",
        "kcc_http_request_duration_seconds_bucket",
        'kcc_outbox_backlog{service="intake"}',
        'kcc_outbox_oldest_unsent_age_seconds{service="intake"}',
    ):
        assert name in text


def test_unknown_path_is_a_problem(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["status"] == 404
