"""Why a question went where it went: the agent sees a Dutch sentence and similar earlier
questions on the desk, never the router's reason code; the API's timeline carries them too."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.app import create_app
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config

QUESTION = "Meneer wil een parkeervergunning voor zijn tweede auto aanvragen."
EXPLANATION = (
    "Regel voor Parkeren: de vraag noemt 'parkeervergunning'; het model is het ermee eens "
    "(92 % zeker)"
)
SIMILAR = [
    "Hoe vraag ik een bewonersvergunning aan?",
    "Kan ik een <b>tweede</b> parkeervergunning krijgen?",
]
# ("model" is also a Dutch word, and the explanation may use it.)
CODES = ("fallback", "rule", "category", "forward")


class VisibleText(HTMLParser):
    """The text a person sees: no tags, attributes, scripts or styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._hidden += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def visible(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Flask]:
    app = create_app(
        Config(
            database_url=sqlite_url,
            broker_url="memory://",
            outbox_relay=False,
            secret_key="test-secret-key-of-enough-length",
            session_cookie_secure=False,
        )
    )
    yield app
    app.extensions["kcc.intake"].feed.stop()
    app.extensions["kcc.intake"].store.engine.dispose()


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


@pytest.fixture
def token(app: Flask) -> str:
    token, _ = app.extensions[TOKENS_EXTENSION].create(
        role="agent", user_id="agent-anna", team="kcc-noord"
    )
    return str(token)


@pytest.fixture
def file_question(app: Flask, client: FlaskClient, token: str) -> Callable[[], str]:
    """Log in on the desk and file a question there; returns its page's URL."""
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"token": token, "csrf_token": csrf_of(page), "next": "/balie"})
    csrf = csrf_of(client.get("/balie").get_data(as_text=True))

    def file() -> str:
        filed = client.post("/balie/vragen", data={"csrf_token": csrf, "question": QUESTION})
        assert filed.status_code == 302
        return str(filed.headers["Location"])

    return file


def test_the_desk_shows_the_explanation_and_similar_questions_escaped(
    client: FlaskClient,
    token: str,
    file_question: Callable[[], str],
    deliver: Callable[..., Any],
    routed_data: Callable[..., dict[str, Any]],
) -> None:
    url = file_question()
    request_id = url.rsplit("/", 1)[1]
    deliver(
        request_id,
        "routed",
        **routed_data("parkeren"),
        decider="rule",
        confidence=0.92,
        model_version="m-2026-11",
        explanation=EXPLANATION,
        similar=SIMILAR,
    )
    html = client.get(url).get_data(as_text=True)
    text = visible(html)

    assert "Waarom deze afdeling" in text
    assert "Regel voor Parkeren: de vraag noemt &#39;parkeervergunning&#39;" in html
    assert EXPLANATION in text
    assert "Vergelijkbare eerdere vragen" in text
    assert "Hoe vraag ik een bewonersvergunning aan?" in text
    # Escaped: the example's markup is shown as text, never rendered.
    assert "Kan ik een &lt;b&gt;tweede&lt;/b&gt; parkeervergunning krijgen?" in html
    assert "<b>tweede</b>" not in html
    assert "Reden:" not in text
    for code in CODES:
        assert not re.search(rf"\b{code}\b", text), code

    # The API's timeline carries the same, for a desktop client.
    body = client.get(
        f"/api/v1/requests/{request_id}", headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    (routing,) = [e for e in body["timeline"] if e["type"] == "request.routed"]
    assert routing["details"]["explanation"] == EXPLANATION
    assert routing["details"]["similar"] == SIMILAR
    assert routing["details"]["decider"] == "rule"
    assert routing["details"]["confidence"] == 0.92


@pytest.mark.parametrize(
    ("reason", "extra", "sentence"),
    [
        ("rule", {}, "Een routeringsregel herkende de vraag"),
        ("category", {}, "Op grond van de gekozen categorie"),
        ("fallback", {}, "Geen regel herkende de vraag; het KCC kiest de afdeling"),
        (
            "forward",
            {"from_department": "belastingen", "handoff_count": 1},
            "Doorgestuurd door Belastingen en WOZ",
        ),
    ],
)
def test_an_old_routed_event_shows_a_derived_dutch_sentence_and_no_code(
    client: FlaskClient,
    file_question: Callable[[], str],
    deliver: Callable[..., Any],
    routed_data: Callable[..., dict[str, Any]],
    reason: str,
    extra: dict[str, Any],
    sentence: str,
) -> None:
    url = file_question()
    request_id = url.rsplit("/", 1)[1]
    data = {**routed_data("parkeren"), "reason": reason, **extra}
    deliver(request_id, "routed", **data)
    text = visible(client.get(url).get_data(as_text=True))

    assert "Waarom deze afdeling" in text
    assert sentence in text
    assert "Vergelijkbare eerdere vragen" not in text
    assert "belastingen" not in text  # a department's name, never its id
    for code in CODES:
        assert not re.search(rf"\b{code}\b", text), code


def test_a_late_older_routing_does_not_explain_where_the_question_is(
    client: FlaskClient,
    file_question: Callable[[], str],
    deliver: Callable[..., Any],
    routed_data: Callable[..., dict[str, Any]],
) -> None:
    url = file_question()
    request_id = url.rsplit("/", 1)[1]
    forwarded = {**routed_data("parkeren", handoff_count=1), "reason": "forward"}
    deliver(request_id, "routed", **forwarded, from_department="belastingen")
    first = {**routed_data("belastingen"), "explanation": "Lijkt op eerdere vragen voor WOZ"}
    deliver(request_id, "routed", **first)
    text = visible(client.get(url).get_data(as_text=True))

    assert "Waarom deze afdeling Doorgestuurd door Belastingen en WOZ" in text
    # The older routing stays in the timeline, with its own sentence.
    assert "Lijkt op eerdere vragen voor WOZ" in text


def test_before_routing_there_is_no_why(
    client: FlaskClient, file_question: Callable[[], str]
) -> None:
    text = visible(client.get(file_question()).get_data(as_text=True))
    assert "Nog niet bekend" in text
    assert "Waarom deze afdeling" not in text


def test_a_bsn_in_the_explanation_or_an_example_is_redacted_again(
    client: FlaskClient,
    file_question: Callable[[], str],
    deliver: Callable[..., Any],
    routed_data: Callable[..., dict[str, Any]],
) -> None:
    url = file_question()
    request_id = url.rsplit("/", 1)[1]
    explanation = "De vraag noemt BSN 123456782"
    deliver(
        request_id,
        "routed",
        **routed_data("parkeren"),
        explanation=explanation,
        similar=["Adres wijzigen voor 123456782?"],
    )
    html = client.get(url).get_data(as_text=True)
    assert "123456782" not in html
    assert "Adres wijzigen voor [BSN]?" in visible(html)
