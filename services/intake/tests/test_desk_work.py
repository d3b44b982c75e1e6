"""The desk's work list: what needs the KCC first (count in the title), the team view with its
filters and search, a teammate answering a clarification, withdrawing with a confirmation,
and the reference and expected answer time on every question. Bad input: a Dutch error,
nothing changed."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from intake.app import create_app
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config

# The tab title's separator, as the pages write it.
DASH = "\N{EN DASH}"
QUESTION = "Mevrouw wil weten of ze kwijtschelding van de afvalstoffenheffing kan krijgen."
ASKED = "Heeft mevrouw een uitkering?"
Deliver = Callable[..., Any]


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


def desk(app: Flask, user: str = "agent-anna", team: str | None = "kcc-noord") -> Any:
    """A logged-in browser of a KCC-medewerker: (client, csrf)."""
    client = app.test_client()
    token, _ = app.extensions[TOKENS_EXTENSION].create(role="agent", user_id=user, team=team)
    csrf = csrf_of(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"token": token, "csrf_token": csrf}).status_code == 302
    return client, csrf_of(client.get("/balie").get_data(as_text=True))


def file(client: FlaskClient, csrf: str, question: str = QUESTION, **extra: str) -> str:
    filed = client.post("/balie/vragen", data={"csrf_token": csrf, "question": question, **extra})
    assert filed.status_code == 302, filed.get_data(as_text=True)
    return str(filed.headers["Location"]).rsplit("/", 1)[1]


def asked(deliver: Deliver, routed_data: Callable[..., dict[str, Any]], request_id: str) -> None:
    deliver(request_id, "routed", **routed_data("belastingen"))
    deliver(request_id, "claimed", department="belastingen", staff_id="staff-eva")
    deliver(request_id, "clarification_requested", department="belastingen", text=ASKED)


def title(page: str) -> str:
    match = re.search(r"<title>(.*?)</title>", page, re.S)
    assert match
    return match.group(1)


def section(page: str, id_: str) -> str:
    match = re.search(rf'<section id="{id_}".*?</section>', page, re.S)
    return match.group(0) if match else ""


def visible_text(page: str) -> str:
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"<[^>]+>", " ", page)


def test_questions_waiting_for_the_kcc_come_first_with_a_count_in_the_title(
    app: Flask, deliver: Deliver, routed_data: Callable[..., dict[str, Any]]
) -> None:
    client, csrf = desk(app)
    waiting = file(client, csrf)
    other = file(client, csrf, "Een tweede vraag: wanneer wordt het oud papier opgehaald?")
    page = client.get("/balie").get_data(as_text=True)
    assert title(page) == f"Balie {DASH} KCC kennisvragen"
    asked(deliver, routed_data, waiting)

    page = client.get("/balie").get_data(as_text=True)
    assert title(page) == f"(1) Balie {DASH} KCC kennisvragen"
    group = section(page, "actie")
    assert waiting in group
    assert other not in group
    assert 'data-action-count="1"' in page  # what the page's script compares live
    listed = section(page, "lijst")
    assert other in listed
    assert waiting not in listed
    # Every desk page carries the count and the way to a new question.
    detail = client.get(f"/balie/vragen/{other}").get_data(as_text=True)
    assert title(detail).startswith("(1) Vraag KV-")
    assert 'href="/balie/nieuw"' in detail
    # "Actie nodig" as a filter shows the group alone.
    only = client.get("/balie?status=actie").get_data(as_text=True)
    assert waiting in section(only, "actie")
    assert section(only, "lijst") == ""


def test_every_question_shows_its_reference_channel_and_expected_answer(
    app: Flask, deliver: Deliver, routed_data: Callable[..., dict[str, Any]]
) -> None:
    client, csrf = desk(app)
    request_id = file(client, csrf, channel="email")
    filed = client.get(f"/balie/vragen/{request_id}").get_data(as_text=True)
    assert re.search(r"Vraag <span class=\"kenmerk\">KV-\d{4}-000001</span>", filed)
    assert "Nog niet bekend" in filed
    deliver(request_id, "routed", **routed_data("belastingen"))
    page = client.get(f"/balie/vragen/{request_id}").get_data(as_text=True)
    assert re.search(r'id="verwacht">(Uiterlijk|Te laat)', page)
    assert "E-mail" in page
    assert "Belastingen en WOZ" in page
    assert ">belastingen<" not in page
    listed = section(client.get("/balie").get_data(as_text=True), "lijst")
    assert "KV-" in listed
    assert "E-mail" in listed
    assert re.search(r'class="verwacht-(on_time|late)">(Uiterlijk|Te laat)', listed)


def test_the_team_view_shows_the_teams_questions_and_a_teammate_answers_for_a_colleague(
    app: Flask, deliver: Deliver, routed_data: Callable[..., dict[str, Any]]
) -> None:
    anna, anna_csrf = desk(app)
    request_id = file(anna, anna_csrf)
    asked(deliver, routed_data, request_id)
    bram, bram_csrf = desk(app, "agent-bram")
    chris, _ = desk(app, "agent-chris", "kcc-zuid")

    assert request_id not in bram.get("/balie").get_data(as_text=True)  # not his own
    team = bram.get("/balie?weergave=team").get_data(as_text=True)
    assert "Vragen van team kcc-noord" in team
    assert request_id in section(team, "actie")
    assert "gesteld door agent-anna" in team
    assert request_id not in chris.get("/balie?weergave=team").get_data(as_text=True)
    assert chris.get(f"/balie/vragen/{request_id}").status_code == 404

    page = bram.get(f"/balie/vragen/{request_id}").get_data(as_text=True)
    assert "Je antwoordt namens agent-anna" in page
    answered = bram.post(
        f"/balie/vragen/{request_id}/verduidelijking",
        data={"csrf_token": bram_csrf, "text": "Ja, bijstand."},
    )
    assert answered.status_code == 303
    page = bram.get(f"/balie/vragen/{request_id}").get_data(as_text=True)
    assert "Je antwoord is naar de afdeling gestuurd." in page
    assert "door agent-bram (namens agent-anna)" in page
    assert title(anna.get("/balie").get_data(as_text=True)) == f"Balie {DASH} KCC kennisvragen"
    # Someone of another team cannot answer it (and learns nothing).
    assert (
        chris.post(
            f"/balie/vragen/{request_id}/verduidelijking",
            data={"csrf_token": csrf_of(chris.get("/balie").get_data(as_text=True)), "text": "Ja"},
        ).status_code
        == 404
    )


def test_search_by_text_reference_or_citizen_reference(app: Flask) -> None:
    client, csrf = desk(app)
    first = file(client, csrf, citizen_ref="K-77812")
    second = file(client, csrf, "Wanneer komt de vuilniswagen weer langs in de Dorpsstraat?")
    page = client.get(f"/balie/vragen/{first}").get_data(as_text=True)
    reference = re.search(r"KV-\d{4}-\d{6}", page)
    assert reference

    def found(query: str) -> str:
        response = client.get("/balie", query_string={"zoek": query})
        assert response.status_code == 200
        return section(response.get_data(as_text=True), "lijst")

    spoken = reference.group(0).lower().replace("-", " ")
    for query in (reference.group(0), spoken, "KWIJTSCHELDING", "k-778"):
        hits = found(query)
        assert first in hits, query
        assert second not in hits, query
    assert second in found("dorpsstraat")
    assert first not in found("dorpsstraat")
    quoted = "\N{LEFT SINGLE QUOTATION MARK}bestaat niet\N{RIGHT SINGLE QUOTATION MARK}"
    assert f"Geen vragen gevonden voor {quoted}" in found("bestaat niet")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"weergave": "iedereen"}, "Kies Mijn vragen of Vragen van mijn team."),
        ({"status": "wachtend"}, "Kies een status uit de lijst."),
        ({"zoek": "KV-20-1"}, "Dit is geen volledig kenmerk. Een kenmerk ziet eruit als"),
        ({"zoek": "x"}, "Zoek met minstens 2 tekens."),
        ({"zoek": "a" * 201}, "Zoek met hoogstens 200 tekens."),
    ],
)
def test_bad_filters_get_a_dutch_error_summary(
    app: Flask, query: dict[str, str], message: str
) -> None:
    client, csrf = desk(app)
    file(client, csrf)
    response = client.get("/balie", query_string=query)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert 'id="foutoverzicht"' in page
    assert message in page
    assert title(page).startswith("Fout: ")
    assert section(page, "lijst") == ""


def test_the_team_view_without_a_team_is_refused(app: Flask) -> None:
    client, _ = desk(app, "agent-solo", None)
    response = client.get("/balie?weergave=team")
    assert response.status_code == 400
    assert "Je hoort niet bij een team" in response.get_data(as_text=True)


def test_a_refused_question_gets_an_error_summary_linking_to_the_field(app: Flask) -> None:
    client, csrf = desk(app)
    response = client.post(
        "/balie/vragen", data={"csrf_token": csrf, "question": "kort", "priority": "morgen"}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert title(page) == f"Fout: Nieuwe vraag {DASH} KCC kennisvragen"
    summary = re.search(r'<div class="foutoverzicht".*?</div>', page, re.S)
    assert summary
    assert "autofocus" in summary.group(0)
    assert '<a href="#question">Beschrijf de vraag' in summary.group(0)
    assert '<a href="#priority">Kies een prioriteit' in summary.group(0)
    assert 'aria-invalid="true"' in page
    assert "Je hebt nog geen vragen gesteld." in client.get("/balie").get_data(as_text=True)


def test_withdrawing_asks_for_confirmation_first(
    app: Flask, row_counts: Callable[[], dict[str, int]]
) -> None:
    client, csrf = desk(app)
    request_id = file(client, csrf)
    url = f"/balie/vragen/{request_id}/intrekken"
    assert url in client.get(f"/balie/vragen/{request_id}").get_data(as_text=True)
    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "intrekken?" in confirm.get_data(as_text=True)

    before = row_counts()
    refused = client.post(url, data={"csrf_token": csrf, "reden": "Inwoner al geholpen"})
    assert refused.status_code == 400
    assert "er is niets ingetrokken" in refused.get_data(as_text=True)
    assert row_counts() == before
    assert "Bij de afdeling" in client.get(f"/balie/vragen/{request_id}").get_data(
        as_text=True
    ) or "Ingediend" in client.get(f"/balie/vragen/{request_id}").get_data(as_text=True)

    # A teammate may read it but not withdraw it.
    bram, bram_csrf = desk(app, "agent-bram")
    assert "Alleen de KCC-medewerker die de vraag stelde" in bram.get(url).get_data(as_text=True)
    bram.post(url, data={"csrf_token": bram_csrf, "bevestigd": "ja"})
    assert row_counts() == before

    done = client.post(
        url, data={"csrf_token": csrf, "bevestigd": "ja", "reden": "Inwoner al geholpen"}
    )
    assert done.status_code == 303
    page = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Je vraag is ingetrokken" in page
    assert "Ingetrokken vandaag" in page
    assert "Reden: Inwoner al geholpen" in page


def test_the_pages_say_kcc_medewerker_never_agent(
    app: Flask, deliver: Deliver, routed_data: Callable[..., dict[str, Any]]
) -> None:
    client, csrf = desk(app)
    request_id = file(client, csrf)
    asked(deliver, routed_data, request_id)
    pages = [
        client.get(path).get_data(as_text=True)
        for path in (
            "/balie",
            "/balie?weergave=team",
            "/balie/nieuw",
            f"/balie/vragen/{request_id}",
            f"/balie/vragen/{request_id}/intrekken",
        )
    ]
    for page in pages:
        words = visible_text(page).replace("agent-anna", "")
        assert not re.search(r"\bagent", words, re.I), words
