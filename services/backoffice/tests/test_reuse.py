"""Answered once, reused everywhere (the department's side): the 'Herbruikbaar' tick and
withdrawing it, similar earlier answered questions to copy, 'Je antwoord hielp', and groups of
near-identical questions answered once or taken apart."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from backoffice.similar import EarlierAnswers
from backoffice.store import InboxStore
from flask import Flask
from flask.testing import FlaskClient
from kcc_shared.auth import Principal
from kcc_shared.events import Actor, Event, new_event, parse_event
from kcc_shared.similarity import answered_text, meaning
from werkzeug.test import TestResponse

Rows = Callable[[], list[tuple[str, str]]]

PASPOORT = "Mijn paspoort is verlopen, hoe vraag ik een nieuw paspoort aan?"
PASPOORT_ANSWER = (
    "Een nieuw paspoort vraagt u aan aan de balie van Burgerzaken, op afspraak. Neem een "
    "pasfoto en het oude paspoort mee; het is na vijf werkdagen klaar."
)
PASPOORT_AGAIN = "Paspoort verlopen, hoe kan ik een nieuw paspoort aanvragen?"
LAMPEN = "De straatverlichting in de Dorpsstraat is uit, alle lampen doen het niet"
LAMPEN_AGAIN = "Straatverlichting Dorpsstraat doet het niet, hele straat donker"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def js(response: TestResponse) -> Any:
    body = response.get_json()
    assert body is not None, "no JSON body"
    return body


def post(client: FlaskClient, token: str, path: str, body: Any = None) -> TestResponse:
    return client.post(f"/api/v1/items/{path}", json=body, headers=auth(token))


_arrivals = itertools.count()


def arrive(deliver: Any, make: Any, question: str, department: str = "burgerzaken") -> str:
    """A question routed to `department`, a second after the one before."""
    request_id = str(uuid.uuid4())
    routed = make.routed(request_id, department)
    deliver(
        make.submitted(request_id, question=question),
        replace(routed, occurred_at=routed.occurred_at + timedelta(seconds=next(_arrivals))),
    )
    return request_id


def answer(
    client: FlaskClient, token: str, request_id: str, text: str, **extra: Any
) -> TestResponse:
    assert post(client, token, f"{request_id}/claim").status_code == 200
    return post(client, token, f"{request_id}/answer", {"text": text, **extra})


def events(rows: Rows) -> list[Event]:
    return [parse_event(body) for _, body in rows()]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def login(client: FlaskClient, token: str) -> str:
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"token": token, "csrf_token": csrf_of(page), "next": "/inbox"})
    return csrf_of(client.get("/inbox").get_data(as_text=True))


def reused(request_id: str, department: str = "burgerzaken", agent: str = "agent-bo") -> Event:
    return new_event(
        "request.answer_reused",
        request_id=request_id,
        actor=Actor("agent", agent),
        data={"department": department, "agent_id": agent, "team": "kcc-noord"},
    )


# -- 'Herbruikbaar' -----------------------------------------------------------------------


def test_an_answer_is_not_reusable_unless_ticked(
    client: FlaskClient, item_id: str, staff_token: str, outbox_events: Rows
) -> None:
    response = answer(client, staff_token, item_id, PASPOORT_ANSWER)
    assert js(response)["reusable"] is False
    assert events(outbox_events)[-1].data["reusable"] is False


def test_a_ticked_answer_is_published_reusable(
    client: FlaskClient, item_id: str, staff_token: str, outbox_events: Rows
) -> None:
    response = answer(client, staff_token, item_id, PASPOORT_ANSWER, reusable=True)
    assert response.status_code == 200
    assert js(response)["reusable"] is True
    event = events(outbox_events)[-1]
    assert (event.type, event.data["reusable"]) == ("request.answered", True)


def test_marking_and_withdrawing_later_publishes_reuse_changed_once_each(
    client: FlaskClient, item_id: str, staff_token: str, colleague_token: str, outbox_events: Rows
) -> None:
    answer(client, staff_token, item_id, PASPOORT_ANSWER)
    # A colleague of the same department may decide it too.
    marked = post(client, colleague_token, f"{item_id}/reusable", {"reusable": True})
    assert (marked.status_code, js(marked)["reusable"]) == (200, True)
    again = post(client, colleague_token, f"{item_id}/reusable", {"reusable": True})
    assert (again.status_code, js(again)["reusable"]) == (200, True)
    withdrawn = post(client, staff_token, f"{item_id}/reusable", {"reusable": False})
    assert js(withdrawn)["reusable"] is False

    changes = [e for e in events(outbox_events) if e.type == "request.reuse_changed"]
    assert [dict(e.data) for e in changes] == [
        {"department": "burgerzaken", "staff_id": "staff-finn", "reusable": True},
        {"department": "burgerzaken", "staff_id": "staff-eva", "reusable": False},
    ]
    assert [e["type"] for e in js(withdrawn)["timeline"]][-2:] == [
        "request.reuse_changed",
        "request.reuse_changed",
    ]


def test_reuse_of_an_unanswered_question_is_refused_and_changes_nothing(
    client: FlaskClient, item_id: str, staff_token: str, outbox_count: Callable[[], int]
) -> None:
    response = post(client, staff_token, f"{item_id}/reusable", {"reusable": True})
    assert response.status_code == 409
    assert "has not been answered" in js(response)["detail"]
    assert outbox_count() == 0


def test_reuse_by_another_department_or_of_an_unknown_item_is_403(
    client: FlaskClient,
    item_id: str,
    staff_token: str,
    other_staff_token: str,
    agent_token: str,
    outbox_count: Callable[[], int],
) -> None:
    answer(client, staff_token, item_id, PASPOORT_ANSWER)
    before = outbox_count()
    other = post(client, other_staff_token, f"{item_id}/reusable", {"reusable": True})
    unknown = post(client, staff_token, f"{uuid.uuid4()}/reusable", {"reusable": True})
    # An unknown id and another department's item look the same: an id reveals nothing.
    assert other.status_code == unknown.status_code == 403
    assert post(client, agent_token, f"{item_id}/reusable", {"reusable": True}).status_code == 403
    assert outbox_count() == before


def test_reuse_needs_a_yes_or_no(client: FlaskClient, item_id: str, staff_token: str) -> None:
    answer(client, staff_token, item_id, PASPOORT_ANSWER)
    for body in ({}, {"reusable": "misschien"}, {"reusable": True, "x": 1}):
        assert post(client, staff_token, f"{item_id}/reusable", body).status_code in (400, 422)


def test_the_answer_form_ticks_and_the_item_page_withdraws(
    client: FlaskClient, item_id: str, staff_token: str, outbox_events: Rows
) -> None:
    csrf = login(client, staff_token)
    client.post(f"/items/{item_id}/claim", data={"csrf_token": csrf})
    form = client.get(f"/items/{item_id}?actie=antwoorden").get_data(as_text=True)
    assert 'name="herbruikbaar"' in form
    assert "nooit over één inwoner" in form
    assert 'name="herbruikbaar" value="ja" aria-describedby="herbruikbaar-hint">' in form
    client.post(
        f"/items/{item_id}/answer",
        data={"csrf_token": csrf, "tekst": PASPOORT_ANSWER, "herbruikbaar": "ja"},
    )
    page = client.get(f"/items/{item_id}").get_data(as_text=True)
    assert "Herbruikbaar</span>: KCC-medewerkers krijgen dit antwoord als suggestie" in page
    done = client.post(
        f"/items/{item_id}/herbruikbaar",
        data={"csrf_token": csrf, "herbruikbaar": "nee"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Het antwoord is teruggetrokken" in done
    assert "Niet herbruikbaar: het KCC krijgt dit antwoord niet als suggestie." in done
    assert [e.data.get("reusable") for e in events(outbox_events)][-2:] == [True, False]


def test_the_page_refuses_reuse_of_an_unanswered_question_in_dutch(
    client: FlaskClient, item_id: str, staff_token: str, outbox_count: Callable[[], int]
) -> None:
    csrf = login(client, staff_token)
    page = client.post(
        f"/items/{item_id}/herbruikbaar",
        data={"csrf_token": csrf, "herbruikbaar": "ja"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "deze vraag is (nog) niet beantwoord" in page
    bad = client.post(
        f"/items/{item_id}/herbruikbaar",
        data={"csrf_token": csrf, "herbruikbaar": "misschien"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "Kies of het antwoord herbruikbaar is" in bad
    assert outbox_count() == 0


# -- similar earlier questions ------------------------------------------------------------


def test_an_open_item_shows_the_departments_earlier_answer_to_a_similar_question(
    client: FlaskClient, deliver: Any, make: Any, staff_token: str
) -> None:
    earlier = arrive(deliver, make, PASPOORT)
    answer(client, staff_token, earlier, PASPOORT_ANSWER)  # not reusable: staff see it anyway
    unrelated = arrive(deliver, make, "Hoe meld ik een verhuizing naar het buitenland?")
    answer(client, staff_token, unrelated, "Via het formulier emigratie, uiterlijk 5 dagen.")
    new = arrive(deliver, make, PASPOORT_AGAIN)

    found = js(client.get(f"/api/v1/items/{new}/similar", headers=auth(staff_token)))["items"]
    assert found[0]["request_id"] == earlier
    assert found[0]["answer"] == PASPOORT_ANSWER
    assert (found[0]["department"], found[0]["answered_by"]) == ("burgerzaken", "staff-eva")
    assert found[0]["reusable"] is False

    login(client, staff_token)
    page = client.get(f"/items/{new}").get_data(as_text=True)
    assert "Eerdere antwoorden op vergelijkbare vragen" in page
    assert PASPOORT_ANSWER in page
    assert "Gebruik dit antwoord" not in page  # not picked up yet: nothing to fill in


def test_use_this_answer_fills_the_form_without_javascript(
    client: FlaskClient, deliver: Any, make: Any, staff_token: str
) -> None:
    earlier = arrive(deliver, make, PASPOORT)
    answer(client, staff_token, earlier, PASPOORT_ANSWER)
    new = arrive(deliver, make, PASPOORT_AGAIN)
    csrf = login(client, staff_token)
    client.post(f"/items/{new}/claim", data={"csrf_token": csrf})
    page = client.get(f"/items/{new}").get_data(as_text=True)
    link = f"/items/{new}?actie=antwoorden&amp;gebruik={earlier}#actie"
    assert link in page
    form = client.get(f"/items/{new}?actie=antwoorden&gebruik={earlier}").get_data(as_text=True)
    assert f"autofocus>{PASPOORT_ANSWER}</textarea>" in form


def test_staff_never_see_another_departments_history(
    client: FlaskClient, deliver: Any, make: Any, staff_token: str, other_staff_token: str
) -> None:
    earlier = arrive(deliver, make, PASPOORT)
    answer(client, staff_token, earlier, PASPOORT_ANSWER, reusable=True)
    theirs = arrive(deliver, make, PASPOORT_AGAIN, department="belastingen")

    found = client.get(f"/api/v1/items/{theirs}/similar", headers=auth(other_staff_token))
    assert found.status_code == 200
    assert js(found)["items"] == []
    login(client, other_staff_token)
    assert PASPOORT_ANSWER not in client.get(f"/items/{theirs}").get_data(as_text=True)
    # Nor by naming the answer in the address.
    refused = client.get(f"/items/{theirs}?actie=antwoorden&gebruik={earlier}")
    assert refused.status_code == 404
    assert "Antwoord niet gevonden" in refused.get_data(as_text=True)
    assert PASPOORT_ANSWER not in refused.get_data(as_text=True)


def test_only_redacted_text_is_kept_and_indexed(
    client: FlaskClient, deliver: Any, make: Any, staff_token: str, store: InboxStore
) -> None:
    earlier = arrive(deliver, make, "Paspoort verlopen voor BSN 111222333, wat nu?")
    answer(client, staff_token, earlier, f"{PASPOORT_ANSWER} Zie dossier 111222333.")
    kept = store.answered([earlier])[earlier]
    assert "111222333" not in kept.question + kept.answer
    # The stored meaning is that of the redacted texts: no BSN ever went into the model.
    with store.engine.connect() as connection:
        from backoffice.store import items_table

        row = connection.execute(
            items_table.select().where(items_table.c.request_id == earlier)
        ).one()
    assert bytes(row.answer_vector) == meaning([answered_text(kept.question, kept.answer)])[0]
    assert bytes(row.question_vector) == meaning([kept.question])[0]


def test_each_process_finds_answers_given_in_another(
    client: FlaskClient, deliver: Any, make: Any, staff_token: str, store: InboxStore
) -> None:
    # Another gunicorn worker: its own index, loaded before the answer was given.
    elsewhere = EarlierAnswers(InboxStore(store.engine, store.organisation))
    new = arrive(deliver, make, PASPOORT_AGAIN)
    staff = Principal(role="staff", user_id="staff-eva", departments=frozenset({"burgerzaken"}))
    assert elsewhere.like(store.get(new), {"burgerzaken"}) == []
    earlier = arrive(deliver, make, PASPOORT)
    answer(client, staff_token, earlier, PASPOORT_ANSWER)
    assert [s.earlier.request_id for s in elsewhere.like(store.get(new), staff.departments)] == [
        earlier
    ]


# -- 'Je antwoord hielp' ------------------------------------------------------------------


def test_reuse_at_the_desk_is_counted_for_the_answerer_and_the_department(
    app: Flask,
    client: FlaskClient,
    deliver: Any,
    make: Any,
    staff_token: str,
    colleague_token: str,
) -> None:
    earlier = arrive(deliver, make, PASPOORT)
    answer(client, staff_token, earlier, PASPOORT_ANSWER, reusable=True)
    first = reused(earlier)
    deliver(first, first, reused(earlier, agent="agent-cor"))  # a redelivery counts once

    login(client, staff_token)
    mine = client.get("/inbox").get_data(as_text=True)
    assert "Jouw herbruikbare antwoorden hielpen het KCC 2 keer" in mine
    assert "hielpen het KCC 2 keer zonder doorzetten" in mine
    item = client.get(f"/items/{earlier}").get_data(as_text=True)
    assert "Dit antwoord hielp het KCC 2 keer" in item

    colleague = app.test_client()
    login(colleague, colleague_token)
    theirs = colleague.get("/inbox/burgerzaken").get_data(as_text=True)
    assert "Jouw herbruikbare antwoorden zijn nog niet door het KCC gebruikt." in theirs
    assert "Antwoorden van Burgerzaken hielpen het KCC 2 keer zonder doorzetten." in theirs


def test_a_reuse_of_an_unknown_answer_changes_no_inbox(
    deliver: Any, store: InboxStore, item_id: str
) -> None:
    deliver(reused(str(uuid.uuid4())))
    assert [i.request_id for i in store.inbox("burgerzaken")] == [item_id]
    assert store.reuse_total(departments=["burgerzaken"]) == 0


# -- duplicates, grouped ------------------------------------------------------------------


def test_near_identical_questions_are_suggested_as_a_group_and_shown_together(
    client: FlaskClient, deliver: Any, make: Any, staff_token: str
) -> None:
    first = arrive(deliver, make, LAMPEN)
    between = arrive(deliver, make, PASPOORT)
    second = arrive(deliver, make, LAMPEN_AGAIN)
    elsewhere = arrive(deliver, make, LAMPEN, department="belastingen")

    detail = js(client.get(f"/api/v1/items/{second}", headers=auth(staff_token)))
    assert detail["group"] == [first, second]
    assert js(client.get(f"/api/v1/items/{between}", headers=auth(staff_token)))["group"] == []
    assert elsewhere not in detail["group"]

    login(client, staff_token)
    inbox = client.get("/inbox/burgerzaken").get_data(as_text=True)
    assert "2 vergelijkbare vragen" in inbox
    rows = re.findall(r'<tr data-request="([^"]+)"', inbox)
    # The group together (its members adjacent, in order of arrival), whatever the deadlines.
    assert rows.index(second) == rows.index(first) + 1
    assert between in rows


def test_questions_days_apart_are_no_group(deliver: Any, make: Any, store: InboxStore) -> None:
    first = arrive(deliver, make, LAMPEN)
    later = str(uuid.uuid4())
    routed = make.routed(later)
    deliver(
        make.submitted(later, question=LAMPEN_AGAIN),
        replace(routed, occurred_at=routed.occurred_at + timedelta(days=4)),
    )
    assert store.get(first).request_id == first
    assert store.open_questions(["burgerzaken"])  # both there, but
    from backoffice.duplicates import groups

    assert groups(store.open_questions(["burgerzaken"])["burgerzaken"]) == []


def test_a_group_answered_once_gives_each_question_its_own_answer(
    client: FlaskClient, deliver: Any, make: Any, staff_token: str, outbox_events: Rows
) -> None:
    first = arrive(deliver, make, LAMPEN)
    second = arrive(deliver, make, LAMPEN_AGAIN)
    csrf = login(client, staff_token)
    client.post(f"/items/{first}/claim", data={"csrf_token": csrf})
    form = client.get(f"/items/{first}?actie=antwoorden").get_data(as_text=True)
    assert f'name="ook" value="{second}" checked' in form
    done = client.post(
        f"/items/{first}/answer",
        data={
            "csrf_token": csrf,
            "tekst": "De storing is gemeld bij de netbeheerder.",
            "ook": second,
        },
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "voor 2 vragen" in done

    published = events(outbox_events)
    answered = [e for e in published if e.type == "request.answered"]
    assert sorted(e.request_id for e in answered) == sorted([first, second])
    assert {e.data["answer"] for e in answered} == {"De storing is gemeld bij de netbeheerder."}
    # The waiting one was picked up by the same person first: its own clock stops there.
    claims = [e.request_id for e in published if e.type == "request.claimed"]
    assert claims == [first, second]


def test_a_group_answer_naming_a_question_outside_the_group_changes_nothing(
    client: FlaskClient,
    deliver: Any,
    make: Any,
    staff_token: str,
    outbox_count: Callable[[], int],
) -> None:
    first = arrive(deliver, make, LAMPEN)
    arrive(deliver, make, LAMPEN_AGAIN)
    stranger = arrive(deliver, make, PASPOORT)
    post(client, staff_token, f"{first}/claim")
    before = outbox_count()
    response = post(
        client, staff_token, f"{first}/answer", {"text": "Gemeld.", "also_answer": [stranger]}
    )
    assert response.status_code == 409
    assert outbox_count() == before


def test_a_group_answer_is_all_or_nothing(
    client: FlaskClient,
    deliver: Any,
    make: Any,
    staff_token: str,
    colleague_token: str,
    outbox_count: Callable[[], int],
) -> None:
    first = arrive(deliver, make, LAMPEN)
    second = arrive(deliver, make, LAMPEN_AGAIN)
    post(client, colleague_token, f"{second}/claim")  # a colleague works on the other one
    post(client, staff_token, f"{first}/claim")
    before = outbox_count()
    response = post(
        client, staff_token, f"{first}/answer", {"text": "Gemeld.", "also_answer": [second]}
    )
    assert response.status_code == 409
    assert "staff-finn" in js(response)["detail"]
    assert outbox_count() == before


def test_not_grouping_takes_a_question_out_for_good_and_twice_is_refused(
    client: FlaskClient, deliver: Any, make: Any, staff_token: str, other_staff_token: str
) -> None:
    first = arrive(deliver, make, LAMPEN)
    second = arrive(deliver, make, LAMPEN_AGAIN)
    assert post(client, other_staff_token, f"{second}/ungroup").status_code == 403
    undone = post(client, staff_token, f"{second}/ungroup")
    assert (undone.status_code, js(undone)["group"]) == (200, [])
    again = post(client, staff_token, f"{second}/ungroup")
    assert again.status_code == 409
    assert "not in a group" in js(again)["detail"]
    third = arrive(deliver, make, LAMPEN_AGAIN)
    # The other two are grouped again, the one taken out never.
    assert js(client.get(f"/api/v1/items/{first}", headers=auth(staff_token)))["group"] == [
        first,
        third,
    ]


def test_not_grouping_on_the_page(
    client: FlaskClient, deliver: Any, make: Any, staff_token: str
) -> None:
    first = arrive(deliver, make, LAMPEN)
    second = arrive(deliver, make, LAMPEN_AGAIN)
    csrf = login(client, staff_token)
    page = client.get(f"/items/{first}").get_data(as_text=True)
    assert "2 vergelijkbare vragen" in page
    assert "Niet samenvoegen" in page
    done = client.post(
        f"/items/{second}/niet-samenvoegen", data={"csrf_token": csrf}, follow_redirects=True
    ).get_data(as_text=True)
    assert "De vraag staat weer los" in done
    twice = client.post(
        f"/items/{second}/niet-samenvoegen", data={"csrf_token": csrf}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Deze vraag hoort al niet bij een groep" in twice
    assert "vergelijkbare vragen" not in client.get("/inbox/burgerzaken").get_data(as_text=True)


def test_no_question_text_in_the_published_reuse_events(
    client: FlaskClient, item_id: str, staff_token: str, outbox_events: Rows
) -> None:
    answer(client, staff_token, item_id, PASPOORT_ANSWER)
    post(client, staff_token, f"{item_id}/reusable", {"reusable": True})
    change = [b for k, b in outbox_events() if k == "request.reuse_changed"]
    assert len(change) == 1
    assert "Paspoort" not in json.dumps(change)
