"""Why a question landed with this department: staff see a Dutch sentence and similar earlier
questions on the item page, never the router's reason code; the API's timeline carries them."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from typing import Any

import pytest
from flask.testing import FlaskClient
from kcc_shared.events import Event, new_event

EXPLANATION = "Lijkt op eerdere vragen voor Burgerzaken (87 % zeker)"
SIMILAR = [
    "Paspoort verloren op vakantie, wat nu?",
    "Kan ik een <b>nood</b>paspoort krijgen?",
]
# ("model" is also a Dutch word, and an explanation may use it.)
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


def login(client: FlaskClient, token: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match
    client.post("/login", data={"token": token, "csrf_token": match.group(1), "next": "/inbox"})


def routed_with(make: Any, request_id: str, **data: Any) -> Event:
    """The conftest's routed event, with other data (as a newer or older router sends it)."""
    base = make.routed(request_id, handoff_count=data.get("handoff_count", 0))
    return new_event(
        "request.routed",
        request_id=request_id,
        actor=base.actor,
        occurred_at=base.occurred_at,
        data={**base.data, **data},
    )


def test_staff_see_why_it_landed_with_them_escaped(
    client: FlaskClient, staff_token: str, deliver: Any, make: Any
) -> None:
    request_id = str(uuid.uuid4())
    deliver(
        make.submitted(request_id),
        routed_with(
            make,
            request_id,
            reason="model",
            decider="model",
            confidence=0.87,
            model_version="m-2026-11",
            explanation=EXPLANATION,
            similar=SIMILAR,
        ),
    )
    login(client, staff_token)
    html = client.get(f"/items/{request_id}").get_data(as_text=True)
    text = visible(html)

    assert "Waarom bij ons" in text
    assert EXPLANATION in text
    assert "Vergelijkbare eerdere vragen" in text
    assert "Paspoort verloren op vakantie, wat nu?" in text
    # Escaped: the example's markup is shown as text, never rendered.
    assert "Kan ik een &lt;b&gt;nood&lt;/b&gt;paspoort krijgen?" in html
    assert "<b>nood</b>" not in html
    assert "Toegewezen aan afdeling Burgerzaken" in text
    for code in CODES:
        assert not re.search(rf"\b{code}\b", text), code

    body = client.get(f"/api/v1/items/{request_id}", headers=make.auth(staff_token)).get_json()
    (routing,) = [e for e in body["timeline"] if e["type"] == "request.routed"]
    assert routing["details"]["explanation"] == EXPLANATION
    assert routing["details"]["similar"] == SIMILAR
    assert (routing["details"]["decider"], routing["details"]["confidence"]) == ("model", 0.87)


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
def test_an_old_routed_event_shows_a_derived_sentence_and_no_code(
    client: FlaskClient,
    staff_token: str,
    deliver: Any,
    make: Any,
    reason: str,
    extra: dict[str, Any],
    sentence: str,
) -> None:
    request_id = str(uuid.uuid4())
    deliver(make.submitted(request_id), routed_with(make, request_id, reason=reason, **extra))
    login(client, staff_token)
    text = visible(client.get(f"/items/{request_id}").get_data(as_text=True))

    assert "Waarom bij ons" in text
    assert sentence in text
    assert "Vergelijkbare eerdere vragen" not in text
    assert not re.search(r"\bbelastingen\b", text)  # a department's name, never its id
    for code in CODES:
        assert not re.search(rf"\b{code}\b", text), code


def test_a_bsn_in_the_explanation_or_an_example_is_redacted_again(
    client: FlaskClient, staff_token: str, deliver: Any, make: Any
) -> None:
    request_id = str(uuid.uuid4())
    deliver(
        make.submitted(request_id),
        routed_with(
            make,
            request_id,
            explanation="De vraag noemt BSN 123456782",
            similar=["Adres wijzigen voor 123456782?"],
        ),
    )
    login(client, staff_token)
    html = client.get(f"/items/{request_id}").get_data(as_text=True)
    assert "123456782" not in html
    assert "Adres wijzigen voor [BSN]?" in visible(html)
