"""The inbox as staff use it daily: all their departments in one view with counts and a switcher,
quick filters on SLA state, deadlines in words, markers for what is new, the thanks reaching the
person who answered, the sent view, and one action form at a time."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kcc_shared.api import TOKENS_EXTENSION


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def login(client: FlaskClient, token: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"token": token, "csrf_token": csrf_of(page)})
    assert response.status_code == 302


@pytest.fixture
def eva(app: Flask) -> str:
    """staff-eva works for two departments (burgerzaken and belastingen)."""
    token, _ = app.extensions[TOKENS_EXTENSION].create(
        role="staff", user_id="staff-eva", departments=["burgerzaken", "belastingen"]
    )
    return str(token)


def _item(deliver: Any, make: Any, department: str = "burgerzaken", **routed: Any) -> str:
    request_id = str(uuid.uuid4())
    question = f"Vraag {request_id[:8]} voor {department}"
    deliver(
        make.submitted(request_id, question=question), make.routed(request_id, department, **routed)
    )
    return request_id


def _page(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def _claim(client: FlaskClient, request_id: str) -> None:
    csrf = csrf_of(_page(client, f"/items/{request_id}"))
    response = client.post(f"/items/{request_id}/claim", data={"csrf_token": csrf})
    assert response.status_code == 303


def _answer(client: FlaskClient, request_id: str, text: str = "Zo werkt het.") -> None:
    csrf = csrf_of(_page(client, f"/items/{request_id}"))
    response = client.post(f"/items/{request_id}/answer", data={"csrf_token": csrf, "tekst": text})
    assert response.status_code == 303


def test_all_my_departments_in_one_view_with_counts_and_a_switcher(
    client: FlaskClient, eva: str, deliver: Any, make: Any
) -> None:
    ours = _item(deliver, make, "burgerzaken")
    taxes = _item(deliver, make, "belastingen")
    other = _item(deliver, make, "afval")
    login(client, eva)
    page = _page(client, "/inbox")
    assert "Mijn inbox" in page
    assert ours[:8] in page
    assert taxes[:8] in page
    assert other[:8] not in page  # not one of hers
    # Department names, never ids, with counts, in the switcher.
    switcher = page[page.index('aria-label="Afdelingen"') : page.index('aria-label="Snelfilters"')]
    assert "Alle afdelingen" in switcher
    assert "2 open" in switcher
    assert "Belastingen en WOZ" in switcher
    assert "Burgerzaken" in switcher
    assert switcher.count("1 open") == 2
    assert 'href="/inbox/belastingen"' in switcher
    assert ">belastingen<" not in page

    one = _page(client, "/inbox/belastingen")
    assert "Inbox Belastingen en WOZ" in one
    assert taxes[:8] in one
    assert ours[:8] not in one
    assert re.search(r'href="/inbox/belastingen" aria-current="page"', one)


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/inbox/afval", 403, "Je werkt niet voor deze afdeling"),
        ("/inbox/bestaat-niet", 404, "Er is geen afdeling met deze naam"),
        ("/inbox?filter=morgen", 400, "Het filter &#39;morgen&#39; bestaat niet"),
        ("/inbox/burgerzaken?filter=", 200, "Inbox Burgerzaken"),
        ("/inbox/burgerzaken?state=forwarded", 400, "Dit filter kent de inbox niet"),
        ("/inbox/burgerzaken?state=zomaar", 400, "Dit filter kent de inbox niet"),
        ("/inbox/burgerzaken?priority=heel-hoog", 400, "Dit filter kent de inbox niet"),
    ],
)
def test_bad_switcher_and_filter_values_are_explained_and_change_nothing(
    client: FlaskClient,
    eva: str,
    deliver: Any,
    make: Any,
    outbox_count: Any,
    path: str,
    status: int,
    words: str,
) -> None:
    _item(deliver, make, "afval")
    login(client, eva)
    response = client.get(path)
    assert response.status_code == status
    text = response.get_data(as_text=True)
    assert words in text
    if status != 200:
        assert 'role="alert"' in text
    assert outbox_count() == 0


def test_deadlines_say_what_they_are_with_business_time_left(
    client: FlaskClient, eva: str, deliver: Any, make: Any, clock: Any
) -> None:
    # Tuesday 10:00; the first response is due at 14:00 (4 business hours), resolution Thursday.
    request_id = _item(deliver, make, "burgerzaken")
    login(client, eva)
    page = _page(client, "/inbox/burgerzaken")
    assert "Eerste reactie uiterlijk vandaag vóór 14:00" in page
    assert "nog 4 werkuur" in page
    assert "Op tijd" in page

    clock.advance(hours=3, minutes=30)
    page = _page(client, "/inbox/burgerzaken")
    assert "Bijna te laat" in page
    assert "nog 30 werkminuten" in page
    assert 'class="label label-warning"' in page

    clock.advance(hours=1, minutes=30)
    page = _page(client, "/inbox/burgerzaken")
    assert "1 werkuur te laat" in page
    assert 'class="label label-overdue">Te laat<' in page

    _claim(client, request_id)
    item = _page(client, f"/items/{request_id}")
    # Claimed: the resolution deadline counts now (24 business hours from routing).
    assert "Afhandelen uiterlijk" in item
    assert "Eerste reactie" not in item


def test_te_laat_and_bijna_te_laat_are_quick_filters_with_counts(
    client: FlaskClient, eva: str, deliver: Any, make: Any, clock: Any
) -> None:
    late = _item(deliver, make, first_response_due=make.now + timedelta(hours=1))
    soon = _item(deliver, make, first_response_due=make.now + timedelta(hours=3, minutes=45))
    fine = _item(deliver, make, first_response_due=make.now + timedelta(hours=6))
    clock.advance(hours=3)
    login(client, eva)
    page = _page(client, "/inbox/burgerzaken")
    assert "Te laat (1)" in page
    assert "Bijna te laat (1)" in page
    assert "Alles (3)" in page
    # Links that look like buttons (WCAG 2.2 target size), not small checkboxes.
    assert 'id="te-laat"' not in page
    assert 'id="mijn"' not in page
    overdue = _page(client, "/inbox/burgerzaken?filter=te-laat")
    assert late[:8] in overdue
    assert soon[:8] not in overdue
    assert fine[:8] not in overdue
    assert 'href="/inbox/burgerzaken?filter=te-laat" aria-current="page"' in overdue
    warning = _page(client, "/inbox?filter=bijna-te-laat")
    assert soon[:8] in warning
    assert late[:8] not in warning
    assert fine[:8] not in warning


def test_markers_new_new_information_and_reopened_offered_to_who_answered(
    app: Flask, client: FlaskClient, eva: str, colleague_token: str, deliver: Any, make: Any
) -> None:
    request_id = _item(deliver, make)
    login(client, eva)
    assert 'class="marker marker-nieuw">nieuw<' in _page(client, "/inbox/burgerzaken")
    _claim(client, request_id)
    assert 'class="marker marker-nieuw"' not in _page(client, "/inbox/burgerzaken")

    csrf = csrf_of(_page(client, f"/items/{request_id}"))
    client.post(
        f"/items/{request_id}/verduidelijking", data={"csrf_token": csrf, "tekst": "Welk adres?"}
    )
    deliver(make.agent_event("request.clarified", request_id, text="Dorpsstraat 1"))
    page = _page(client, "/inbox")
    assert ">nieuwe informatie<" in page
    assert "Het KCC heeft je verduidelijkingsvraag beantwoord" in _page(
        client, f"/items/{request_id}"
    )

    _answer(client, request_id)
    deliver(
        make.agent_event(
            "request.rated", request_id, score=1, thanks=False, comment="Klopt niet", at=make.now
        ),
        make.agent_event("request.reopened", request_id, reason="Klopt niet", at=make.now),
    )
    mine = _page(client, "/inbox")
    work = mine[mine.index("Mijn werk (") : mine.index("Wachtrij (")]
    assert request_id[:8] in work  # offered first to the person who answered
    assert ">heropend<" in work
    assert "Jij beantwoordde deze eerder" in work

    # A colleague sees it reopened in the queue, and who answered before.
    other = app.test_client()
    login(other, colleague_token)
    theirs = _page(other, "/inbox/burgerzaken")
    queue = theirs[theirs.index("Wachtrij (") :]
    assert request_id[:8] in queue
    assert "Eerder beantwoord door staff-eva" in queue


def test_the_thanks_reach_the_person_who_answered_and_the_department(
    app: Flask, client: FlaskClient, eva: str, colleague_token: str, deliver: Any, make: Any
) -> None:
    request_id = _item(deliver, make)
    login(client, eva)
    assert "Nog geen beoordelingen van het KCC op jouw antwoorden" in _page(client, "/inbox")
    _claim(client, request_id)
    _answer(client, request_id)
    deliver(
        make.agent_event(
            "request.rated",
            request_id,
            score=5,
            thanks=True,
            comment="Snel en duidelijk, dank!",
            at=make.now + timedelta(minutes=5),
        )
    )
    page = _page(client, "/inbox")
    thanks = page[page.index("Voor jouw antwoorden") : page.index("Voor je afdelingen")]
    assert "5 van 5</strong>, met dank" in thanks
    assert "Snel en duidelijk, dank!" in thanks
    item = _page(client, f"/items/{request_id}")
    assert "Beoordeling door het KCC" in item
    assert "voor het antwoord van jou" in item
    assert "Snel en duidelijk, dank!" in item

    # The department's overview, for a colleague: whose answer it was.
    other = app.test_client()
    login(other, colleague_token)
    department = _page(other, "/inbox/burgerzaken")
    overview = department[department.index("Voor Burgerzaken") :]
    assert "antwoord van staff-eva" in overview
    assert "Gemiddeld 5,0 van 5" in overview
    assert "1 met dank" in overview
    mine = department[
        department.index("Voor jouw antwoorden") : department.index("Voor Burgerzaken")
    ]
    assert "Snel en duidelijk" not in mine  # not colleague's answer


def test_the_sent_view_shows_where_a_forward_went_and_when_it_was_picked_up(
    app: Flask,
    client: FlaskClient,
    eva: str,
    other_staff_token: str,
    deliver: Any,
    make: Any,
    clock: Any,
) -> None:
    request_id = _item(deliver, make)
    login(client, eva)
    assert "Je hebt nog geen vragen doorgestuurd" in _page(client, "/inbox/doorgestuurd")
    # The status filter no longer offers the always-empty "Doorgestuurd".
    assert 'value="forwarded"' not in _page(client, "/inbox/burgerzaken")
    _claim(client, request_id)
    csrf = csrf_of(_page(client, f"/items/{request_id}?actie=doorsturen"))
    response = client.post(
        f"/items/{request_id}/doorsturen",
        data={"csrf_token": csrf, "afdeling": "belastingen", "reden": "Gaat over de WOZ"},
        follow_redirects=True,
    )
    sent = response.get_data(as_text=True)
    assert "De vraag is doorgestuurd." in sent
    assert "Doorgestuurd naar Belastingen en WOZ om vandaag 10:00, nog niet aangekomen" in sent

    deliver(make.routed(request_id, "belastingen", handoff_count=1, from_department="burgerzaken"))
    clock.advance(minutes=26)
    gijs = app.test_client()
    login(gijs, other_staff_token)
    _claim(gijs, request_id)
    sent = _page(client, "/inbox/doorgestuurd")
    assert "Doorgestuurd naar Belastingen en WOZ om vandaag 10:00." in sent
    assert "Daar opgepakt om vandaag 10:26" in sent
    assert "Gaat over de WOZ" in sent


def test_forwarding_to_a_department_that_does_not_exist_changes_nothing(
    client: FlaskClient, eva: str, item_id: str, outbox_count: Any
) -> None:
    login(client, eva)
    _claim(client, item_id)
    csrf = csrf_of(_page(client, f"/items/{item_id}?actie=doorsturen"))
    page = client.post(
        f"/items/{item_id}/doorsturen",
        data={"csrf_token": csrf, "afdeling": "nergens", "reden": "Weg ermee"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Doorsturen lukt niet: die afdeling bestaat niet." in page
    # Back with the forward form open, the others folded away.
    assert 'id="reden"' in page
    assert 'id="antwoord"' not in page
    assert outbox_count() == 1  # the claim only


def test_one_action_at_a_time_and_an_unknown_action_is_explained(
    client: FlaskClient, eva: str, item_id: str, outbox_count: Any
) -> None:
    login(client, eva)
    waiting = _page(client, f"/items/{item_id}")
    # Not claimed yet: claim, or forward; answering needs a claim first.
    assert "Oppakken" in waiting
    assert "Doorsturen naar een andere afdeling" in waiting
    assert "Antwoord schrijven" not in waiting
    response = client.get(f"/items/{item_id}?actie=verwijderen")
    assert response.status_code == 400
    assert "Deze actie bestaat niet" in response.get_data(as_text=True)
    refused = _page(client, f"/items/{item_id}?actie=antwoorden")
    assert 'id="antwoord"' not in refused
    assert "Dat kan nu niet bij deze vraag" in refused
    assert outbox_count() == 0


def test_operators_see_every_department_and_may_not_act(
    client: FlaskClient, ops_token: str, item_id: str
) -> None:
    login(client, ops_token)
    page = _page(client, "/inbox")
    assert "Afvalinzameling" in page
    assert "Burgerzaken" in page
    assert "Oppakken" not in page
    assert "Mijn werk" not in page
    assert client.get("/inbox/doorgestuurd").status_code == 403


def test_a_refused_action_is_said_in_dutch_with_who_holds_it(
    app: Flask, client: FlaskClient, eva: str, colleague_token: str, item_id: str
) -> None:
    other = app.test_client()
    login(other, colleague_token)
    _claim(other, item_id)
    login(client, eva)
    csrf = csrf_of(_page(client, f"/items/{item_id}"))
    page = client.post(
        f"/items/{item_id}/claim", data={"csrf_token": csrf}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Dat kan nu niet: staff-finn werkt aan deze vraag." in page
    assert "You cannot" not in page
