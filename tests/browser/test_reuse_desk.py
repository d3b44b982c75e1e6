"""Answered once, reused at the desk, in a real browser against `kcc dev`: a department answers a
question and ticks "herbruikbaar" (the back office API), a KCC-medewerker types a similar
question on the "Nieuwe vraag" form, sees the earlier answer appear while typing, answers the
citizen with it ("Hiermee is de vraag beantwoord"), confirms, and sees it counted with the form
empty. axe-core on every state; keyboard only for the answer's button."""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import api, evidence

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import BrowserContext

    from tests.browser.conftest import Axe, DevServer, Screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# What `kcc dev` prints per demo user: role, user id and API token.
ANSWER = (
    "Is de container niet geleegd op de ophaaldag? Meld het via de afvalapp of het "
    "webformulier; de inzamelaar komt binnen twee werkdagen alsnog langs."
)


def visible(server: DevServer, token: str, path: str) -> bool:
    try:
        api(server, token, path)
    except urllib.error.HTTPError:
        return False
    return True


def test_a_reusable_answer_answers_a_similar_question_at_the_desk(
    chromium: Path,  # first: without a browser no server is started
    dev_server: DevServer,
    browser: BrowserContext,
    screenshots: Screenshots,
    axe: Axe,
    wait_for: Callable[..., None],
) -> None:
    from playwright.sync_api import expect

    tokens = dev_server.tokens
    marker = uuid.uuid4().hex[:6]
    earlier = (
        f"Meneer uit de Dorpsstraat {marker} zegt dat zijn grijze container vanochtend niet is "
        "geleegd. Wat moet hij doen?"
    )
    # A colleague's question, answered by Afvalinzameling and offered for reuse.
    filed = api(
        dev_server,
        tokens["agent-bram"],
        "/api/v1/requests",
        {"question": earlier, "category": "afval", "channel": "phone", "priority": "normal"},
    )
    item = f"/backoffice/api/v1/items/{filed['id']}"
    wait_for(lambda: visible(dev_server, tokens["staff-femke"], item), timeout=30)
    api(dev_server, tokens["staff-femke"], f"{item}/claim", {})
    api(dev_server, tokens["staff-femke"], f"{item}/answer", {"text": ANSWER, "reusable": True})
    typed = "Inwoner belt: de vuilcontainer is vandaag niet geleegd, wat moet ze nu doen?"
    wait_for(
        lambda: any(
            s["request_id"] == filed["id"]
            for s in api(
                dev_server,
                tokens["agent-anna"],
                "/api/v1/suggestions?" + urllib.parse.urlencode({"q": typed}),
            )["suggestions"]
        ),
        timeout=30,
    )

    page = browser.new_page()
    with evidence(screenshots, {"balie": page}, dev_server):
        page.goto(dev_server.login_links["agent-anna"])
        page.goto(f"{dev_server.base}/balie/nieuw")
        axe.check(page, "reuse-new-form")
        screenshots.take(page, "nieuwe-vraag")

        # Typing: a pause brings the earlier answer, and the count is announced.
        page.locator("#question").press_sequentially(typed, delay=5)
        suggestion = page.locator(f'[data-suggestion="{filed["id"]}"]')
        expect(suggestion).to_be_visible()
        expect(page.locator("#eerder-kop")).to_have_text("Eerder beantwoord")
        expect(suggestion).to_contain_text("Lijkt op:")
        expect(suggestion).to_contain_text(earlier)
        expect(suggestion).to_contain_text(ANSWER)
        expect(suggestion).to_contain_text("Antwoord van Afvalinzameling")
        expect(page.locator("#eerder-aantal")).to_contain_text("gevonden die hierop")
        # What was typed is still there: the suggestions came in beside it.
        expect(page.locator("#question")).to_have_value(typed)
        axe.check(page, "reuse-suggestions")
        screenshots.take(page, "eerder-beantwoord")

        # Keyboard only: focus the answer's button, Enter.
        button = suggestion.get_by_role("button", name="Hiermee is de vraag beantwoord")
        size = button.bounding_box()
        assert size is not None
        assert size["height"] >= 24
        assert size["width"] >= 24
        button.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Is de vraag hiermee beantwoord?")).to_be_visible()
        expect(page.locator("main")).to_contain_text(typed)
        expect(page.locator("main")).to_contain_text(ANSWER)
        axe.check(page, "reuse-confirm")
        screenshots.take(page, "bevestigen")

        page.get_by_role("button", name="Ja, de vraag is beantwoord").click()
        expect(page.locator("#meldingen")).to_contain_text(
            "Geteld: beantwoord zonder doorzetten, met het antwoord van Afvalinzameling."
        )
        expect(page.get_by_role("heading", name="Nieuwe vraag")).to_be_visible()
        expect(page.locator("#question")).to_have_value("")
        axe.check(page, "reuse-counted")
        screenshots.take(page, "geteld")

    # Counted on the wire for the department: the intake's metric.
    with urllib.request.urlopen(f"{dev_server.base}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert re.search(
        r'kcc_answers_reused_total\{category="afval",department="afval"\} 1\.0', metrics
    ), [line for line in metrics.splitlines() if "reused" in line]
