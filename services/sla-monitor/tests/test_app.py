"""The summary API, the overview page, /metrics and the commands, on a real store."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.organisation import Organisation
from prometheus_client.utils import floatToGoString
from sla_monitor.app import create_app, store_of
from sla_monitor.commands import sla_group
from sla_monitor.metrics import sla_buckets
from sla_monitor.store import SlaStore
from sla_monitor.worker import DeadlineScheduler, SlaIngest

from .conftest import Events, FakeClock, local


@pytest.fixture
def app(database_url: str, clock: FakeClock) -> Iterator[Flask]:
    config = Config(
        database_url=database_url,
        broker_url="memory://",
        secret_key="sla-test-secret-0123456789",
        session_cookie_secure=False,
    )
    app = create_app(config, clock=clock)
    yield app
    store_of(app).engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _token(app: Flask, role: str) -> str:
    token, _ = app.extensions[TOKENS_EXTENSION].create(role=role, user_id=f"{role}-user")
    return str(token)


@pytest.fixture
def ops_token(app: Flask) -> str:
    return _token(app, "ops")


def _feed(app: Flask, clock: FakeClock, *evs: object) -> None:
    from kcc_shared.db import write
    from kcc_shared.events import Event

    store = store_of(app)
    handler = SlaIngest(store, clock=clock)
    for event in evs:
        assert isinstance(event, Event)
        clock.set(max(clock(), event.occurred_at))
        with write(store.engine) as connection:
            handler(connection, [event])
        handler.after_commit(event)


def test_app_factory_builds_an_app_with_health(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"status": "ok"}


@pytest.mark.parametrize(
    ("role", "status"), [(None, 401), ("agent", 403), ("staff", 403), ("ops", 200), ("admin", 200)]
)
def test_summary_needs_ops_or_admin(
    app: Flask, client: FlaskClient, role: str | None, status: int
) -> None:
    headers = {}
    if role in ("agent", "ops", "admin"):
        headers = {"Authorization": f"Bearer {_token(app, role)}"}
    elif role == "staff":
        token, _ = app.extensions[TOKENS_EXTENSION].create(
            role="staff", user_id="staff-sam", departments=["burgerzaken"]
        )
        headers = {"Authorization": f"Bearer {token}"}
    response = client.get("/api/v1/sla/summary", headers=headers)
    assert response.status_code == status
    if status != 200:
        assert response.content_type == "application/problem+json"


@pytest.mark.parametrize("window", ["2h", "", "1D", "forever"])
def test_bad_window_is_a_400_problem(client: FlaskClient, ops_token: str, window: str) -> None:
    response = client.get(
        f"/api/v1/sla/summary?window={window}", headers={"Authorization": f"Bearer {ops_token}"}
    )
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"
    problem = response.get_json()
    assert problem is not None
    assert "window" in problem["errors"]


def _scenario(app: Flask, clock: FakeClock) -> None:
    one, two, three = Events(), Events(), Events()
    _feed(
        app,
        clock,
        # one: claimed after 30 min (met), answered after 2 h (met), rated 4 with thanks.
        one.routed(local("2026-04-20 09:00")),
        one.claimed(local("2026-04-20 09:30")),
        one.answered(local("2026-04-20 11:00")),
        one.rated(local("2026-04-20 11:05"), 4, True),
        # two: claimed after 2 h (breached), then forwarded to belastingen, still open there.
        two.routed(local("2026-04-20 09:00")),
        two.claimed(local("2026-04-20 11:00")),
        two.routed(local("2026-04-20 11:30"), "belastingen", from_department="burgerzaken"),
        # three: waiting in burgerzaken since 10:00.
        three.routed(local("2026-04-20 10:00")),
    )
    clock.set(local("2026-04-20 12:00"))
    DeadlineScheduler(store_of(app), clock=clock).tick()


def test_summary_shows_compliance_percentiles_open_handoffs_and_ratings(
    app: Flask, client: FlaskClient, ops_token: str, clock: FakeClock
) -> None:
    _scenario(app, clock)
    response = client.get(
        "/api/v1/sla/summary?window=1d", headers={"Authorization": f"Bearer {ops_token}"}
    )
    assert response.status_code == 200
    summary = response.get_json()
    assert summary is not None
    by_department = {d["department"]: d for d in summary["departments"]}
    burgerzaken = by_department["burgerzaken"]
    first = burgerzaken["clocks"]["first_response"]
    # three, still waiting since 10:00, is past its 1 h first-response norm: breached already.
    assert (first["met"], first["breached"], first["open_breached"]) == (1, 1, 1)
    assert first["compliance"] == pytest.approx(1 / 3)
    assert first["median_seconds"] == 1800.0
    assert first["p90_seconds"] == 7200.0
    resolution = burgerzaken["clocks"]["resolution"]
    assert (resolution["met"], resolution["breached"]) == (2, 0)  # one answered, one forwarded
    assert burgerzaken["open"] == {"waiting": 1, "claimed": 0, "awaiting_clarification": 0}
    assert burgerzaken["oldest_open_seconds"] == 7200.0
    # two's first response breached (by the tick); three's (at 11:00:00.000001) too.
    assert burgerzaken["breaches"] == 2
    assert (burgerzaken["handoffs_out"], burgerzaken["handoffs_in"]) == (1, 0)
    assert (burgerzaken["average_rating"], burgerzaken["thanks"]) == (4.0, 1)
    belastingen = by_department["belastingen"]
    assert belastingen["handoffs_in"] == 1
    assert belastingen["open"]["waiting"] == 1
    assert belastingen["oldest_open_seconds"] == 1800.0


def test_metrics_show_contract_names_and_buckets_on_every_target(
    app: Flask, client: FlaskClient, clock: FakeClock, org: Organisation
) -> None:
    _scenario(app, clock)
    text = client.get("/metrics").get_data(as_text=True)

    # The `le` text is prometheus_client's float text ("14400.0"; "1.2096e+06" from 1e6 up):
    # the rules in deploy/prometheus must match it literally.
    for target in (900, 1800, 3600, 7200, 14400, 28800, 57600, 86400, 144000, 288000):
        assert f'le="{floatToGoString(float(target))}"' in text
    assert set(sla_buckets(org)) >= {
        float(s)
        for d in org.departments.values()
        for t in d.sla.values()
        for s in (t.first_response_s, t.resolution_s)
    }
    assert (
        'kcc_request_first_response_business_seconds_bucket{department="burgerzaken",'
        'le="3600.0",priority="urgent"}' in text
    )
    assert 'kcc_requests_open{department="burgerzaken",state="waiting"} 1.0' in text
    assert 'kcc_request_oldest_open_business_seconds{department="belastingen"} 1800.0' in text
    assert (
        'kcc_request_handoffs_total{from_department="burgerzaken",to_department="belastingen"}'
        in text
    )
    assert 'kcc_request_ratings_total{department="burgerzaken",score="4"}' in text
    assert 'kcc_request_thanks_total{department="burgerzaken"}' in text
    assert re.search(
        r'kcc_sla_outcomes_total\{clock="first_response",department="burgerzaken",'
        r'outcome="breached",priority="urgent"\} \d',
        text,
    )
    assert "kcc_sla_last_event_ingested_timestamp_seconds" in text


def test_outcomes_are_counted_once_per_clock(app: Flask, clock: FakeClock) -> None:
    from prometheus_client import REGISTRY

    def met() -> float:
        value = REGISTRY.get_sample_value(
            "kcc_sla_outcomes_total",
            {
                "department": "parkeren",
                "priority": "low",
                "clock": "first_response",
                "outcome": "met",
            },
        )
        return value or 0.0

    before = met()
    e = Events()
    _feed(app, clock, e.routed(local("2026-04-20 09:00"), "parkeren", "low"))
    _feed(app, clock, e.claimed(local("2026-04-20 09:10"), "parkeren"))
    store: SlaStore = store_of(app)
    store.recompute(clock())
    _feed(app, clock, e.answered(local("2026-04-20 09:20"), "parkeren"))
    assert met() - before == 1.0


def test_overview_page_is_dutch_and_shows_aggregates_only(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    _scenario(app, clock)
    assert client.get("/sla?window=1d").status_code == 302  # log in first
    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert csrf is not None
    client.post("/login", data={"token": _token(app, "ops"), "csrf_token": csrf[1]})
    response = client.get("/sla?window=1d")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "SLA-overzicht per afdeling" in page
    assert "Burgerzaken" in page
    assert "33,3 %" in page  # the open breach counts: 1 met of 3
    assert "Welke straat" not in page
    assert "staff-sam" not in page
    assert response.headers["Cache-Control"] == "no-store"


def test_recompute_command_rebuilds_clocks(
    sqlite_url: str, app: Flask, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    del app
    monkeypatch.setenv("KCC_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("KCC_BROKER_URL", "memory://")
    result = CliRunner().invoke(sla_group, ["recompute"])
    assert result.exit_code == 0, result.output
    assert "recomputed the clocks of" in result.output
