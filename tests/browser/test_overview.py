"""The team lead's overview as a person uses it, in Chromium against `kcc dev --demo-traffic`:
the ops login lands on it, each department is judged against the norm in colour and words, a
column sorts by keyboard, a department drills down to its late questions, and a question opens
in the back office. At 1440 px wide nothing scrolls sideways; axe-core checks every state."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import DevServer, running_dev

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from tests.browser.conftest import Axe, Screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

WIDTH, HEIGHT = 1440, 900


@pytest.fixture
def demo_server(
    chromium: Path, tmp_path: Path, wait_for: Callable[..., None]
) -> Iterator[DevServer]:
    """`kcc dev --demo-traffic` (its back-dated backlog is what the overview is for), with a
    slow pace so the demo staff barely act while the test looks."""
    del chromium  # asked first: without a browser no server is started
    with running_dev(tmp_path, wait_for, "--demo-traffic", "--demo-pace", "600") as server:
        yield server


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= WIDTH, f"{page.url} is {width} px wide at {WIDTH} px"


def test_the_team_lead_sees_late_work_sorts_drills_down_and_opens_the_question(
    demo_server: DevServer,
    browser: BrowserContext,
    screenshots: Screenshots,
    axe: Axe,
    wait_for: Callable[..., None],
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    base = demo_server.base
    try:
        # The ops login link lands on the overview.
        page.goto(demo_server.login_links["ops-dana"])
        expect(page).to_have_url(f"{base}/sla-monitor/sla")
        expect(page.get_by_role("heading", name="SLA-overzicht per afdeling")).to_be_visible()
        expect(page.get_by_role("navigation", name="Hoofdmenu")).to_be_visible()
        expect(page.get_by_text("Ingelogd als ops-dana")).to_be_visible()

        burgerzaken = page.locator("#afdelingen tbody tr").filter(
            has=page.get_by_role("rowheader", name="Burgerzaken")
        )

        def backlog_arrived() -> bool:
            # The backlog is published at start; the page renders per request.
            if burgerzaken.locator("td").nth(3).inner_text() != "2":
                page.reload()
                return False
            return True

        wait_for(backlog_arrived, timeout=60, interval=0.5)
        # Red with words, not colour alone: two questions are late.
        verdict = burgerzaken.locator("td").nth(0)
        expect(verdict).to_have_text("Onder norm")
        expect(verdict.locator(".rag-rood")).to_be_visible()
        afval = page.locator("#afdelingen tbody tr").filter(
            has=page.get_by_role("rowheader", name="Afvalinzameling")
        )
        expect(afval.locator("td").nth(4)).to_have_text("1")  # one at risk beside the late one
        expect(page.locator("#afdelingen tfoot").get_by_text("Totaal")).to_be_visible()
        _no_sideways_scroll(page)
        screenshots.take(page, "overzicht")
        axe.check(page, "sla-overzicht")

        # Sort the "Te laat" column by keyboard: the header is a button (the script upgraded
        # the server-side sort link).
        late_header = page.get_by_role("columnheader", name="Te laat", exact=True)
        late_button = late_header.get_by_role("button")
        late_button.focus()
        page.keyboard.press("Enter")
        expect(late_header).to_have_attribute("aria-sort", "ascending")
        page.keyboard.press("Enter")
        expect(late_header).to_have_attribute("aria-sort", "descending")
        expect(page.get_by_role("status").first).to_have_text("Gesorteerd op Te laat, aflopend.")
        first_row = page.locator("#afdelingen tbody tr").first
        expect(first_row.get_by_role("rowheader")).to_have_text("Burgerzaken")
        screenshots.take(page, "gesorteerd-op-te-laat")
        axe.check(page, "sla-overzicht-gesorteerd")

        # Drill down from the department to its late questions.
        first_row.get_by_role("link", name="Burgerzaken").click()
        expect(page).to_have_url(f"{base}/sla-monitor/sla/afdelingen/burgerzaken")
        expect(
            page.get_by_role("heading", name="Te laat en bijna te laat: Burgerzaken")
        ).to_be_visible()
        late_rows = page.locator("#te-laat-tabel tbody tr")
        expect(late_rows).to_have_count(2)
        expect(late_rows.first).to_contain_text("Niemand: nog niet opgepakt")
        expect(late_rows.first).to_contain_text("Eerste reactie: te laat")
        _no_sideways_scroll(page)
        screenshots.take(page, "te-laat-burgerzaken")
        axe.check(page, "sla-te-laat-burgerzaken")

        # Follow the first one to the item in the back office (ops-dana is logged in there too).
        link = late_rows.first.get_by_role("link")
        href = link.get_attribute("href")
        assert href is not None
        assert href.startswith("/backoffice/items/")
        link.click()
        expect(page).to_have_url(f"{base}{href}")
        expect(page.get_by_role("heading", name="Vraag van het KCC")).to_be_visible()
        # One of the backlog's Burgerzaken questions (the most overdue is listed first).
        expect(page.locator("blockquote")).to_contain_text(
            re.compile("Paspoort kwijtgeraakt|Verhuizing doorgegeven")
        )
        screenshots.take(page, "vraag-in-de-werkvoorraad")
        axe.check(page, "sla-vraag-in-de-werkvoorraad")

        # A department that does not exist: a Dutch page that says so, and a way back.
        response = page.goto(f"{base}/sla-monitor/sla/afdelingen/bestaat-niet")
        assert response is not None
        assert response.status == 404
        expect(page.get_by_role("heading", name="Afdeling niet gevonden")).to_be_visible()
        expect(page.get_by_role("link", name="Naar het SLA-overzicht")).to_be_visible()
        screenshots.take(page, "afdeling-onbekend")
        axe.check(page, "sla-afdeling-onbekend")
    except BaseException:
        screenshots.take(page, "fout")
        print(demo_server.log.read_text()[-20_000:])
        raise
