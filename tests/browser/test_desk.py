"""The desk as a KCC-medewerker on the phone uses it, in a real browser against `kcc dev`:
filing by keyboard only (a refused submit puts the focus on the error summary, a lost
connection keeps the text), the reference to read out and find back, when the citizen can
expect an answer, a department's question back appearing at the top live (count, tab title,
announced), a teammate answering it in the team view, and withdrawing with a confirmation."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import evidence

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import BrowserContext, Page

    from tests.browser.conftest import Axe, DevServer, Screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# The tab title's separator, as the pages write it.
DASH = "\N{EN DASH}"
REFERENCE = re.compile(r"KV-\d{4}-\d{6}")
CLARIFICATION = "Staat de bank aan de straatkant of in de achtertuin?"


def call(server: DevServer, token: str, method: str, path: str, body: Any = None) -> Any:
    """The back office's API as a staff member's own client uses it."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.base}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def focused(page: Page) -> str:
    """The focused element as `tag#id` (or its text, for a link)."""
    return str(
        page.evaluate(
            "() => { const e = document.activeElement;"
            " return e.tagName.toLowerCase() + (e.id ? '#' + e.id : ':' + e.textContent.trim()); }"
        )
    )


def tab_to(page: Page, target: str, most: int = 15) -> int:
    """Press Tab until ``target`` (see focused) has the focus; how many presses it took."""
    for presses in range(1, most + 1):
        page.keyboard.press("Tab")
        if focused(page) == target:
            return presses
    raise AssertionError(f"{target} not reached in {most} tabs (at {focused(page)})")


def file_question(page: Page, base: str, question: str) -> str:
    page.goto(f"{base}/balie/nieuw")
    page.get_by_label("Vraag van de inwoner").fill(question)
    page.get_by_role("button", name="Vraag versturen").click()
    page.get_by_text("Je vraag is verstuurd").wait_for()
    return page.url


def test_filing_by_keyboard_reference_expected_answer_and_search(
    chromium: Path,  # first: without a browser no server is started
    dev_server: DevServer,
    browser: BrowserContext,
    screenshots: Screenshots,
    axe: Axe,
) -> None:
    from playwright.sync_api import expect

    base = dev_server.base
    marker = uuid.uuid4().hex[:8]
    question = f"{marker}: grofvuil afspraak gemaakt maar de bank is niet opgehaald."
    page = browser.new_page()
    with evidence(screenshots, {"balie": page}, dev_server):
        page.goto(dev_server.login_links["agent-anna"])
        expect(page).to_have_url(f"{base}/balie")
        expect(page).to_have_title(f"Balie {DASH} KCC kennisvragen")
        screenshots.take(page, "balie")
        axe.check(page, "desk-balie")

        # Keyboard only: "Nieuwe vraag" is the first thing after the skip link and the name.
        assert tab_to(page, "a:Nieuwe vraag") <= 3
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", "the focused link shows no focus"
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{base}/balie/nieuw")
        expect(page).to_have_title(f"Nieuwe vraag {DASH} KCC kennisvragen")
        axe.check(page, "desk-nieuwe-vraag")

        # The tab order follows the form top to bottom; too short a question is refused.
        tab_to(page, "textarea#question")
        page.keyboard.type("kort")
        order = [focused(page)]
        for _ in range(6):
            page.keyboard.press("Tab")
            order.append(focused(page))
        assert order == [
            "textarea#question",
            "button:Zoek eerdere antwoorden",
            "select#category",
            "select#priority",
            "select#channel",
            "input#citizen_ref",
            "button:Vraag versturen",
        ]
        page.keyboard.press("Enter")
        summary = page.locator("#foutoverzicht")
        expect(summary).to_be_focused()
        expect(summary).to_contain_text("Beschrijf de vraag in 10 tot 4000 tekens.")
        expect(page).to_have_title(f"Fout: Nieuwe vraag {DASH} KCC kennisvragen")
        box = summary.bounding_box()  # relative to the viewport: scrolled into view
        assert box is not None
        assert 0 <= box["y"] < 300, box
        screenshots.take(page, "geweigerd")
        axe.check(page, "desk-geweigerd")

        # From the summary's link to the field, then the question typed in full.
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        expect(page.locator("textarea#question")).to_be_focused()
        page.keyboard.press("Control+A")
        page.keyboard.type(question)

        # The connection drops as it is sent: the text stays and the page says what happened.
        page.route("**/balie/vragen", lambda route: route.abort("internetdisconnected"))
        tab_to(page, "button:Vraag versturen")
        page.keyboard.press("Enter")
        expect(page.get_by_role("alert").filter(has_text="geen verbinding")).to_be_visible()
        expect(page.locator("textarea#question")).to_have_value(question)
        screenshots.take(page, "geen-verbinding")
        axe.check(page, "desk-geen-verbinding")
        page.unroute("**/balie/vragen")

        # The database is away as it is sent: the server's Dutch outage page (not the form
        # again) does not replace the form; the text stays and the page says what happened.
        outage = '<div id="pagina"><h1>Even niet bereikbaar</h1></div>'
        page.route(
            "**/balie/vragen",
            lambda route: route.fulfill(status=503, content_type="text/html", body=outage),
        )
        tab_to(page, "button:Vraag versturen")
        page.keyboard.press("Enter")
        expect(
            page.get_by_role("alert").filter(has_text="de server gaf een fout (503)")
        ).to_be_visible()
        expect(page.locator("textarea#question")).to_have_value(question)
        page.unroute("**/balie/vragen")
        tab_to(page, "button:Vraag versturen")
        page.keyboard.press("Enter")

        # Filed: the reference to read out, and when the citizen can expect an answer.
        expect(page.get_by_text("Je vraag is verstuurd met kenmerk KV-")).to_be_visible()
        heading = page.get_by_role("heading", level=1)
        expect(heading).to_have_text(REFERENCE)
        reference = REFERENCE.search(heading.inner_text())
        assert reference
        expect(page.locator("#verwacht")).to_have_text(
            re.compile(r"^Uiterlijk \w+( \d+ \w+)? vóór \d\d:\d\d$"), timeout=30_000
        )
        expect(page.get_by_text("Telefoon", exact=True)).to_be_visible()
        screenshots.take(page, "verstuurd")
        axe.check(page, "desk-verstuurd")

        # Found back by its reference, as a citizen reads it out ("kv 2026 4217").
        page.get_by_role("link", name="Mijn vragen").click()
        year, number = reference.group(0).split("-")[1:]
        page.get_by_role("searchbox", name="Zoeken").fill(f"kv {year} {int(number)}")
        page.get_by_role("searchbox", name="Zoeken").press("Enter")
        rows = page.locator("#lijst tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(reference.group(0))
        expect(rows.first).to_contain_text(marker)
        expect(rows.first.locator("td").last).to_have_text(re.compile("^Uiterlijk "))
        screenshots.take(page, "gevonden")
        axe.check(page, "desk-gevonden")

        # A malformed reference is said so, not silently "nothing found".
        page.get_by_role("searchbox", name="Zoeken").fill("KV-20-1")
        page.get_by_role("searchbox", name="Zoeken").press("Enter")
        expect(page.locator("#foutoverzicht")).to_be_focused()
        expect(page.locator("#foutoverzicht")).to_contain_text("geen volledig kenmerk")
        screenshots.take(page, "kenmerk-fout")
        axe.check(page, "desk-kenmerk-fout")


def test_question_back_live_on_top_teammate_answers_and_cancel_asks_first(
    chromium: Path,
    dev_server: DevServer,
    browser: BrowserContext,
    screenshots: Screenshots,
    axe: Axe,
    wait_for: Callable[..., None],
) -> None:
    from playwright.sync_api import expect

    base = dev_server.base
    marker = uuid.uuid4().hex[:8]
    page = browser.new_page()
    femke = dev_server.tokens["staff-femke"]
    with evidence(screenshots, {"balie": page}, dev_server):
        page.goto(dev_server.login_links["agent-anna"])
        url = file_question(
            page, base, f"{marker}: grofvuil afspraak gemaakt maar de bank staat nog buiten."
        )
        request_id = url.rsplit("/", 1)[1]

        # Anna waits on her desk; the department asks her something back.
        page.goto(f"{base}/balie")
        expect(page).to_have_title(f"Balie {DASH} KCC kennisvragen")
        page.evaluate("window.kccZelfdePagina = true")

        def routed() -> bool:
            try:
                call(dev_server, femke, "GET", f"/backoffice/api/v1/items/{request_id}")
            except urllib.error.HTTPError:
                return False
            return True

        wait_for(routed, timeout=60, interval=0.5)
        call(dev_server, femke, "POST", f"/backoffice/api/v1/items/{request_id}/claim", {})
        call(
            dev_server,
            femke,
            "POST",
            f"/backoffice/api/v1/items/{request_id}/clarification-request",
            {"text": CLARIFICATION},
        )

        # At the top, counted, in the tab title and announced: without a reload.
        expect(page).to_have_title(f"(1) Balie {DASH} KCC kennisvragen", timeout=30_000)
        group = page.locator("#actie")
        expect(group.get_by_role("heading")).to_have_text("Actie nodig 1")
        expect(group).to_contain_text(marker)
        expect(page.locator("#live")).to_contain_text("1 vraag wacht op jou")
        assert page.evaluate("window.kccZelfdePagina") is True, "the page was reloaded"
        screenshots.take(page, "actie-nodig")
        axe.check(page, "desk-actie-nodig")

        # While the department waits, its clock stands still and the page says so.
        group.get_by_role("link", name=re.compile(marker)).click()
        expect(page.locator("#verwacht")).to_contain_text("De klok staat stil")
        axe.check(page, "desk-klok-stil")

        # Withdrawing asks first: a second question, withdrawn after confirming.
        other = file_question(page, base, f"{marker}: vraag die de inwoner zelf al oploste.")
        page.get_by_role("link", name="Vraag intrekken").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("intrekken?")
        axe.check(page, "desk-intrekken")
        page.get_by_role("button", name="Vraag intrekken").click()
        expect(page.locator("#foutoverzicht")).to_be_focused()
        expect(page.locator("#foutoverzicht")).to_contain_text("er is niets ingetrokken")
        screenshots.take(page, "intrekken-niet-bevestigd")
        axe.check(page, "desk-intrekken-niet-bevestigd")
        page.get_by_label("Ja, de inwoner is al geholpen").check()
        page.get_by_role("button", name="Vraag intrekken").click()
        expect(page.get_by_text("Je vraag is ingetrokken")).to_be_visible()
        expect(page).to_have_url(other)
        expect(page.locator("#verwacht")).to_have_text(re.compile(r"^Ingetrokken vandaag"))
        screenshots.take(page, "ingetrokken")

        # Anna's shift ends; Bram, her teammate, answers the question in the team view.
        page.goto(dev_server.login_links["agent-bram"])
        page.get_by_role("link", name="Mijn team").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Vragen van team kcc-noord")
        group = page.locator("#actie")
        expect(group).to_contain_text(marker)
        expect(group).to_contain_text("gesteld door agent-anna")
        screenshots.take(page, "team")
        axe.check(page, "desk-team")
        group.get_by_role("link", name=re.compile(marker)).click()
        expect(page.get_by_text("Je antwoordt namens agent-anna")).to_be_visible()
        page.get_by_label("Antwoord van het KCC").fill("In de achtertuin, achter het hek.")
        page.get_by_role("button", name="Antwoord versturen").click()
        expect(page.get_by_text("Je antwoord is naar de afdeling gestuurd.")).to_be_visible()
        expect(page.get_by_text("door agent-bram (namens agent-anna)")).to_be_visible()
        expect(page.locator("#verwacht")).to_have_text(re.compile("^Uiterlijk "))
        screenshots.take(page, "teamgenoot-antwoordde")
        axe.check(page, "desk-teamgenoot-antwoordde")

        def clarified() -> bool:
            item = call(dev_server, femke, "GET", f"/backoffice/api/v1/items/{request_id}")
            return any(e["type"] == "request.clarified" for e in item.get("timeline", []))

        wait_for(clarified, timeout=30, interval=0.5)

        # Chris, of another team, follows a link to it: a page in Dutch that shows nothing
        # of the question and leads back to his own desk.
        page.goto(dev_server.login_links["agent-chris"])
        page.goto(other)
        expect(page.get_by_role("heading", level=1)).to_have_text("Niet gevonden")
        expect(page.locator("#pagina")).not_to_contain_text(marker)
        screenshots.take(page, "niet-gevonden")
        axe.check(page, "desk-niet-gevonden")
        page.get_by_role("link", name="Naar Mijn vragen").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Mijn vragen")
