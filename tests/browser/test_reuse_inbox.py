"""Answered once, reused everywhere, as a department's staff use it in a real browser against a
running `kcc dev`: an answer marked 'Herbruikbaar' and later withdrawn; on a new similar
question the earlier answer is shown and 'Gebruik dit antwoord' fills the form; two
near-identical questions filed close together show as a group, answered once, and both
KCC-medewerkers see the answer at their desk; a group taken apart. axe-core on every state."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import api, evidence, tab_to

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import BrowserContext, Page

    from tests.browser.conftest import Axe, DevServer, Screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

# What `kcc dev` prints per demo user: role, user id and API token.
BANK_ANSWER = (
    "Is de bank niet opgehaald terwijl er een afspraak was? Dan halen we hem binnen twee "
    "werkdagen alsnog op; de inwoner hoeft niets opnieuw aan te melden."
)


def file_question(server: DevServer, agent: str, question: str) -> str:
    """A KCC-medewerker files a question through the intake API (as a desk client does)."""
    tokens = server.tokens
    filed = api(
        server,
        tokens[agent],
        "/api/v1/requests",
        {"question": question, "channel": "phone", "priority": "normal"},
    )
    return str(filed["id"])


def desk_answer(server: DevServer, agent: str, request_id: str) -> str | None:
    tokens = server.tokens
    found = api(server, tokens[agent], f"/api/v1/requests/{request_id}")
    return found.get("answer") if found["status"] == "answered" else None


def open_item(page: Page, server: DevServer, marker: str) -> None:
    """From the inbox to the question whose text holds `marker` (it arrives live)."""
    page.goto(server.login_links["staff-femke"])
    link = page.get_by_role("link", name=re.compile(marker)).first
    link.wait_for(timeout=30_000)
    link.click()


def test_reusable_answers_similar_questions_and_groups_in_the_inbox(
    chromium: Path,
    dev_server: DevServer,
    browser: BrowserContext,
    screenshots: Screenshots,
    axe: Axe,
    wait_for: Callable[..., None],
) -> None:
    from playwright.sync_api import expect

    marker = uuid.uuid4().hex[:6]
    staff = browser.new_page()
    pages = {"staff": staff}
    with evidence(screenshots, pages, dev_server):
        # 1. Answer with 'Herbruikbaar' (keyboard only), later withdraw it.
        first = file_question(
            dev_server,
            "agent-anna",
            f"Grofvuil {marker}: afspraak gemaakt maar de bank is niet opgehaald.",
        )
        open_item(staff, dev_server, f"Grofvuil {marker}")
        staff.get_by_role("button", name="Oppakken").click()
        tab_to(staff, lambda e: e["tag"] == "A" and e["text"] == "Antwoord schrijven")
        staff.keyboard.press("Enter")
        expect(staff.get_by_label("Antwoord voor het KCC")).to_be_focused()
        staff.keyboard.type(BANK_ANSWER)
        staff.keyboard.press("Tab")
        expect(staff.get_by_label("Herbruikbaar")).to_be_focused()
        expect(staff.get_by_label("Herbruikbaar")).not_to_be_checked()  # off by default
        expect(staff.get_by_text("nooit over één inwoner")).to_be_visible()
        staff.keyboard.press("Space")
        expect(staff.get_by_label("Herbruikbaar")).to_be_checked()
        screenshots.take(staff, "antwoord-herbruikbaar")
        axe.check(staff, "antwoord-herbruikbaar")
        staff.keyboard.press("Tab")
        expect(staff.get_by_role("button", name="Antwoord versturen")).to_be_focused()
        staff.keyboard.press("Enter")
        expect(staff.get_by_text("Je antwoord is verstuurd naar het KCC.")).to_be_visible()
        reuse = staff.locator("#hergebruik")
        expect(reuse).to_contain_text("Herbruikbaar: KCC-medewerkers krijgen dit antwoord")
        screenshots.take(staff, "beantwoord-herbruikbaar")
        axe.check(staff, "beantwoord-herbruikbaar")
        reuse.get_by_role("button", name="Niet meer herbruikbaar").click()
        expect(staff.get_by_text("Het antwoord is teruggetrokken")).to_be_visible()
        expect(staff.locator("#hergebruik")).to_contain_text("Niet herbruikbaar")
        expect(staff.get_by_role("button", name="Herbruikbaar maken")).to_be_visible()
        screenshots.take(staff, "herbruikbaar-ingetrokken")
        axe.check(staff, "herbruikbaar-ingetrokken")

        # 2. A new similar question: the earlier answer is there to reuse.
        file_question(
            dev_server,
            "agent-bram",
            f"Bank {marker} bij het grofvuil is niet meegenomen, terwijl de afspraak stond.",
        )
        open_item(staff, dev_server, f"Bank {marker}")
        earlier = staff.locator("#eerdere-antwoorden")
        expect(earlier).to_contain_text(BANK_ANSWER)
        expect(earlier).to_contain_text("Afvalinzameling")
        expect(earlier).to_contain_text("door jou")
        staff.get_by_role("button", name="Oppakken").click()
        staff.get_by_role("link", name="Antwoord schrijven").click()
        staff.evaluate("window.kccZelfdePagina = true")
        staff.locator("#eerdere-antwoorden").get_by_role(
            "link", name=re.compile("Gebruik dit antwoord")
        ).first.click()
        answer = staff.get_by_label("Antwoord voor het KCC")
        expect(answer).to_have_value(BANK_ANSWER)
        expect(answer).to_be_focused()
        assert staff.evaluate("window.kccZelfdePagina") is True, "copied without a reload"
        screenshots.take(staff, "gebruik-dit-antwoord")
        axe.check(staff, "gebruik-dit-antwoord")
        answer.press("End")
        answer.type(" Excuses voor het ongemak.")
        staff.get_by_role("button", name="Antwoord versturen").click()
        expect(staff.get_by_text("Je antwoord is verstuurd naar het KCC.")).to_be_visible()

        # 3. Two near-identical questions filed close together: one group, answered once.
        street = f"Berkenhof{marker}"
        anna_q = file_question(
            dev_server,
            "agent-anna",
            f"Ondergrondse container {street} gaat niet open, het pasje werkt niet",
        )
        bram_q = file_question(
            dev_server,
            "agent-bram",
            f"Storing ondergrondse container {street}, pasje werkt niet",
        )
        staff.goto(dev_server.login_links["staff-femke"])
        rows = staff.locator("tr", has_text=street)
        expect(rows).to_have_count(2, timeout=30_000)
        expect(rows.first).to_contain_text("2 vergelijkbare vragen")
        expect(rows.nth(1)).to_contain_text("Vergelijkbaar met de vraag hierboven")
        screenshots.take(staff, "inbox-groep")
        axe.check(staff, "inbox-groep")
        rows.first.get_by_role("link", name=re.compile(street)).click()
        expect(staff.locator("#groep")).to_contain_text("2 vergelijkbare vragen")
        staff.get_by_role("button", name="Oppakken").click()
        staff.get_by_role("link", name="Antwoord schrijven").click()
        together = staff.get_by_role("group", name=re.compile("Ook beantwoorden"))
        expect(together.get_by_role("checkbox")).to_be_checked()
        staff.get_by_label("Antwoord voor het KCC").fill(
            "De storing aan de container is gemeld; de monteur komt vandaag."
        )
        screenshots.take(staff, "groep-antwoorden")
        axe.check(staff, "groep-antwoorden")
        staff.get_by_role("button", name="Antwoord versturen").click()
        expect(staff.get_by_text("voor 2 vragen")).to_be_visible()
        axe.check(staff, "groep-beantwoord")

        def both_answered() -> bool:
            return all(
                desk_answer(dev_server, agent, request_id) is not None
                for agent, request_id in (("agent-anna", anna_q), ("agent-bram", bram_q))
            )

        wait_for(both_answered, timeout=30, interval=0.3)
        desk = browser.new_page()
        pages["desk"] = desk
        desk.goto(dev_server.login_links["agent-bram"])
        desk.goto(f"{dev_server.base}/balie/vragen/{bram_q}")
        expect(desk.locator("#antwoord + .antwoord")).to_have_text(
            "De storing aan de container is gemeld; de monteur komt vandaag."
        )
        screenshots.take(desk, "balie-groepsantwoord")
        axe.check(desk, "balie-groepsantwoord")

        # 4. A group is a suggestion: 'Niet samenvoegen' takes a question out.
        lane = f"Dorpsstraat{marker}"
        file_question(
            dev_server,
            "agent-anna",
            f"De straatverlichting in de {lane} is uit, alle lampen doen het niet",
        )
        file_question(
            dev_server, "agent-bram", f"Straatverlichting {lane} doet het niet, hele straat donker"
        )
        staff.goto(dev_server.login_links["staff-femke"])
        rows = staff.locator("tr", has_text=lane)
        expect(rows).to_have_count(2, timeout=30_000)
        expect(rows.first).to_contain_text("2 vergelijkbare vragen")
        rows.first.get_by_role("link", name=re.compile(lane)).click()
        group = staff.locator("#groep")
        group.get_by_role("button", name=re.compile("^Niet samenvoegen")).click()
        expect(staff.get_by_text("De vraag staat weer los")).to_be_visible()
        expect(staff.locator("#groep")).to_have_count(0)
        screenshots.take(staff, "groep-losgemaakt")
        axe.check(staff, "groep-losgemaakt")
        staff.goto(dev_server.login_links["staff-femke"])
        expect(staff.locator("tr", has_text=lane)).to_have_count(2)
        expect(staff.locator("tr", has_text=lane).first).not_to_contain_text("vergelijkbare")
        assert first
