"""Loading and validating the organisation file."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import kcc_shared
import pytest
from kcc_shared.organisation import (
    PRIORITIES,
    Organisation,
    OrganisationError,
    PriorityChange,
    Problem,
    format_duration,
    load_organisation,
    parse_duration,
)

AMS = ZoneInfo("Europe/Amsterdam")

# A small valid file; each validation case below changes one piece of it.
BASE = """\
version: 1
organisation: {name: Gemeente Test}
calendars:
  kantoor:
    timezone: Europe/Amsterdam
    public_holidays: NL
    opening_hours:
      monday: ["08:30-17:00"]
      friday: ["08:30-12:30", "13:00-16:30"]
    closed_days: [2026-12-24]
departments:
  - id: burgerzaken
    name: Burgerzaken
    calendar: kantoor
    warning_at: 80%
    sla:
      urgent: {first_response: 1h, resolution: 4h}
      high: {first_response: 2h, resolution: 8h}
      normal: {first_response: 4h, resolution: 24h}
      low: {first_response: 8h, resolution: 40h}
  - id: kcc-triage
    name: KCC Triage
    calendar: kantoor
    sla: &kort
      urgent: {first_response: 15m, resolution: 1h}
      high: {first_response: 30m, resolution: 2h}
      normal: {first_response: 1h, resolution: 4h}
      low: {first_response: 2h, resolution: 8h}
categories:
  - {id: documenten, label: Reisdocumenten, department: burgerzaken}
fallback_department: kcc-triage
rules:
  - id: reisdocumenten
    department: burgerzaken
    categories: [documenten]
    keywords: [paspoort, id-kaart]
    priority: {raise_to: high}
"""


def write(tmp_path: Path, text: str, name: str = "organisation.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(OrganisationError) as caught:
        load_organisation(path)
    return [str(p) for p in caught.value.problems]


def changed(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def test_base_file_loads(tmp_path: Path) -> None:
    organisation = load_organisation(write(tmp_path, BASE))

    assert organisation.name == "Gemeente Test"
    assert list(organisation.departments) == ["burgerzaken", "kcc-triage"]
    assert organisation.fallback_department == "kcc-triage"
    burgerzaken = organisation.departments["burgerzaken"]
    assert burgerzaken.warning_ratio == pytest.approx(0.8)
    assert burgerzaken.sla["urgent"].first_response_s == 3600
    assert burgerzaken.sla["low"].resolution_s == 40 * 3600
    assert organisation.departments["kcc-triage"].sla["urgent"].first_response_s == 15 * 60
    rule = organisation.rules[0]
    assert rule.id == "reisdocumenten"
    assert rule.keywords == ("paspoort", "id-kaart")
    assert rule.priority == PriorityChange(mode="raise_to", priority="high")
    assert rule.line == 33
    assert organisation.categories["documenten"].department == "burgerzaken"
    assert organisation.source == str(tmp_path / "organisation.yaml")


def test_reuse_shelf_life_is_per_department_with_a_default_of_a_year(tmp_path: Path) -> None:
    shorter = changed("warning_at: 80%", "warning_at: 80%\n    reuse_shelf_life_days: 90")
    organisation = load_organisation(write(tmp_path, shorter))

    assert organisation.departments["burgerzaken"].reuse_shelf_life_days == 90
    assert organisation.departments["kcc-triage"].reuse_shelf_life_days == 365


def test_version_is_a_short_stable_hash_of_the_content(tmp_path: Path) -> None:
    first = load_organisation(write(tmp_path, BASE, "a.yaml")).version
    again = load_organisation(write(tmp_path, BASE, "b.yaml")).version
    edited = load_organisation(write(tmp_path, BASE + "# nieuwe regel\n", "c.yaml")).version

    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert first == again
    assert edited != first


def test_calendar_follows_the_file(tmp_path: Path) -> None:
    organisation = load_organisation(write(tmp_path, BASE))
    calendar = organisation.calendar_for("burgerzaken")

    # Friday 3 July 2026 has a lunch break: 08:30-12:30 and 13:00-16:30 is 7.5 hours.
    friday = dt.datetime(2026, 7, 3, tzinfo=AMS)
    assert calendar.business_seconds_between(friday, friday + dt.timedelta(days=1)) == 7.5 * 3600
    # Tuesdays are absent, so closed.
    tuesday = dt.datetime(2026, 6, 30, tzinfo=AMS)
    assert calendar.business_seconds_between(tuesday, tuesday + dt.timedelta(days=1)) == 0
    with pytest.raises(KeyError, match="unknown department"):
        organisation.calendar_for("nope")


def test_alias_shares_a_block_and_midnight_and_single_span_are_accepted(tmp_path: Path) -> None:
    triage_sla = BASE[BASE.index("    sla: &kort\n") : BASE.index("categories:")]
    text = (
        changed('      friday: ["08:30-12:30", "13:00-16:30"]\n', '      friday: "20:00-24:00"\n')
        .replace("    warning_at: 80%\n    sla:\n", "    warning_at: 80%\n    sla: &norm\n")
        .replace(triage_sla, "    sla: *norm\n")
    )
    organisation = load_organisation(write(tmp_path, text))
    calendar = organisation.calendar_for("kcc-triage")

    friday = dt.datetime(2026, 7, 3, tzinfo=AMS)
    assert calendar.business_seconds_between(friday, friday + dt.timedelta(days=1)) == 4 * 3600
    departments = organisation.departments
    assert departments["kcc-triage"].sla == departments["burgerzaken"].sla


def test_public_holidays_null_means_none_and_no_is_a_country(tmp_path: Path) -> None:
    # Christmas 2026 is a Friday: closed with NL holidays, open without.
    christmas = dt.datetime(2026, 12, 25, tzinfo=AMS)
    day = dt.timedelta(days=1)

    with_nl = load_organisation(write(tmp_path, BASE, "nl.yaml")).calendar_for("burgerzaken")
    without = load_organisation(
        write(tmp_path, changed("public_holidays: NL", "public_holidays: null"), "none.yaml")
    ).calendar_for("burgerzaken")
    # YAML 1.1 would read a bare NO as false; the loader keeps it as Norway's country code.
    norway = load_organisation(
        write(tmp_path, changed("public_holidays: NL", "public_holidays: NO"), "no.yaml")
    )

    assert with_nl.business_seconds_between(christmas, christmas + day) == 0
    assert without.business_seconds_between(christmas, christmas + day) == 7.5 * 3600
    assert norway.name == "Gemeente Test"


@pytest.mark.parametrize(
    ("public_holidays", "goede_vrijdag_2026", "bevrijdingsdag_2026"),
    [
        pytest.param("NL", 7.5, 8.5, id="short form: the defaults"),
        pytest.param("{country: NL}", 7.5, 8.5, id="long form: the defaults"),
        pytest.param("{country: NL, goede_vrijdag: closed}", 0, 8.5, id="goede vrijdag closed"),
        pytest.param("{country: NL, bevrijdingsdag: closed}", 7.5, 0, id="bevrijdingsdag closed"),
        pytest.param(
            "\n      country: NL\n      goede_vrijdag: open\n      bevrijdingsdag: lustrum",
            7.5,
            8.5,
            id="block form",
        ),
    ],
)
def test_the_file_chooses_the_holidays_clocks_stop_on(
    tmp_path: Path, public_holidays: str, goede_vrijdag_2026: float, bevrijdingsdag_2026: float
) -> None:
    # BASE's kantoor opens on Monday and Friday: Goede Vrijdag 2026 is a Friday (08:30-12:30
    # and 13:00-16:30, 7.5 hours). 5 May 2026 is a Tuesday, so a Tuesday is added.
    text = changed("public_holidays: NL", f"public_holidays: {public_holidays}").replace(
        "      monday:", '      tuesday: ["08:30-17:00"]\n      monday:', 1
    )
    calendar = load_organisation(write(tmp_path, text)).calendar_for("burgerzaken")
    hours = calendar.business_seconds_between

    good_friday = dt.datetime(2026, 4, 3, tzinfo=AMS)
    may_5 = dt.datetime(2026, 5, 5, tzinfo=AMS)
    day = dt.timedelta(days=1)
    assert hours(good_friday, good_friday + day) == goede_vrijdag_2026 * 3600
    assert hours(may_5, may_5 + day) == bevrijdingsdag_2026 * 3600


def test_the_packaged_default_is_the_file_compose_and_kubernetes_mount() -> None:
    # docker-compose.yml, deploy/k8s and the docs name shared/src/kcc_shared/organisation.yaml;
    # the reader lives in kcc_shared/organisation/, one folder deeper than that file.
    shipped = Path(kcc_shared.__file__).parent / "organisation.yaml"

    organisation = load_organisation()

    assert Path(organisation.source) == shipped
    assert organisation.version == load_organisation(shipped).version


def test_packaged_calendars_make_the_documented_holiday_choices() -> None:
    organisation = load_organisation()

    def closed(department: str, day: dt.date) -> bool:
        return organisation.calendar_for(department).is_closed_day(day)

    # The town hall works on Goede Vrijdag and closes on Bevrijdingsdag every year; the
    # outdoor service and the KCC keep the defaults (5 May only in lustrum years).
    for department in ("burgerzaken", "belastingen", "juridische-zaken", "openbare-ruimte"):
        assert not closed(department, dt.date(2026, 4, 3)), department
    assert closed("belastingen", dt.date(2026, 5, 5))
    assert closed("burgerzaken", dt.date(2027, 5, 5))
    assert not closed("openbare-ruimte", dt.date(2026, 5, 5))
    assert closed("openbare-ruimte", dt.date(2025, 5, 5))
    assert not closed("kcc-triage", dt.date(2026, 5, 5))


def test_packaged_default_is_a_realistic_municipality() -> None:
    organisation = load_organisation()

    assert organisation.name == "Gemeente Voorbeeldstad"
    for department_id in (
        "burgerzaken",
        "belastingen",
        "vergunningen",
        "sociaal-domein",
        "openbare-ruimte",
        "afval",
        "parkeren",
        "wonen",
        "ondernemers",
        "juridische-zaken",
        "kcc-triage",
    ):
        assert department_id in organisation.departments
    assert organisation.fallback_department == "kcc-triage"
    owners = {category.department for category in organisation.categories.values()}
    assert owners == set(organisation.departments), "every department has a category"
    assert {"documenten", "belastingen"} <= set(organisation.categories)
    for department in organisation.departments.values():
        urgent, low = department.sla["urgent"], department.sla["low"]
        assert urgent.resolution_s < low.resolution_s, department.id
    assert {rule.department for rule in organisation.rules} == set(organisation.departments) - {
        "kcc-triage"
    }


def test_packaged_calendars_have_the_documented_hours() -> None:
    organisation = load_organisation()
    hour = 3600.0

    def open_hours(department: str, day: dt.date) -> float:
        start = dt.datetime.combine(day, dt.time(0), tzinfo=AMS)
        calendar = organisation.calendar_for(department)
        return calendar.business_seconds_between(start, start + dt.timedelta(days=1)) / hour

    thursday, friday = dt.date(2026, 6, 4), dt.date(2026, 6, 5)
    assert open_hours("burgerzaken", thursday) == 11.5  # avondopenstelling tot 20:00
    assert open_hours("belastingen", thursday) == 8.5
    assert open_hours("openbare-ruimte", thursday) == 8.5  # 07:30-16:00
    assert open_hours("juridische-zaken", friday) == 4  # vrijdagmiddag dicht
    assert open_hours("belastingen", dt.date(2026, 12, 24)) == 0  # extra sluitingsdag
    assert open_hours("belastingen", dt.date(2026, 12, 25)) == 0  # eerste kerstdag


# (id, text to replace in BASE, replacement, line, message)
CASES = [
    (
        "unknown department in rule",
        "    department: burgerzaken\n    categories: [documenten]\n",
        "    department: burgerzakn\n    categories: [documenten]\n",
        34,
        "rule 'reisdocumenten': unknown department 'burgerzakn' (did you mean 'burgerzaken'?)",
    ),
    (
        "unknown department in category",
        "department: burgerzaken}",
        "department: afval}",
        30,
        "category 'documenten': unknown department 'afval'",
    ),
    (
        "unknown category in rule",
        "categories: [documenten]",
        "categories: [documentn]",
        35,
        "rule 'reisdocumenten': unknown category 'documentn' (did you mean 'documenten'?)",
    ),
    (
        "unknown calendar",
        "    calendar: kantoor\n    warning_at",
        "    calendar: kantor\n    warning_at",
        14,
        "department 'burgerzaken': unknown calendar 'kantor' (did you mean 'kantoor'?)",
    ),
    (
        "span ends before it starts",
        '["08:30-17:00"]',
        '["08:30-07:00"]',
        8,
        "calendar 'kantoor': monday: bad time span '08:30-07:00': it must end after it starts",
    ),
    (
        "span in the wrong format",
        '["08:30-17:00"]',
        '["8.30-17"]',
        8,
        "calendar 'kantoor': monday: bad time span '8.30-17'; write HH:MM-HH:MM, e.g. 08:30-17:00",
    ),
    (
        "span with an impossible time",
        '["08:30-17:00"]',
        '["08:30-17:75"]',
        8,
        "calendar 'kantoor': monday: bad time span '08:30-17:75': no such time of day",
    ),
    (
        "overlapping spans",
        '["08:30-12:30", "13:00-16:30"]',
        '["08:30-12:30", "12:00-16:30"]',
        9,
        "calendar 'kantoor': friday: spans 08:30-12:30 and 12:00-16:30 overlap",
    ),
    (
        "weekday in Dutch",
        "      monday:",
        "      maandag:",
        8,
        "calendar 'kantoor': unknown weekday 'maandag' (did you mean 'monday'?); use monday "
        "... sunday (English, lowercase)",
    ),
    (
        "unknown time zone",
        "timezone: Europe/Amsterdam",
        "timezone: Europe/Amsterdm",
        5,
        "calendar 'kantoor': unknown time zone 'Europe/Amsterdm'; use an IANA name such as "
        "Europe/Amsterdam",
    ),
    (
        "unknown holiday country",
        "public_holidays: NL",
        "public_holidays: XX",
        6,
        "calendar 'kantoor': unknown public holiday country 'XX'; use a country code such as "
        "NL, or null for no public holidays",
    ),
    (
        "goede vrijdag neither open nor closed",
        "public_holidays: NL",
        "public_holidays: {country: NL, goede_vrijdag: dicht}",
        6,
        "calendar 'kantoor': public_holidays: goede_vrijdag: unknown choice 'dicht'; write open "
        "(the default: a working day) or closed",
    ),
    (
        "bevrijdingsdag on its own line",
        "public_holidays: NL",
        "public_holidays:\n      country: NL\n      bevrijdingsdag: every_year",
        8,
        "calendar 'kantoor': public_holidays: bevrijdingsdag: unknown choice 'every_year'; write "
        "lustrum (the default: closed in 2025, 2030, ... only), closed (every year) or open "
        "(never closed)",
    ),
    (
        "a Dutch holiday choice for another country",
        "public_holidays: NL",
        "public_holidays:\n      country: BE\n      goede_vrijdag: closed",
        8,
        "calendar 'kantoor': public_holidays: goede_vrijdag is a choice about Dutch public "
        "holidays; it needs country: NL, not 'BE'",
    ),
    (
        "holiday choice without a country",
        "public_holidays: NL",
        "public_holidays: {bevrijdingsdag: closed}",
        6,
        "calendar 'kantoor': public_holidays: missing required field 'country'",
    ),
    (
        "misspelt holiday choice",
        "public_holidays: NL",
        "public_holidays: {country: NL, goede_vrydag: closed}",
        6,
        "calendar 'kantoor': public_holidays: unknown field 'goede_vrydag' (did you mean "
        "'goede_vrijdag'?)",
    ),
    (
        "holiday country in the long form",
        "public_holidays: NL",
        "public_holidays: {country: XX}",
        6,
        "calendar 'kantoor': unknown public holiday country 'XX'; use a country code such as "
        "NL, or null for no public holidays",
    ),
    (
        "public holidays as a list",
        "public_holidays: NL",
        "public_holidays: [Goede vrijdag]",
        6,
        "calendar 'kantoor': public_holidays must be a country code (NL), null, or a mapping "
        "such as {country: NL, goede_vrijdag: closed}, not a list",
    ),
    (
        "bad closed day",
        "closed_days: [2026-12-24]",
        "closed_days: [2026-12-32]",
        10,
        "calendar 'kantoor': bad date '2026-12-32' in closed_days; write YYYY-MM-DD",
    ),
    (
        "duplicate department",
        "  - id: kcc-triage\n",
        "  - id: burgerzaken\n",
        21,
        "duplicate department id 'burgerzaken' (first at line 12)",
    ),
    (
        "duplicate rule",
        "    priority: {raise_to: high}\n",
        "    priority: {raise_to: high}\n  - id: reisdocumenten\n    department: burgerzaken\n"
        "    keywords: [rijbewijs]\n",
        38,
        "duplicate rule id 'reisdocumenten' (first at line 33)",
    ),
    (
        "duplicate category",
        "fallback_department:",
        "  - {id: documenten, label: Nogmaals, department: burgerzaken}\nfallback_department:",
        31,
        "duplicate category id 'documenten' (first at line 30)",
    ),
    (
        "duplicate calendar",
        "departments:\n",
        "  kantoor:\n    timezone: UTC\n    opening_hours: {monday: 09:00-17:00}\ndepartments:\n",
        11,
        "calendars: duplicate 'kantoor' (first at line 4)",
    ),
    (
        "duration in days",
        "resolution: 40h}",
        "resolution: 5d}",
        20,
        "department 'burgerzaken': sla low: resolution: duration '5d': days and weeks are "
        "ambiguous in business time (a business day is not 24 hours); write hours instead, "
        "e.g. 16h for two days of 8 hours",
    ),
    (
        "duration without unit",
        "first_response: 1h,",
        "first_response: 60,",
        17,
        "department 'burgerzaken': sla urgent: first_response: duration '60' has no unit; "
        "write e.g. 60m, 60s or 4h",
    ),
    (
        "duration nonsense",
        "first_response: 1h,",
        "first_response: soon,",
        17,
        "department 'burgerzaken': sla urgent: first_response: bad duration 'soon'; use h, m "
        "and s, e.g. 30m, 4h, 1h30m or 90s",
    ),
    (
        "first response longer than resolution",
        "urgent: {first_response: 1h, resolution: 4h}",
        "urgent: {first_response: 5h, resolution: 4h}",
        17,
        "department 'burgerzaken': sla urgent: first_response (5h) is longer than resolution (4h)",
    ),
    (
        "unknown priority in sla",
        "      low: {first_response: 8h, resolution: 40h}\n  - id: kcc",
        "      low: {first_response: 8h, resolution: 40h}\n"
        "      medium: {first_response: 8h, resolution: 40h}\n  - id: kcc",
        21,
        "department 'burgerzaken': sla: unknown field 'medium'",
    ),
    (
        "missing priority in sla",
        "      low: {first_response: 8h, resolution: 40h}\n  - id: kcc",
        "  - id: kcc",
        17,
        "department 'burgerzaken': sla: missing required field 'low'",
    ),
    (
        "bad priority in rule",
        "priority: {raise_to: high}",
        "priority: {raise_to: hoog}",
        37,
        "rule 'reisdocumenten': unknown priority 'hoog'; use one of urgent, high, normal, low",
    ),
    (
        "priority with both set and raise",
        "priority: {raise_to: high}",
        "priority: {raise_to: high, set: low}",
        37,
        "rule 'reisdocumenten': priority needs exactly one of 'set' or 'raise_to', "
        "e.g. {raise_to: high}",
    ),
    (
        "warning threshold out of range",
        "warning_at: 80%",
        "warning_at: 100%",
        15,
        "department 'burgerzaken': warning_at must be a percentage from 1% to 99%, e.g. 80%, "
        "not '100%'",
    ),
    (
        "reuse shelf life not a whole number of days",
        "warning_at: 80%",
        "warning_at: 80%\n    reuse_shelf_life_days: 1 jaar",
        16,
        "department 'burgerzaken': reuse_shelf_life_days must be a whole number of days from 1 "
        "to 3650, e.g. 365, not '1 jaar'",
    ),
    (
        "reuse shelf life of zero days",
        "warning_at: 80%",
        "warning_at: 80%\n    reuse_shelf_life_days: 0",
        16,
        "department 'burgerzaken': reuse_shelf_life_days must be a whole number of days from 1 "
        "to 3650, e.g. 365, not '0'",
    ),
    (
        "missing required field",
        "    name: Burgerzaken\n",
        "",
        12,
        "department 'burgerzaken': missing required field 'name'",
    ),
    (
        "unknown field (typo)",
        "    keywords: [paspoort, id-kaart]",
        "    keywrods: [paspoort, id-kaart]",
        36,
        "rule 'reisdocumenten': unknown field 'keywrods' (did you mean 'keywords'?)",
    ),
    (
        "unknown top-level field",
        "fallback_department:",
        "fallback_departement: x\nfallback_department:",
        31,
        "the file: unknown field 'fallback_departement' (did you mean 'fallback_department'?)",
    ),
    (
        "duplicate field",
        "    name: Burgerzaken\n",
        "    name: Burgerzaken\n    name: Burgerzaken 2\n",
        14,
        "department 'burgerzaken': duplicate field 'name' (first at line 13)",
    ),
    (
        "bad id",
        "  - id: kcc-triage\n",
        "  - id: KCC_Triage\n",
        21,
        "department id 'KCC_Triage' is not a valid id: use lowercase letters, digits and "
        "single hyphens, e.g. sociaal-domein",
    ),
    (
        "unknown fallback department",
        "fallback_department: kcc-triage",
        "fallback_department: triage",
        31,
        "fallback_department: unknown department 'triage' (did you mean 'kcc-triage'?)",
    ),
    (
        "bad regular expression",
        "    keywords: [paspoort, id-kaart]",
        "    patterns: ['(vog']",
        36,
        "rule 'reisdocumenten': pattern '(vog': not a valid regular expression: missing ), "
        "unterminated subpattern at position 0",
    ),
    (
        "pattern matching everything",
        "    keywords: [paspoort, id-kaart]",
        "    patterns: ['.*']",
        36,
        "rule 'reisdocumenten': pattern '.*': it matches empty text, so it would match every "
        "question",
    ),
    (
        "rule that can never match",
        "    categories: [documenten]\n    keywords: [paspoort, id-kaart]\n",
        "    unless: [spoed]\n",
        33,
        "rule 'reisdocumenten' can never match: give it categories, keywords, phrases or patterns",
    ),
    (
        "category routed against the catalog",
        "  - id: reisdocumenten\n    department: burgerzaken\n",
        "  - id: reisdocumenten\n    department: kcc-triage\n",
        35,
        "rule 'reisdocumenten': category 'documenten' belongs to department 'burgerzaken' in "
        "the catalog, but this rule routes to 'kcc-triage'",
    ),
    (
        "unsupported file version",
        "version: 1",
        "version: 2",
        1,
        "unsupported file version '2'; this release reads version 1",
    ),
    (
        "keywords not a list",
        "keywords: [paspoort, id-kaart]",
        "keywords: paspoort",
        36,
        "rule 'reisdocumenten': keywords must be a list, e.g. [paspoort, rijbewijs], not "
        "'paspoort'",
    ),
    (
        "YAML syntax error",
        "organisation: {name: Gemeente Test}",
        "organisation: {name: Gemeente Test",
        3,
        "YAML syntax error: expected ',' or '}', but got ':' (while parsing a flow mapping "
        "that starts at line 2)",
    ),
    (
        "tab indentation",
        "    name: Burgerzaken\n",
        "\tname: Burgerzaken\n",
        13,
        "YAML syntax error: found character '\\t' that cannot start any token "
        "(while scanning for the next token)",
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_file_reports_file_line_and_message(
    tmp_path: Path, old: str, new: str, line: int, message: str
) -> None:
    path = write(tmp_path, changed(old, new))

    problems = problems_of(path)

    assert f"{path}:{line}: {message}" in problems, "\n".join(problems)


def test_every_problem_is_reported_not_only_the_first(tmp_path: Path) -> None:
    text = (
        BASE.replace("Europe/Amsterdam", "Mars/Olympus")
        .replace('["08:30-17:00"]', '["17:00-08:30"]')
        .replace("resolution: 40h}", "resolution: 1w}")
        .replace("categories: [documenten]", "categories: [onbekend]")
        .replace("fallback_department: kcc-triage", "fallback_department: nergens")
    )
    path = write(tmp_path, text)

    with pytest.raises(OrganisationError) as caught:
        load_organisation(path)

    lines = [p.line for p in caught.value.problems]
    assert lines == [5, 8, 20, 31, 35]
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]
    assert all(line.startswith(f"{path}:") for line in str(caught.value).splitlines())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"# alleen commentaar\n", "the file is empty"),
        (b"- een\n- lijst\n", "the file must be a mapping (field: value), not a list"),
    ],
    ids=["empty", "only comments", "a list"],
)
def test_whole_file_problems(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "organisation.yaml"
    path.write_bytes(content)

    problems = problems_of(path)

    assert any(p.endswith(message) for p in problems), problems


def test_missing_top_level_fields_are_all_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\n")

    problems = problems_of(path)

    for field in ("organisation", "calendars", "departments", "fallback_department"):
        assert f"{path}:1: the file: missing required field '{field}'" in problems


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "weg.yaml"

    assert problems_of(path) == [f"{path}: file not found"]


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == [f"{tmp_path}: is a directory, not a file"]


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "organisation.yaml"
    path.write_bytes(b"version: 1\norganisation: {name: Gemeente \xe9}\n")

    assert problems_of(path) == [f"{path}:2: the file is not UTF-8 text"]


def test_problem_str() -> None:
    assert str(Problem("org.yaml", 7, "kapot")) == "org.yaml:7: kapot"
    assert str(Problem("org.yaml", None, "weg")) == "org.yaml: weg"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("4h", 14400), ("1h30m", 5400), ("90s", 90), ("2h15m30s", 8130)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1d", "days and weeks are ambiguous"),
        ("2 weken", "days and weeks are ambiguous"),
        ("45", "has no unit"),
        ("0m", "must be longer than zero"),
        ("1.5h", "bad duration"),
        ("", "bad duration"),
        ("m30", "bad duration"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("change", "current", "result"),
    [
        (PriorityChange("raise_to", "high"), "low", "high"),
        (PriorityChange("raise_to", "high"), "normal", "high"),
        (PriorityChange("raise_to", "high"), "urgent", "urgent"),
        (PriorityChange("set", "urgent"), "low", "urgent"),
        (PriorityChange("set", "low"), "urgent", "low"),
    ],
)
def test_priority_change(change: PriorityChange, current: str, result: str) -> None:
    assert change.apply(current) == result


def test_priority_change_rejects_unknown_current() -> None:
    with pytest.raises(ValueError, match="unknown priority 'spoed'"):
        PriorityChange("raise_to", "high").apply("spoed")


def test_sla_for() -> None:
    organisation: Organisation = load_organisation()

    for priority in PRIORITIES:
        target = organisation.sla_for("burgerzaken", priority)
        assert 0 < target.first_response_s <= target.resolution_s
    with pytest.raises(KeyError):
        organisation.sla_for("burgerzaken", "spoed")
