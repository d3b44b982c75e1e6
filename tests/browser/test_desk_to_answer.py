"""The feedback loop as people see it, in a real browser against a running `kcc dev`: an agent
files a question at the desk, a staff member answers it in the department inbox, the agent sees
the answer appear without reloading and rates it, and the SLA overview counts it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import evidence

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import BrowserContext

    from tests.browser.conftest import Axe, DevServer, Screenshots

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

ANSWER = (
    "De ophaalploeg komt morgen voor 12 uur langs; de bank mag blijven staan. "
    "Excuses voor het ongemak."
)


def test_question_from_desk_to_answer_rating_and_sla_overview(
    chromium: Path,  # first: without a browser no server is started
    dev_server: DevServer,
    browser: BrowserContext,
    screenshots: Screenshots,
    axe: Axe,
    wait_for: Callable[..., None],
) -> None:
    # Imported here: without playwright the fixtures skip (or fail in CI) with a clear reason.
    from playwright.sync_api import expect

    base = dev_server.base
    # A word no other question has: this run's question is found among any others.
    marker = uuid.uuid4().hex[:8]
    # The marker first: the inbox shows only the start of a question.
    question = (
        f"{marker}: grofvuil afspraak gemaakt maar de bank is niet opgehaald en staat nog buiten."
    )
    agent = browser.new_page()
    staff = browser.new_page()
    pages = {"agent": agent, "staff": staff}

    with evidence(screenshots, pages, dev_server):
        # The agent starts on the start page and logs in with the demo login link there.
        agent.goto(f"{base}/")
        expect(agent.get_by_role("heading", name="KCC kennisvragen")).to_be_visible()
        screenshots.take(agent, "startpagina")
        axe.check(agent, "startpagina")
        agent.get_by_role("link", name="inloggen als agent-anna").click()
        expect(agent).to_have_url(f"{base}/balie")
        expect(agent.get_by_text("Ingelogd als agent-anna")).to_be_visible()
        screenshots.take(agent, "balie")
        axe.check(agent, "balie")

        # "Nieuwe vraag" at the top of every desk page: the form is one step away.
        agent.get_by_role("link", name="Nieuwe vraag", exact=True).click()
        agent.get_by_label("Vraag van de inwoner").fill(question)
        agent.get_by_label("Prioriteit").select_option(label="Hoog")
        agent.get_by_role("button", name="Vraag versturen").click()
        expect(agent.get_by_text("Je vraag is verstuurd")).to_be_visible()
        expect(agent.locator("p.vraag")).to_have_text(question)
        request_url = agent.url
        assert re.fullmatch(rf"{base}/balie/vragen/[0-9a-f-]{{36}}", request_url)
        # The routing arrives live too; the page says where the question went.
        expect(agent.get_by_text("Afvalinzameling").first).to_be_visible()
        screenshots.take(agent, "vraag-verstuurd")
        axe.check(agent, "vraag-verstuurd")
        # Set on this page only: still there later means the page was never reloaded.
        agent.evaluate("window.kccZelfdePagina = true")

        # The staff member of the afval department logs in with the printed link.
        staff.goto(dev_server.login_links["staff-femke"])
        expect(staff.get_by_text("Ingelogd als staff-femke")).to_be_visible()
        # All her departments in one view; the switcher goes to one of them.
        expect(staff.get_by_role("heading", name="Mijn inbox")).to_be_visible()
        staff.get_by_role("navigation", name="Afdelingen").get_by_role(
            "link", name=re.compile("^Afvalinzameling")
        ).click()
        expect(staff.get_by_role("heading", name="Inbox Afvalinzameling")).to_be_visible()
        staff.evaluate("window.kccZelfdePagina = true")
        in_inbox = staff.get_by_role("link", name=re.compile(marker))
        # The question arrives by the live stream (or was routed already): never a reload.
        expect(in_inbox).to_have_count(1, timeout=60_000)
        row = staff.locator("tr", has=in_inbox)
        expect(row.locator(".marker")).to_have_text("nieuw")
        expect(row).to_contain_text(re.compile(r"Eerste reactie uiterlijk .* vóór \d\d:\d\d"))
        assert staff.evaluate("window.kccZelfdePagina") is True, "the inbox was reloaded"
        screenshots.take(staff, "inbox")
        axe.check(staff, "inbox")
        in_inbox.click()
        expect(staff.get_by_role("heading", name="Vraag van het KCC")).to_be_visible()
        expect(staff.locator("blockquote")).to_contain_text(marker)
        # Why it landed here, in Dutch: the rule's words, and whether the model agreed.
        expect(staff.get_by_role("heading", name="Waarom bij ons")).to_be_visible()
        expect(
            staff.get_by_text(re.compile("^Regel voor Afvalinzameling: de vraag noemt")).first
        ).to_be_visible()
        staff.get_by_role("button", name="Oppakken").click()
        expect(staff.get_by_text("Je hebt de vraag opgepakt.")).to_be_visible()
        # One action at a time: choose to answer, then only the answer form is there.
        staff.get_by_role("link", name="Antwoord schrijven").click()
        staff.get_by_label("Antwoord voor het KCC").fill(ANSWER)
        screenshots.take(staff, "antwoord-schrijven")
        axe.check(staff, "antwoord-schrijven")
        staff.get_by_role("button", name="Antwoord versturen").click()
        expect(staff.get_by_text("Je antwoord is verstuurd naar het KCC.")).to_be_visible()
        screenshots.take(staff, "antwoord-verstuurd")

        # The agent's page shows the answer and the rating form by itself.
        agent.bring_to_front()
        expect(agent.locator("#antwoord + .antwoord")).to_have_text(ANSWER, timeout=30_000)
        expect(agent.locator("[data-status-of]").first).to_have_text("Beantwoord")
        assert agent.evaluate("window.kccZelfdePagina") is True, "the page was reloaded"
        assert agent.url == request_url
        screenshots.take(agent, "antwoord-op-de-balie")
        axe.check(agent, "antwoord-op-de-balie")

        agent.get_by_label("5", exact=True).check()
        agent.get_by_label("Bedank de afdeling").check()
        agent.get_by_label("Toelichting (optioneel)").fill("Snel en duidelijk, dank!")
        agent.get_by_role("button", name="Beoordeling versturen").click()
        expect(agent.get_by_text("Dank voor je beoordeling en je bedankje!")).to_be_visible()
        expect(agent.get_by_text("Cijfer 5, met dank")).to_be_visible()
        # The desk says why the question went to this department, never a raw code.
        expect(agent.get_by_text("Waarom deze afdeling")).to_be_visible()
        expect(
            agent.get_by_text(re.compile("^Regel voor Afvalinzameling: de vraag noemt")).first
        ).to_be_visible()
        screenshots.take(agent, "beoordeeld")
        axe.check(agent, "beoordeeld")

        # The SLA overview (staff-femke's login link logged her in there too) counts the
        # rated request for the afval department.
        sla = browser.new_page()
        pages["sla"] = sla
        sla.goto(f"{base}/sla-monitor/sla")
        expect(sla.get_by_role("heading", name="SLA-overzicht per afdeling")).to_be_visible()
        row = sla.locator("#afdelingen tbody tr").filter(
            has=sla.get_by_role("rowheader", name="Afvalinzameling")
        )
        # After the department's name (the row header): verdict, first response, resolution,
        # late, at risk, open, oldest, two medians, forwarded, average rating, thanks.
        cells = row.locator("td")

        def rated() -> bool:
            # The overview is rendered per request (it refreshes itself once a minute).
            done = cells.nth(10).inner_text() == "5,0" and cells.nth(11).inner_text() == "1"
            if not done:
                sla.reload()
            return done

        wait_for(rated, timeout=60, interval=0.5)
        # Answered within the norm: first response and resolution both at 100 %, said in words.
        expect(cells.nth(1).locator(".cijfer")).to_have_text("100,0 %")
        expect(cells.nth(2).locator(".cijfer")).to_have_text("100,0 %")
        expect(cells.nth(0)).to_have_text("Binnen norm")
        expect(cells.nth(3)).to_have_text("0")  # nothing late
        screenshots.take(sla, "sla-overzicht")
        axe.check(sla, "sla-overzicht")
