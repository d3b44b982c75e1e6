"""Logging out ends the session on the server: a copy of the session cookie (another browser,
a stolen cookie) stops working at that moment, on the agent desk and in the back office."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from backoffice.app import create_app as create_backoffice
from flask import Flask
from flask.testing import FlaskClient
from intake.app import create_app as create_intake
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config

SECRET = "logout-test-secret-0123456789"


@pytest.fixture(params=["backoffice", "intake"])
def site(request: pytest.FixtureRequest, database_url: str) -> Iterator[tuple[Flask, str, str]]:
    """(app, a token that may log in there, a page behind the login)."""
    config = Config(
        database_url=database_url,
        broker_url="memory://",
        outbox_relay=False,
        secret_key=SECRET,
        session_cookie_secure=False,
    )
    if request.param == "backoffice":
        app = create_backoffice(config)
        token, _ = app.extensions[TOKENS_EXTENSION].create(
            role="staff", user_id="staff-eva", departments=["burgerzaken"]
        )
        yield app, token, "/inbox/burgerzaken"
        app.extensions["kcc.backoffice"].store.engine.dispose()
    else:
        app = create_intake(config)
        token, _ = app.extensions[TOKENS_EXTENSION].create(
            role="agent", user_id="agent-anna", team="kcc-noord"
        )
        yield app, token, "/balie"
        app.extensions["kcc.intake"].store.engine.dispose()


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _log_in(client: FlaskClient, token: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"token": token, "csrf_token": _csrf(page)})
    assert response.status_code == 302


def _cookie(app: Flask, client: FlaskClient) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return cookie.value


def _browser_with(app: Flask, value: str) -> FlaskClient:
    other = app.test_client()
    other.set_cookie(app.config["SESSION_COOKIE_NAME"], value)
    return other


def test_a_copied_session_cookie_stops_working_at_logout(site: tuple[Flask, str, str]) -> None:
    app, token, page = site
    browser = app.test_client()
    _log_in(browser, token)
    copied = _cookie(app, browser)
    thief = _browser_with(app, copied)
    assert thief.get(page).status_code == 200  # a signed cookie alone is enough, until...

    html = browser.get(page).get_data(as_text=True)
    assert browser.post("/logout", data={"csrf_token": _csrf(html)}).status_code == 302

    assert browser.get(page).status_code == 302
    refused = thief.get(page)
    assert refused.status_code == 302
    assert refused.headers["Location"].startswith("/login")
    # Not by reloading either, nor with an unsafe request.
    assert _browser_with(app, copied).post(page, data={"csrf_token": "x"}).status_code in (
        302,
        400,
        401,
        403,
        405,
    )
    assert _browser_with(app, copied).get(page).status_code == 302


def test_logging_out_ends_only_that_session(site: tuple[Flask, str, str]) -> None:
    app, token, page = site
    desk, laptop = app.test_client(), app.test_client()
    _log_in(desk, token)
    _log_in(laptop, token)

    html = desk.get(page).get_data(as_text=True)
    desk.post("/logout", data={"csrf_token": _csrf(html)})

    assert desk.get(page).status_code == 302
    assert laptop.get(page).status_code == 200


def test_a_new_login_after_logout_is_a_new_session(site: tuple[Flask, str, str]) -> None:
    app, token, page = site
    browser = app.test_client()
    _log_in(browser, token)
    first = _cookie(app, browser)
    html = browser.get(page).get_data(as_text=True)
    browser.post("/logout", data={"csrf_token": _csrf(html)})
    _log_in(browser, token)

    assert browser.get(page).status_code == 200
    assert _cookie(app, browser) != first
    assert _browser_with(app, first).get(page).status_code == 302


def test_revoking_the_token_ends_the_session_for_copies_too(site: tuple[Flask, str, str]) -> None:
    app, token, page = site
    browser = app.test_client()
    _log_in(browser, token)
    copied = _cookie(app, browser)
    tokens = app.extensions[TOKENS_EXTENSION]
    (info,) = [t for t in tokens.list() if t.revoked_at is None]
    tokens.revoke(info.id)
    app.extensions["kcc.web"].recheck_seconds = 0

    assert browser.get(page).status_code == 302
    assert _browser_with(app, copied).get(page).status_code == 302
