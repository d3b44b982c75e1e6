"""The team lead's overview on a real store with a fake clock: compliance that counts open
breaches, the at-risk count, the handoff histogram, per KCC team, the drill-down, and refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from kcc_shared.api import TOKENS_EXTENSION
from kcc_shared.config import Config
from kcc_shared.events import Actor, Event
from prometheus_client import REGISTRY
from sla_monitor.app import create_app, store_of

from .conftest import AGENT, Events, FakeClock, local
from .test_app import _feed

SECRET = "sla-test-secret-0123456789"


def _app(database_url: str, clock: FakeClock, **config: Any) -> Flask:
    settings: dict[str, Any] = {
        "database_url": database_url,
        "broker_url": "memory://",
        "secret_key": SECRET,
        "session_cookie_secure": False,
        **config,
    }
    return create_app(Config(**settings), clock=clock)


@pytest.fixture
def app(database_url: str, clock: FakeClock) -> Iterator[Flask]:
    app = _app(database_url, clock)
    yield app
    store_of(app).engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def _token(app: Flask, role: str, departments: tuple[str, ...] = ()) -> str:
    token, _ = app.extensions[TOKENS_EXTENSION].create(
        role=role, user_id=f"{role}-user", departments=list(departments)
    )
    return str(token)


def _log_in(app: Flask, client: FlaskClient, role: str, *departments: str) -> None:
    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert csrf is not None
    done = client.post(
        "/login", data={"token": _token(app, role, departments), "csrf_token": csrf[1]}
    )
    assert done.status_code == 302


def _api(client: FlaskClient, app: Flask, path: str) -> Any:
    response = client.get(path, headers={"Authorization": f"Bearer {_token(app, 'ops')}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def _summary(client: FlaskClient, app: Flask, window: str = "1d") -> dict[str, Any]:
    summary: dict[str, Any] = _api(client, app, f"/api/v1/sla/summary?window={window}")
    return summary


def _department(summary: dict[str, Any], department: str) -> dict[str, Any]:
    found: dict[str, Any] = next(d for d in summary["departments"] if d["department"] == department)
    return found


def _submitted(events: Events, at: Any, team: str | None) -> Event:
    return events.make(
        "request.submitted",
        at,
        AGENT,
        question="Waar vind ik het formulier?",
        category=None,
        priority="normal",
        channel="phone",
        agent_id="agent-anna",
        team=team,
        citizen_ref=None,
        tags=[],
    )


# -- figures that tell the truth ---------------------------------------------------------------


def test_a_question_open_past_its_deadline_counts_as_breached_and_at_risk_stands_beside_it(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    waiting = Events()
    # Burgerzaken, urgent: first response within 1 h, warning at 80 % (48 min).
    _feed(app, clock, waiting.routed(local("2026-04-20 09:00")))

    clock.set(local("2026-04-20 09:30"))
    first = _department(_summary(client, app), "burgerzaken")["clocks"]["first_response"]
    assert (first["open_breached"], first["at_risk"], first["compliance"]) == (0, 0, None)

    clock.set(local("2026-04-20 09:50"))  # past the warning, within the norm
    burgerzaken = _department(_summary(client, app), "burgerzaken")
    first = burgerzaken["clocks"]["first_response"]
    assert (first["open_breached"], first["at_risk"], first["compliance"]) == (0, 1, None)
    assert (burgerzaken["late"], burgerzaken["at_risk"]) == (0, 1)

    clock.set(local("2026-04-20 10:30"))  # past the norm, nobody took it yet
    summary = _summary(client, app)
    burgerzaken = _department(summary, "burgerzaken")
    first = burgerzaken["clocks"]["first_response"]
    assert (first["met"], first["breached"], first["open_breached"]) == (0, 0, 1)
    assert first["compliance"] == 0.0  # not "100 %" beside a live breach
    assert (burgerzaken["late"], burgerzaken["at_risk"]) == (1, 0)
    assert summary["totals"]["late"] == 1
    assert summary["totals"]["clocks"]["first_response"]["compliance"] == 0.0


def test_a_clock_paused_for_clarification_past_its_warning_is_at_risk(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    paused = Events()
    _feed(
        app,
        clock,
        paused.routed(local("2026-04-20 09:00")),
        paused.claimed(local("2026-04-20 09:05")),
        # Resolution 4 h, warning at 3 h 12 min: paused at 3 h 20 min.
        paused.clarification(local("2026-04-20 12:20")),
    )
    clock.set(local("2026-04-21 12:00"))  # a day later: a pause does not count
    resolution = _department(_summary(client, app), "burgerzaken")["clocks"]["resolution"]
    assert (resolution["open_breached"], resolution["at_risk"]) == (0, 1)


def test_closed_in_time_stays_met_and_the_page_judges_against_the_norm_in_words(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    quick, late = Events(), Events()
    _feed(
        app,
        clock,
        quick.routed(local("2026-04-20 09:00"), "parkeren", "low"),
        quick.claimed(local("2026-04-20 09:10"), "parkeren"),
        quick.answered(local("2026-04-20 09:40"), "parkeren"),
        late.routed(local("2026-04-20 09:00")),
    )
    clock.set(local("2026-04-20 11:00"))
    _log_in(app, client, "ops")
    page = client.get("/sla").get_data(as_text=True)
    burgerzaken = _row(page, "Burgerzaken")
    parkeren = _row(page, "Parkeren")
    assert "Onder norm" in burgerzaken  # a question is late: red, said in words
    assert "Binnen norm" in parkeren
    assert "100,0 %" in parkeren
    assert "Totaal" in page


def _row(page: str, name: str) -> str:
    match = re.search(rf"<tr><th scope=\"row\"[^>]*>(?:<a [^>]*>)?{name}.*?</tr>", page, re.S)
    assert match is not None, name
    return match[0]


# -- handoffs and teams ------------------------------------------------------------------------


def _handoff_sample(suffix: str) -> float:
    value = REGISTRY.get_sample_value(
        f"kcc_request_handoff_business_seconds_{suffix}",
        {"from_department": "burgerzaken", "to_department": "belastingen"},
    )
    return value or 0.0


def test_the_time_a_question_sat_before_a_forward_is_a_histogram_per_pair_and_on_the_page(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    count, total = _handoff_sample("count"), _handoff_sample("sum")
    forwarded = Events()
    _feed(
        app,
        clock,
        forwarded.routed(local("2026-04-20 09:00")),
        forwarded.claimed(local("2026-04-20 09:10")),
        forwarded.clarification(local("2026-04-20 09:20")),
        forwarded.clarified(local("2026-04-20 09:50")),
        forwarded.routed(local("2026-04-20 10:20"), "belastingen", from_department="burgerzaken"),
    )
    # 09:00-09:20 and 09:50-10:20 at Burgerzaken; the half hour waiting on the KCC is not theirs.
    assert _handoff_sample("count") - count == 1
    assert _handoff_sample("sum") - total == 3000.0

    clock.set(local("2026-04-20 11:00"))
    pairs = _summary(client, app)["handoff_times"]
    assert pairs == [
        {
            "from_department": "burgerzaken",
            "from_name": "Burgerzaken",
            "to_department": "belastingen",
            "to_name": "Belastingen en WOZ",
            "handoffs": 1,
            "median_seconds": 3000.0,
            "p90_seconds": 3000.0,
        }
    ]
    _log_in(app, client, "ops")
    page = client.get("/sla").get_data(as_text=True)
    handoffs = page.split('id="overdrachten"', 1)[1]
    assert re.search(r"Burgerzaken</td>\s*<td[^>]*>Belastingen en WOZ</td>", handoffs)
    assert "50 min" in handoffs

    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'kcc_request_handoff_business_seconds_bucket{from_department="burgerzaken",'
        'le="3600.0",to_department="belastingen"}' in text
    )


def test_per_kcc_team_questions_filed_clarifications_asked_back_and_ratings_given(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    north_1, north_2, south, nobody = Events(), Events(), Events(), Events()
    _feed(
        app,
        clock,
        _submitted(north_1, local("2026-04-20 09:00"), "kcc-noord"),
        _submitted(north_2, local("2026-04-20 09:01"), "kcc-noord"),
        _submitted(south, local("2026-04-20 09:02"), "kcc-zuid"),
        _submitted(nobody, local("2026-04-20 09:03"), None),
        north_1.routed(local("2026-04-20 09:04")),
        north_1.clarification(local("2026-04-20 09:30")),
        south.routed(local("2026-04-20 09:04")),
        south.claimed(local("2026-04-20 09:10")),
        south.answered(local("2026-04-20 09:20")),
        south.rated(local("2026-04-20 09:25"), 5, True),
    )
    clock.set(local("2026-04-20 10:00"))
    assert _summary(client, app)["teams"] == [
        {"team": "kcc-noord", "filed": 2, "clarifications": 1, "ratings": 0},
        {"team": "kcc-zuid", "filed": 1, "clarifications": 0, "ratings": 1},
        {"team": None, "filed": 1, "clarifications": 0, "ratings": 0},
    ]
    _log_in(app, client, "ops")
    teams = client.get("/sla").get_data(as_text=True).split('id="teams"', 1)[1]
    assert "KCC Noord" in teams
    assert "Zonder team" in teams
    assert "agent-anna" not in teams  # per team, never per person
    # An hour window later, nothing of this is counted.
    clock.set(local("2026-04-20 12:00"))
    assert _summary(client, app, "1h")["teams"] == []


# -- the drill-down ---------------------------------------------------------------------------


def _backlog(app: Flask, clock: FakeClock) -> tuple[Events, Events, Events]:
    late, risky, fine = Events(), Events(), Events()
    _feed(
        app,
        clock,
        # late: claimed at 09:10 by staff-sam, not answered: resolution (4 h) passed at 13:00.
        late.routed(local("2026-04-20 09:00")),
        late.claimed(local("2026-04-20 09:10")),
        # risky: waiting since 12:20; first response (1 h) at its warning (48 min) by 13:08.
        risky.routed(local("2026-04-20 12:20")),
        fine.routed(local("2026-04-20 13:00")),
    )
    clock.set(local("2026-04-20 13:15"))
    return late, risky, fine


def test_the_drill_down_lists_late_then_at_risk_with_who_has_it_and_the_item_link(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    late, risky, fine = _backlog(app, clock)
    listed = _api(client, app, "/api/v1/sla/departments/burgerzaken/late")
    assert listed["name"] == "Burgerzaken"
    questions = listed["questions"]
    assert [q["request_id"] for q in questions] == [late.request_id, risky.request_id]
    first, second = questions
    assert (first["level"], first["claimed_by"], first["state"]) == ("late", "staff-sam", "claimed")
    assert first["claimed_at"].startswith("2026-04-20T07:10")  # 09:10 in Amsterdam
    assert first["item_url"] == f"/backoffice/items/{late.request_id}"
    assert [c["clock"] for c in first["clocks"]] == ["resolution"]
    assert (second["level"], second["claimed_by"], second["state"]) == ("at_risk", None, "waiting")

    _log_in(app, client, "ops")
    page = client.get("/sla/afdelingen/burgerzaken").get_data(as_text=True)
    assert "Te laat en bijna te laat: Burgerzaken" in page
    assert f'href="/backoffice/items/{late.request_id}"' in page
    assert "staff-sam" in page
    assert "opgepakt vandaag 09:10" in page
    assert "Niemand: nog niet opgepakt" in page
    assert "hier vandaag 12:20" in page
    assert fine.request_id not in page
    # The overview links the department to this list.
    assert 'href="/sla/afdelingen/burgerzaken"' in client.get("/sla").get_data(as_text=True)


def test_an_answered_question_leaves_the_drill_down(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    late, _, _ = _backlog(app, clock)
    _feed(app, clock, late.answered(local("2026-04-20 13:20")))
    listed = _api(client, app, "/api/v1/sla/departments/burgerzaken/late")
    assert late.request_id not in [q["request_id"] for q in listed["questions"]]


def test_an_unknown_department_in_the_drill_down_is_a_dutch_404(
    app: Flask, client: FlaskClient
) -> None:
    _log_in(app, client, "ops")
    response = client.get("/sla/afdelingen/bestaat-niet")
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "Afdeling niet gevonden" in page
    assert "bestaat niet in de organisatie" in page
    api = client.get(
        "/api/v1/sla/departments/bestaat-niet/late",
        headers={"Authorization": f"Bearer {_token(app, 'ops')}"},
    )
    assert api.status_code == 404
    assert api.content_type == "application/problem+json"


def test_staff_see_the_drill_down_of_their_own_departments_only(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    _backlog(app, clock)
    _log_in(app, client, "staff", "afval")
    refused = client.get("/sla/afdelingen/burgerzaken")
    assert refused.status_code == 403
    assert "Niet jouw afdeling" in refused.get_data(as_text=True)
    assert client.get("/sla/afdelingen/afval").status_code == 200


def test_agents_and_strangers_do_not_see_the_drill_down(app: Flask, client: FlaskClient) -> None:
    assert client.get("/sla/afdelingen/burgerzaken").status_code == 302  # log in first
    api = client.get(
        "/api/v1/sla/departments/burgerzaken/late",
        headers={"Authorization": f"Bearer {_token(app, 'agent')}"},
    )
    assert api.status_code == 403


def test_a_public_overview_keeps_its_drill_down_behind_the_login(
    database_url: str, clock: FakeClock
) -> None:
    public = _app(database_url, clock, sla_public_page=True)
    try:
        client = public.test_client()
        assert client.get("/sla").status_code == 200  # the wall screen, as documented
        assert client.get("/sla/afdelingen/burgerzaken").status_code == 302
    finally:
        store_of(public).engine.dispose()
    keyless = _app(database_url, clock, sla_public_page=True, secret_key=None)
    try:
        client = keyless.test_client()
        overview = client.get("/sla").get_data(as_text=True)
        assert 'href="/sla/afdelingen/' not in overview
        refused = client.get("/sla/afdelingen/burgerzaken")
        assert refused.status_code == 403
        assert "alleen na inloggen" in refused.get_data(as_text=True)
    finally:
        store_of(keyless).engine.dispose()


# -- sorting and bad input ---------------------------------------------------------------------


def test_the_overview_sorts_by_a_column_on_the_server_too(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    _backlog(app, clock)
    _log_in(app, client, "ops")
    page = client.get("/sla?sorteer=te-laat&volgorde=aflopend").get_data(as_text=True)
    body = page.split("<tbody>", 1)[1]
    names = re.findall(r'<th scope="row" data-waarde="([^"]+)"', body)
    assert names[0] == "Burgerzaken"  # the one department with a late question
    assert 'aria-sort="descending"' in page
    by_name = client.get("/sla?sorteer=afdeling&volgorde=oplopend").get_data(as_text=True)
    names = re.findall(r'<th scope="row" data-waarde="([^"]+)"', by_name.split("<tbody>", 1)[1])
    assert names == sorted(names, key=str.lower)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("sorteer=kleur", "Onbekende kolom om op te sorteren"),
        ("sorteer=afdeling&volgorde=zijwaarts", "Onbekende sorteervolgorde"),
        ("window=2h", "Onbekende periode"),
    ],
)
def test_bad_sort_or_window_is_a_clear_dutch_400(
    app: Flask, client: FlaskClient, query: str, says: str
) -> None:
    _log_in(app, client, "ops")
    response = client.get(f"/sla?{query}")
    assert response.status_code == 400
    assert says in response.get_data(as_text=True)


def test_the_overview_has_navigation_and_the_sorting_script_is_a_static_file(
    app: Flask, client: FlaskClient
) -> None:
    _log_in(app, client, "ops")
    page = client.get("/sla").get_data(as_text=True)
    assert 'aria-label="Hoofdmenu"' in page
    assert "Uitloggen" in page
    assert "<script>" not in page  # the Content-Security-Policy allows no inline script
    script = re.search(r'<script src="([^"]+)"', page)
    assert script is not None
    served = client.get(script[1])
    served.close()  # a file response: close it, or its file stays open
    assert served.status_code == 200


def test_the_ops_login_lands_on_the_overview(app: Flask, client: FlaskClient) -> None:
    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert csrf is not None
    done = client.post("/login", data={"token": _token(app, "ops"), "csrf_token": csrf[1]})
    assert done.headers["Location"].endswith("/sla")


def test_the_drill_down_never_shows_what_people_wrote(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    asked = Events()
    _feed(
        app,
        clock,
        asked.routed(local("2026-04-20 09:00")),
        asked.claimed(local("2026-04-20 09:05")),
        asked.make(
            "request.answered",
            local("2026-04-20 09:06"),
            Actor("staff", "staff-sam"),
            department="burgerzaken",
            staff_id="staff-sam",
            answer="BSN 123456782 is bekend",
        ),
        asked.reopened(local("2026-04-20 09:07")),
    )
    clock.set(local("2026-04-20 13:30"))
    _log_in(app, client, "ops")
    page = client.get("/sla/afdelingen/burgerzaken").get_data(as_text=True)
    assert asked.request_id[:8] in page
    assert "staff-sam" in page  # reopened: back with whoever answered
    assert "123456782" not in page
    assert "Niet volledig" not in page


# -- answered without a handoff ---------------------------------------------------------------


def test_answers_reused_at_the_desk_count_per_department_as_answered_without_handoff(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    earlier, other = Events(), Events()

    def reused(events: Events, at: Any, department: str) -> Event:
        return events.make(
            "request.answer_reused",
            at,
            AGENT,
            department=department,
            agent_id="agent-anna",
            team="kcc-noord",
        )

    _feed(
        app,
        clock,
        reused(earlier, local("2026-04-20 09:00"), "burgerzaken"),
        reused(earlier, local("2026-04-20 09:30"), "burgerzaken"),
        reused(other, local("2026-04-20 09:40"), "belastingen"),
    )
    clock.set(local("2026-04-20 10:00"))
    summary = _summary(client, app)
    assert _department(summary, "burgerzaken")["answered_without_handoff"] == 2
    assert _department(summary, "belastingen")["answered_without_handoff"] == 1
    assert _department(summary, "parkeren")["answered_without_handoff"] == 0
    assert summary["totals"]["answered_without_handoff"] == 3
    # Counted in the window they happened in.
    assert _summary(client, app, "1h")["totals"]["answered_without_handoff"] == 3
    clock.set(local("2026-04-20 12:00"))
    assert _summary(client, app, "1h")["totals"]["answered_without_handoff"] == 0

    clock.set(local("2026-04-20 10:00"))
    _log_in(app, client, "ops")
    page = client.get("/sla").get_data(as_text=True)
    table = page.split('id="zonder-doorzetten-tabel"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<th scope="row" class="links">([^<]+)</th><td>(\d+)</td>', table)
    assert rows[0] == ("Burgerzaken", "2")
    assert ("Totaal", "3") in rows
    assert "agent-anna" not in table  # per department, never per person
