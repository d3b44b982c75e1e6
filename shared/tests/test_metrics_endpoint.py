"""/metrics: labels only from fixed sets, and a bearer token when KCC_METRICS_TOKEN is set."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import pytest
from flask import Flask
from kcc_shared.health import HealthServer
from kcc_shared.metrics import instrument
from kcc_shared.problems import register_problem_handlers

TOKEN = "metrics-" + "x" * 24


def _app(service: str, token: str | None = None) -> Flask:
    app = Flask(__name__)
    register_problem_handlers(app)

    @app.get("/items/<uuid:item_id>")
    def item(item_id: uuid.UUID) -> str:
        return "ok"

    instrument(app, service, token=token)
    return app


def _series(text: str, service: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.startswith("kcc_http_request_duration_seconds_count")
        and f'service="{service}"' in line
    ]


def test_a_made_up_method_or_path_never_becomes_a_label() -> None:
    service = f"labels-{uuid.uuid4().hex[:8]}"
    client = _app(service).test_client()
    # A BSN smuggled in as the method, a BSN and ids in paths: none may reach a label.
    for method in ("123456782", "BREW", "X" * 200, "get"):
        client.open("/items/" + str(uuid.uuid4()), method=method)
    client.get(f"/items/{uuid.uuid4()}")
    client.get("/not/a/route/123456782")
    client.open("/not/a/route", method="PROPFIND")

    series = _series(client.get("/metrics").get_data(as_text=True), service)

    text = "\n".join(series)
    assert "123456782" not in text
    assert "BREW" not in text
    assert "/not/a/route" not in text
    methods = {line.split('method="')[1].split('"')[0] for line in series}
    endpoints = {line.split('endpoint="')[1].split('"')[0] for line in series}
    assert methods == {"GET", "other"}
    assert endpoints == {"/items/<uuid:item_id>", "unmatched"}


def test_without_a_token_metrics_is_open() -> None:
    client = _app(f"open-{uuid.uuid4().hex[:8]}").test_client()
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        f"Basic {TOKEN}",
        "Bearer",
        "Bearer wrong-token-of-some-length",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
    ],
)
def test_with_a_token_a_scrape_without_it_is_401(authorization: str | None) -> None:
    client = _app(f"closed-{uuid.uuid4().hex[:8]}", TOKEN).test_client()
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.get("/metrics", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"kcc_" not in response.data


def test_with_a_token_prometheus_scrapes_with_it() -> None:
    client = _app(f"scrape-{uuid.uuid4().hex[:8]}", TOKEN).test_client()
    for scheme in ("Bearer", "bearer"):
        response = client.get("/metrics", headers={"Authorization": f"{scheme} {TOKEN}"})
        assert response.status_code == 200
        assert b"kcc_http_request_duration_seconds" in response.data


def test_a_consumers_health_port_guards_metrics_but_not_the_probes() -> None:
    server = HealthServer("127.0.0.1", 0, {}, name="token-test", metrics_token=TOKEN)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/metrics", timeout=5)
        assert refused.value.code == 401
        refused.value.close()
        request = urllib.request.Request(
            f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=5) as scraped:
            assert scraped.status == 200
            assert b"kcc_" in scraped.read()
        # Kubernetes probes carry no token.
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as health:
            assert health.status == 200
    finally:
        server.stop()
