"""The inbox pages and the shared web login: session cookie, CSRF, roles, labelled controls."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kcc_shared.api import TOKENS_EXTENSION


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def login(client: FlaskClient, token: str, next_: str = "/inbox") -> Any:
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"token": token, "csrf_token": csrf_of(page), "next": next_})


class ControlAudit(HTMLParser):
    """Every form control must have a label (for=id), aria-label, or be hidden/a button."""

    def __init__(self) -> None:
        super().__init__()
        self.label_for: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.buttons: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label" and a.get("for"):
            self.label_for.add(str(a["for"]))
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append(a)
        if tag == "button":
            self.buttons.append(a)

    def unlabelled(self) -> list[dict[str, str | None]]:
        return [
            c
            for c in self.controls
            if c.get("id") not in self.label_for and not c.get("aria-label")
        ]


def audit(html: str) -> ControlAudit:
    parser = ControlAudit()
    parser.feed(html)
    return parser


def test_pages_redirect_to_login_and_back(client: FlaskClient, staff_token: str) -> None:
    response = client.get("/inbox/burgerzaken")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/inbox/burgerzaken")
    logged_in = login(client, staff_token, "/inbox/burgerzaken")
    assert logged_in.status_code == 302
    assert logged_in.headers["Location"] == "/inbox/burgerzaken"
    page = client.get("/inbox/burgerzaken")
    assert page.status_code == 200
    assert "Inbox Burgerzaken" in page.get_data(as_text=True)


def test_session_cookie_flags(client: FlaskClient, staff_token: str) -> None:
    response = login(client, staff_token)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("kcc_backoffice_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert staff_token not in cookie


def test_secure_cookie_is_the_default(app: Flask) -> None:
    from kcc_shared.config import Config

    assert Config().session_cookie_secure is True


def test_wrong_token_and_wrong_role_are_refused(client: FlaskClient, agent_token: str) -> None:
    unknown = login(client, "kcc_not-a-real-token")
    assert unknown.status_code == 401
    assert "onbekend of ingetrokken" in unknown.get_data(as_text=True)
    agent = login(client, agent_token)
    assert agent.status_code == 403
    assert "rol agent" in agent.get_data(as_text=True)
    assert client.get("/inbox/burgerzaken").status_code == 302


def test_login_without_csrf_is_refused(client: FlaskClient, staff_token: str) -> None:
    client.get("/login")
    response = client.post("/login", data={"token": staff_token})
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_open_redirect_after_login_is_refused(client: FlaskClient, staff_token: str) -> None:
    response = login(client, staff_token, "//evil.example/phish")
    assert response.headers["Location"] == "/inbox"


def test_claim_from_the_inbox_page(
    client: FlaskClient, staff_token: str, item_id: str, outbox_count: Any
) -> None:
    login(client, staff_token)
    page = client.get("/inbox/burgerzaken").get_data(as_text=True)
    assert "Paspoort kwijt" in page
    assert "Op tijd" in page
    response = client.post(
        f"/items/{item_id}/claim", data={"csrf_token": csrf_of(page)}, follow_redirects=True
    )
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "Je hebt de vraag opgepakt." in text
    assert "In behandeling" in text
    assert outbox_count() == 1


@pytest.mark.parametrize("csrf", [None, "wrong-token"])
def test_forms_without_the_right_csrf_token_change_nothing(
    client: FlaskClient, staff_token: str, item_id: str, csrf: str | None, outbox_count: Any
) -> None:
    login(client, staff_token)
    data = {"csrf_token": csrf} if csrf else {}
    response = client.post(f"/items/{item_id}/claim", data=data)
    assert response.status_code == (400 if csrf is None else 403)
    assert outbox_count() == 0


def test_json_post_to_a_page_needs_csrf_too(
    client: FlaskClient, staff_token: str, item_id: str
) -> None:
    login(client, staff_token)
    response = client.post(f"/items/{item_id}/claim", json={})
    assert response.status_code == 400


def test_answer_ask_and_forward_from_the_item_page(
    client: FlaskClient, staff_token: str, item_id: str, outbox_events: Any
) -> None:
    login(client, staff_token)
    page = client.get(f"/items/{item_id}").get_data(as_text=True)
    csrf = csrf_of(page)
    client.post(f"/items/{item_id}/claim", data={"csrf_token": csrf})
    page = client.get(f"/items/{item_id}").get_data(as_text=True)
    # One action at a time: a choice first, then only the chosen form.
    assert "Wat wil je doen?" in page
    assert "<textarea" not in page
    for choice, labels in {
        "antwoorden": ("Antwoord voor het KCC",),
        "verduidelijking": ("Vraag terug aan het KCC",),
        "doorsturen": ("Reden", "Afdeling"),
    }.items():
        form = client.get(f"/items/{item_id}?actie={choice}").get_data(as_text=True)
        for label in labels:
            assert label in form
        assert form.count("<textarea") == 1
    asked = client.post(
        f"/items/{item_id}/verduidelijking",
        data={"csrf_token": csrf, "tekst": "Welk paspoortnummer?"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "klok staat stil" in asked
    refused = client.post(
        f"/items/{item_id}/doorsturen",
        data={"csrf_token": csrf, "afdeling": "belastingen", "reden": "niet van ons"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Dat kan nu niet: het KCC heeft je verduidelijkingsvraag nog niet beantwoord" in refused
    answered = client.post(
        f"/items/{item_id}/answer",
        data={"csrf_token": csrf, "tekst": "Noodpaspoort aanvragen bij de balie."},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Je antwoord is verstuurd" in answered
    assert [key for key, _ in outbox_events()] == [
        "request.claimed",
        "request.clarification_requested",
        "request.answered",
    ]


def test_empty_answer_is_explained(client: FlaskClient, staff_token: str, item_id: str) -> None:
    login(client, staff_token)
    csrf = csrf_of(client.get(f"/items/{item_id}").get_data(as_text=True))
    client.post(f"/items/{item_id}/claim", data={"csrf_token": csrf})
    page = client.post(
        f"/items/{item_id}/answer", data={"csrf_token": csrf, "tekst": " "}, follow_redirects=True
    ).get_data(as_text=True)
    assert 'role="alert"' in page
    assert "Vul een tekst in" in page


def test_every_form_control_is_labelled_and_buttons_are_real(
    client: FlaskClient, staff_token: str, item_id: str
) -> None:
    pages = [client.get("/login").get_data(as_text=True)]
    login(client, staff_token)
    csrf = csrf_of(client.get(f"/items/{item_id}").get_data(as_text=True))
    client.post(f"/items/{item_id}/claim", data={"csrf_token": csrf})
    pages += [
        client.get(p).get_data(as_text=True)
        for p in (
            "/inbox/burgerzaken",
            f"/items/{item_id}?actie=antwoorden",
            f"/items/{item_id}?actie=doorsturen",
        )
    ]
    for path, html in zip(("/login", "/inbox", "/answer", "/forward"), pages, strict=True):
        found = audit(html)
        assert found.controls, path
        assert found.unlabelled() == [], path
        assert all(b.get("type") == "submit" for b in found.buttons), path
        assert 'lang="nl"' in html
        assert 'tabindex="1' not in html  # no positive tabindex: the DOM order is the order
    assert 'href="#inhoud"' in client.get("/inbox/burgerzaken").get_data(as_text=True)


def test_staff_of_another_department_cannot_open_the_page(
    client: FlaskClient, other_staff_token: str, item_id: str
) -> None:
    login(client, other_staff_token)
    assert client.get("/inbox/burgerzaken").status_code == 403
    item = client.get(f"/items/{item_id}")
    assert item.status_code == 403
    # A page in Dutch with a way back (a forwarded item's old link ends here), not the API's
    # problem+json; and nothing of the question.
    assert item.mimetype == "text/html"
    page = item.get_data(as_text=True)
    assert "Geen toegang" in page
    assert "Naar je inbox" in page
    assert "Paspoort kwijt" not in page


def test_ops_may_read_but_not_act(client: FlaskClient, ops_token: str, item_id: str) -> None:
    login(client, ops_token)
    page = client.get("/inbox/burgerzaken").get_data(as_text=True)
    assert "Paspoort kwijt" in page
    assert "Oppakken" not in page
    response = client.post(f"/items/{item_id}/claim", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 403


def test_logout_ends_the_session(client: FlaskClient, staff_token: str) -> None:
    login(client, staff_token)
    page = client.get("/inbox/burgerzaken").get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": csrf_of(page)}).status_code == 302
    assert client.get("/inbox/burgerzaken").status_code == 302


def test_revoking_the_token_ends_the_web_session(
    app: Flask, client: FlaskClient, staff_token: str
) -> None:
    login(client, staff_token)
    tokens = app.extensions[TOKENS_EXTENSION]
    (info,) = [t for t in tokens.list() if t.principal.user_id == "staff-eva"]
    tokens.revoke(info.id)
    app.extensions["kcc.web"].recheck_seconds = 0
    assert client.get("/inbox/burgerzaken").status_code == 302
