"""After login a person goes back where they came from, but only to a page of this site:
known open-redirect bypasses on the agent desk and the back office land on the start page."""

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
from kcc_shared.web import is_local_path

SECRET = "redirect-test-secret-0123456789"

# As they would stand in the address bar (?next=...): each would leave the site in some
# browser, directly or after the browser drops a tab/newline or reads "\" as "/".
BYPASSES = [
    "//evil.example",
    "///evil.example",
    "/%09/evil.example",
    "/%0a/evil.example",
    "/%0d%0a/evil.example",
    "/%00/evil.example",
    "/%5cevil.example",
    "/%5c%5cevil.example",
    "%5c%5cevil.example",
    "/%2f/evil.example",
    "%2f%2fevil.example",
    "/%252f%252fevil.example",
    "/%255cevil.example",
    "%20//evil.example",
    "/%E3%80%80/evil.example",
    "/%C2%A0/evil.example",
    "/%E2%80%8B/evil.example",
    "https://evil.example",
    "https:evil.example",
    "HTTPS://evil.example/inbox",
    "javascript:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "@evil.example",
]


@pytest.fixture(params=["backoffice", "intake"])
def site(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[tuple[Flask, str, str]]:
    """(app, a token that may log in there, the page a person lands on by default)."""
    config = Config(
        database_url=sqlite_url,
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
        yield app, token, "/inbox"
    else:
        app = create_intake(config)
        token, _ = app.extensions[TOKENS_EXTENSION].create(
            role="agent", user_id="agent-anna", team="kcc-noord"
        )
        yield app, token, "/balie"
    app.extensions["kcc.intake" if request.param == "intake" else "kcc.backoffice"].relay.stop()


def _login_form(client: FlaskClient, raw_next: str) -> str:
    page = client.get(f"/login?next={raw_next}").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    return match.group(1)


def _post_login(client: FlaskClient, token: str, raw_next: str) -> str:
    csrf = _login_form(client, raw_next)
    # The form posts back what the page got, as the browser would: form-encoded.
    body = f"token={token}&csrf_token={csrf}&next={raw_next}"
    response = client.post("/login", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 302, response.get_data(as_text=True)
    return str(response.headers["Location"])


@pytest.mark.parametrize("raw_next", BYPASSES)
def test_a_bypass_after_login_lands_on_the_start_page(
    site: tuple[Flask, str, str], raw_next: str
) -> None:
    app, token, home = site
    client = app.test_client()

    if "%00" in raw_next:
        # A NUL in any form field refuses the whole form (it could not be stored anyway).
        csrf = _login_form(client, raw_next)
        body = f"token={token}&csrf_token={csrf}&next={raw_next}"
        refused = client.post("/login", data=body, content_type="application/x-www-form-urlencoded")
        assert refused.status_code == 400
        assert _post_login(client, token, home) == home
    else:
        assert _post_login(client, token, raw_next) == home
    # Logged in already, /login?next=... redirects at once: the same rule.
    again = client.get(f"/login?next={raw_next}")
    assert again.status_code == 302
    assert again.headers["Location"] == home


@pytest.mark.parametrize("raw_next", BYPASSES)
def test_the_login_page_never_carries_a_bypass_in_its_form(
    site: tuple[Flask, str, str], raw_next: str
) -> None:
    app, _, home = site
    page = app.test_client().get(f"/login?next={raw_next}").get_data(as_text=True)
    assert f'name="next" value="{home}"' in page
    assert "evil.example" not in page


def test_a_page_of_this_site_is_where_the_person_goes_back_to(
    site: tuple[Flask, str, str],
) -> None:
    app, token, home = site
    target = f"{home}/x?state=waiting&page=2"
    assert _post_login(app.test_client(), token, target.replace("&", "%26")) == target


@pytest.mark.parametrize(
    "path", ["/inbox", "/balie/requests/5c1f?x=1", "/a/b.c", "/inbox#top", "/a%2Fb"]
)
def test_plain_paths_are_local(path: str) -> None:
    assert is_local_path(path)


@pytest.mark.parametrize("raw_next", ["", "inbox", "/\\evil", "/\tevil", "//", "/x//y", "/a%20b"])
def test_decoded_bypasses_are_not_local(raw_next: str) -> None:
    assert not is_local_path(raw_next)
