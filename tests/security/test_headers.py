"""Every page and answer carries the security headers; no page runs an inline script (the
Content-Security-Policy would block it, so the desk's script is a file the app serves); the
SLA overview asks for a login unless an operator chose a public view."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from backoffice.app import create_app as create_backoffice
from flask import Flask
from flask.testing import FlaskClient
from intake.app import create_app as create_intake
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.headers import SECURITY_HEADERS
from kcc_shared.health import health_app
from sla_monitor.app import create_app as create_sla
from werkzeug.test import Client

SECRET = "headers-test-secret-0123456789"
QUESTION = "Paspoort verlopen, vertrekt over 10 dagen. Spoedaanvraag mogelijk?"


class Scripts(HTMLParser):
    """Inline scripts, event-handler attributes, javascript: URLs and the script files."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.sources: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on"):
                self.inline.append(f"<{tag} {name}=...>")
            if value and value.strip().lower().startswith("javascript:"):
                self.inline.append(f"<{tag} {name}=javascript:...>")
        if tag == "script":
            src = dict(attrs).get("src")
            if src:
                self.sources.append(src)
            else:
                self._in_script = True

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data.strip()[:60])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False


def scripts_of(html: str) -> Scripts:
    parser = Scripts()
    parser.feed(html)
    return parser


def assert_headers(response: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.request.path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    assert "frame-ancestors 'none'" in csp


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _log_in(client: FlaskClient, token: str) -> None:
    page = client.get("/login")
    assert_headers(page)
    assert not scripts_of(page.get_data(as_text=True)).inline
    done = client.post("/login", data={"token": token, "csrf_token": _csrf(page.get_data(True))})
    assert done.status_code == 302
    assert_headers(done)


def _config(sqlite_url: str, **changes: Any) -> Config:
    return Config(
        database_url=sqlite_url,
        broker_url="memory://",
        outbox_relay=False,
        secret_key=SECRET,
        session_cookie_secure=False,
    ).with_(**changes)


@pytest.fixture
def intake(sqlite_url: str) -> Iterator[Flask]:
    app = create_intake(_config(sqlite_url))
    yield app
    app.extensions["kcc.intake"].store.engine.dispose()


def test_the_agent_desk_runs_no_inline_script_and_serves_its_script_file(
    intake: Flask,
) -> None:
    agent, _ = intake.extensions[TOKENS_EXTENSION].create(role="agent", user_id="agent-anna")
    client = intake.test_client()
    _log_in(client, agent)
    filed = client.post(
        "/api/v1/requests",
        json={"question": QUESTION},
        headers={"Authorization": f"Bearer {agent}"},
    )
    assert_headers(filed)

    for path in ("/balie", f"/balie/vragen/{filed.get_json()['id']}"):
        page = client.get(path)
        assert page.status_code == 200
        assert_headers(page)
        found = scripts_of(page.get_data(as_text=True))
        assert found.inline == [], f"{path}: {found.inline}"
        assert found.sources == ["/kcc-static/live.js", "/balie/static/desk.js"]
    for path, holds in (
        ("/kcc-static/live.js", "EventSource"),
        ("/balie/static/desk.js", "kccLive"),
    ):
        script = client.get(path)
        assert script.status_code == 200
        assert script.mimetype in ("text/javascript", "application/javascript")
        assert holds in script.get_data(as_text=True)
        assert_headers(script)
        script.close()


@pytest.mark.parametrize(
    "path", ["/api/v1/catalog", "/api/v1/nothing", "/healthz", "/api/openapi.json", "/metrics"]
)
def test_api_answers_carry_the_headers_too(intake: Flask, path: str) -> None:
    assert_headers(intake.test_client().get(path))


def test_a_consumers_health_port_carries_the_headers() -> None:
    client = Client(health_app({}))
    for path in ("/healthz", "/readyz", "/metrics", "/nothing"):
        response = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)


def test_the_inbox_pages_run_no_inline_script(sqlite_url: str) -> None:
    app = create_backoffice(_config(sqlite_url))
    staff, _ = app.extensions[TOKENS_EXTENSION].create(
        role="staff", user_id="staff-eva", departments=["burgerzaken"]
    )
    client = app.test_client()
    _log_in(client, staff)
    for path in ("/inbox", "/inbox/burgerzaken"):
        page = client.get(path, follow_redirects=True)
        assert page.status_code == 200
        assert_headers(page)
        assert scripts_of(page.get_data(as_text=True)).inline == []
    app.extensions["kcc.backoffice"].store.engine.dispose()


def _sla(sqlite_url: str, **changes: Any) -> Flask:
    return create_sla(_config(sqlite_url, **changes))


def test_the_sla_overview_asks_for_a_login(sqlite_url: str) -> None:
    app = _sla(sqlite_url)
    tokens = app.extensions[TOKENS_EXTENSION]
    client = app.test_client()

    for path in ("/sla", "/", "/sla?window=7d"):
        refused = client.get(path)
        assert refused.status_code == 302
        assert refused.headers["Location"].startswith("/login?next=")
        assert_headers(refused)
    agent, _ = tokens.create(role="agent", user_id="agent-anna")
    page = client.get("/login").get_data(as_text=True)
    assert (
        client.post("/login", data={"token": agent, "csrf_token": _csrf(page)}).status_code == 403
    )

    for role, extra in (("staff", {"departments": ["burgerzaken"]}), ("ops", {})):
        browser = app.test_client()
        token, _ = tokens.create(role=role, user_id=f"{role}-x", **extra)
        _log_in(browser, token)
        overview = browser.get("/sla")
        assert overview.status_code == 200, role
        assert "SLA-overzicht per afdeling" in overview.get_data(as_text=True)
        assert_headers(overview)
        assert scripts_of(overview.get_data(as_text=True)).inline == []


def test_a_public_sla_overview_is_an_explicit_choice(sqlite_url: str) -> None:
    public = _sla(sqlite_url, sla_public_page=True).test_client().get("/sla")
    assert public.status_code == 200
    assert_headers(public)


def test_without_a_secret_key_the_sla_overview_is_not_served(sqlite_url: str) -> None:
    response = _sla(sqlite_url, secret_key=None).test_client().get("/sla")
    assert response.status_code == 503
    assert "KCC_SECRET_KEY" in response.get_json()["detail"]
