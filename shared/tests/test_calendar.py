"""Tests for the business-time calendar."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from kcc_shared.calendar import BusinessCalendar, PublicHolidays, Span

AMS = ZoneInfo("Europe/Amsterdam")
HOUR = 3600.0
OFFICE = Span(time(8, 30), time(17, 0))
WORKDAYS = range(5)


def ams(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=AMS)


def office(**kwargs: object) -> BusinessCalendar:
    return BusinessCalendar(
        timezone="Europe/Amsterdam",
        opening_hours={d: [OFFICE] for d in WORKDAYS},
        **kwargs,  # type: ignore[arg-type]
    )


def lunch_break() -> BusinessCalendar:
    return BusinessCalendar(
        timezone="Europe/Amsterdam",
        opening_hours={
            d: [Span(time(13, 0), time(17, 0)), Span(time(8, 30), time(12, 0))] for d in WORKDAYS
        },
    )


def sunday_night() -> BusinessCalendar:
    return BusinessCalendar(
        timezone="Europe/Amsterdam",
        opening_hours={6: [Span(time(0, 0), time(6, 0))]},
        public_holidays=None,
    )


def around_the_clock() -> BusinessCalendar:
    return BusinessCalendar(
        timezone="Europe/Amsterdam",
        opening_hours={d: [Span(time(0, 0), time.max)] for d in range(7)},
        public_holidays=None,
    )


def daily_office(country: str | None) -> BusinessCalendar:
    return BusinessCalendar(
        timezone="Europe/Amsterdam",
        opening_hours={d: [OFFICE] for d in range(7)},
        public_holidays=country,
    )


# 6 March 2026 is a Friday; 9 March the Monday after.
@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        pytest.param(ams(2026, 3, 6, 16), ams(2026, 3, 6, 17), 1, id="friday 16:00 to close"),
        pytest.param(ams(2026, 3, 6, 16), ams(2026, 3, 6, 22), 1, id="into the evening"),
        pytest.param(ams(2026, 3, 6, 16), ams(2026, 3, 9, 8, 30), 1, id="weekend adds nothing"),
        pytest.param(ams(2026, 3, 6, 16), ams(2026, 3, 9, 9, 30), 2, id="continues monday"),
        pytest.param(ams(2026, 3, 7, 10), ams(2026, 3, 8, 15), 0, id="inside the weekend"),
        pytest.param(ams(2026, 3, 9, 7), ams(2026, 3, 9, 8, 30), 0, id="before opening"),
        pytest.param(ams(2026, 3, 9, 8, 30), ams(2026, 3, 9, 17), 8.5, id="one full day"),
        pytest.param(ams(2026, 3, 9, 8, 30), ams(2026, 3, 16, 8, 30), 42.5, id="one week"),
        pytest.param(ams(2026, 3, 9, 18), ams(2026, 3, 10, 8, 0), 0, id="overnight"),
        pytest.param(ams(2026, 3, 9, 12), ams(2026, 3, 9, 11), 0, id="end before start"),
        pytest.param(ams(2026, 3, 9, 12), ams(2026, 3, 9, 12), 0, id="empty"),
        pytest.param(
            ams(2026, 4, 24, 17), ams(2026, 4, 28, 8, 30), 0, id="koningsdag 2026 monday closed"
        ),
        pytest.param(
            ams(2025, 12, 24, 17), ams(2025, 12, 29, 8, 30), 0, id="christmas 25+26 dec 2025"
        ),
        pytest.param(
            # Goede Vrijdag is a working day by default; Tweede Paasdag is not.
            ams(2026, 4, 2, 17),
            ams(2026, 4, 7, 8, 30),
            8.5,
            id="good friday to easter monday",
        ),
        pytest.param(ams(2025, 5, 2, 17), ams(2025, 5, 6, 8, 30), 0, id="bevrijdingsdag 2025"),
        pytest.param(ams(2026, 5, 4, 17), ams(2026, 5, 6, 8, 30), 8.5, id="5 may 2026 is open"),
        pytest.param(ams(2025, 12, 31, 16), ams(2026, 1, 2, 9, 30), 2, id="over new year's day"),
        pytest.param(
            ams(2026, 3, 27, 16), ams(2026, 3, 30, 9, 30), 2, id="over the spring dst weekend"
        ),
        # 261 weekdays in 2026, minus 6 holidays on weekdays (Goede Vrijdag is open), 8.5 h each.
        pytest.param(ams(2026, 1, 1), ams(2027, 1, 1), 255 * 8.5, id="all of 2026"),
        # 254 + 255 + 256 working days in 2025, 2026 and 2027.
        pytest.param(ams(2025, 1, 1), ams(2028, 1, 1), 765 * 8.5, id="three years"),
    ],
)
def test_business_seconds_between(start: datetime, end: datetime, hours: float) -> None:
    calendar = office()
    expected = hours * HOUR
    assert calendar.business_seconds_between(start, end) == expected
    # The same instants given in UTC give the same answer.
    assert calendar.business_seconds_between(start.astimezone(UTC), end.astimezone(UTC)) == (
        expected
    )


@pytest.mark.parametrize(
    ("start", "seconds", "due"),
    [
        pytest.param(ams(2026, 3, 6, 16), HOUR, ams(2026, 3, 6, 17), id="due at friday close"),
        pytest.param(ams(2026, 3, 6, 16), HOUR + 1, ams(2026, 3, 9, 8, 30, 1), id="one second"),
        pytest.param(ams(2026, 3, 6, 16), 2 * HOUR, ams(2026, 3, 9, 9, 30), id="monday 09:30"),
        pytest.param(ams(2026, 3, 6, 20), HOUR, ams(2026, 3, 9, 9, 30), id="filed in evening"),
        pytest.param(ams(2026, 3, 7, 11), HOUR, ams(2026, 3, 9, 9, 30), id="filed on saturday"),
        pytest.param(ams(2026, 3, 9, 6), HOUR, ams(2026, 3, 9, 9, 30), id="filed before opening"),
        pytest.param(ams(2026, 3, 9, 8, 30), 8.5 * HOUR, ams(2026, 3, 9, 17), id="full day"),
        pytest.param(ams(2026, 3, 9, 8, 30), 3 * 8.5 * HOUR, ams(2026, 3, 11, 17), id="3 days"),
        pytest.param(ams(2026, 3, 9, 10), 0.5, ams(2026, 3, 9, 10) + timedelta(seconds=0.5)),
        pytest.param(ams(2026, 3, 7, 11), 0, ams(2026, 3, 7, 11), id="zero outside hours"),
        pytest.param(ams(2026, 3, 9, 10), 0, ams(2026, 3, 9, 10), id="zero inside hours"),
        pytest.param(
            ams(2026, 4, 24, 16), 2 * HOUR, ams(2026, 4, 28, 9, 30), id="skips koningsdag"
        ),
        pytest.param(
            ams(2025, 12, 24, 16), 2 * HOUR, ams(2025, 12, 29, 9, 30), id="skips christmas"
        ),
        pytest.param(
            ams(2025, 12, 31, 16), 2 * HOUR, ams(2026, 1, 2, 9, 30), id="skips new year's day"
        ),
        pytest.param(ams(2026, 1, 1), 255 * 8.5 * HOUR, ams(2026, 12, 31, 17), id="all of 2026"),
        pytest.param(
            ams(2026, 1, 1), 255 * 8.5 * HOUR + 1, ams(2027, 1, 4, 8, 30, 1), id="into 2027"
        ),
    ],
)
def test_add_business_seconds(start: datetime, seconds: float, due: datetime) -> None:
    result = office().add_business_seconds(start, seconds)
    assert result == due
    assert result.tzinfo is UTC
    assert office().add_business_seconds(start.astimezone(UTC), seconds) == due


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (ams(2026, 3, 9, 8, 29, 59), False),
        (ams(2026, 3, 9, 8, 30), True),
        (ams(2026, 3, 9, 16, 59, 59), True),
        (ams(2026, 3, 9, 17), False),
        (ams(2026, 3, 9, 21), False),
        (ams(2026, 3, 7, 10), False),
        (ams(2026, 4, 27, 10), False),
        (ams(2025, 12, 26, 10), False),
        # 07:30 UTC is 08:30 CET in winter, 06:30 UTC is 08:30 CEST in summer.
        (datetime(2026, 3, 9, 7, 30, tzinfo=UTC), True),
        (datetime(2026, 3, 9, 7, 29, tzinfo=UTC), False),
        (datetime(2026, 6, 1, 6, 30, tzinfo=UTC), True),
        (datetime(2026, 6, 1, 6, 29, tzinfo=UTC), False),
        (datetime(2026, 6, 1, 15, 0, tzinfo=UTC), False),
    ],
)
def test_is_open(moment: datetime, expected: bool) -> None:
    assert office().is_open(moment) is expected


def test_extra_closed_day() -> None:
    calendar = office(closed_days=[date(2026, 3, 9)])
    assert calendar.is_closed_day(date(2026, 3, 9))
    assert not calendar.is_open(ams(2026, 3, 9, 10))
    assert calendar.business_seconds_between(ams(2026, 3, 6, 16), ams(2026, 3, 10, 9, 30)) == (
        2 * HOUR
    )
    assert calendar.add_business_seconds(ams(2026, 3, 6, 16), 2 * HOUR) == ams(2026, 3, 10, 9, 30)


def test_lunch_break() -> None:
    calendar = lunch_break()
    assert calendar.is_open(ams(2026, 3, 9, 11, 59))
    assert not calendar.is_open(ams(2026, 3, 9, 12, 30))
    assert calendar.is_open(ams(2026, 3, 9, 13))
    assert calendar.business_seconds_between(ams(2026, 3, 9, 11), ams(2026, 3, 9, 14)) == 2 * HOUR
    assert calendar.business_seconds_between(ams(2026, 3, 9), ams(2026, 3, 10)) == 7.5 * HOUR
    assert calendar.add_business_seconds(ams(2026, 3, 9, 11), 2 * HOUR) == ams(2026, 3, 9, 14)
    # A budget that runs out at the start of lunch is due then, not after lunch.
    assert calendar.add_business_seconds(ams(2026, 3, 9, 11), HOUR) == ams(2026, 3, 9, 12)


def test_touching_spans_are_allowed() -> None:
    calendar = BusinessCalendar(
        timezone="Europe/Amsterdam",
        opening_hours={0: [Span(time(8, 30), time(12, 0)), Span(time(12, 0), time(17, 0))]},
    )
    assert calendar.is_open(ams(2026, 3, 9, 12))
    assert calendar.business_seconds_between(ams(2026, 3, 9), ams(2026, 3, 10)) == 8.5 * HOUR


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        pytest.param(ams(2026, 3, 21), ams(2026, 3, 23), 6, id="ordinary sunday"),
        pytest.param(ams(2026, 3, 28), ams(2026, 3, 30), 5, id="spring forward 29 march 2026"),
        pytest.param(ams(2026, 10, 24), ams(2026, 10, 26), 7, id="fall back 25 october 2026"),
        pytest.param(ams(2026, 3, 1), ams(2026, 4, 1), 4 * 6 + 5, id="march 2026"),
    ],
)
def test_dst_switches(start: datetime, end: datetime, hours: float) -> None:
    assert sunday_night().business_seconds_between(start, end) == hours * HOUR


def test_dst_due_times_and_open_state() -> None:
    calendar = sunday_night()
    # 06:00 CEST is 04:00 UTC, reached after 5 real hours.
    assert calendar.add_business_seconds(ams(2026, 3, 29), 5 * HOUR) == datetime(
        2026, 3, 29, 4, tzinfo=UTC
    )
    assert calendar.add_business_seconds(ams(2026, 3, 29), 5 * HOUR + 1) == ams(2026, 4, 5, 0, 0, 1)
    # 06:00 CET is 05:00 UTC, reached after 7 real hours.
    assert calendar.add_business_seconds(ams(2026, 10, 25), 7 * HOUR) == datetime(
        2026, 10, 25, 5, tzinfo=UTC
    )
    # The repeated hour 02:00-03:00 is open both times round.
    assert calendar.is_open(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    assert calendar.is_open(datetime(2026, 10, 25, 1, 30, tzinfo=UTC))


def test_around_the_clock_counts_real_hours() -> None:
    calendar = around_the_clock()
    assert calendar.is_open(ams(2026, 3, 9, 23, 59, 59))
    assert calendar.business_seconds_between(ams(2026, 3, 9), ams(2026, 3, 16)) == 168 * HOUR
    assert calendar.business_seconds_between(ams(2026, 3, 23), ams(2026, 3, 30)) == 167 * HOUR
    assert calendar.business_seconds_between(ams(2026, 10, 19), ams(2026, 10, 26)) == 169 * HOUR
    # 24 real hours after Saturday 12:00 CET is Sunday 13:00 CEST (11:00 UTC).
    assert calendar.add_business_seconds(ams(2026, 3, 28, 12), 24 * HOUR) == ams(2026, 3, 29, 13)


@pytest.mark.parametrize(
    ("span", "hours"),
    [
        # The clock jumps from 02:00 to 03:00: an opening at 02:30 takes effect at 03:00 CEST.
        pytest.param(Span(time(2, 30), time(5, 0)), 2, id="start in the gap"),
        pytest.param(Span(time(0, 0), time(2, 30)), 2, id="end in the gap"),
        pytest.param(Span(time(2, 15), time(2, 45)), 0, id="whole span in the gap"),
    ],
)
def test_span_boundary_in_spring_forward_gap(span: Span, hours: float) -> None:
    calendar = BusinessCalendar(
        timezone="Europe/Amsterdam", opening_hours={6: [span]}, public_holidays=None
    )
    assert calendar.business_seconds_between(ams(2026, 3, 29), ams(2026, 3, 30)) == hours * HOUR


def test_span_boundary_in_repeated_hour_uses_first_occurrence() -> None:
    calendar = BusinessCalendar(
        timezone="Europe/Amsterdam",
        opening_hours={6: [Span(time(2, 30), time(3, 0))]},
        public_holidays=None,
    )
    # First 02:30 (CEST) is 00:30 UTC; 03:00 CET is 02:00 UTC.
    assert calendar.business_seconds_between(ams(2026, 10, 25), ams(2026, 10, 26)) == 1.5 * HOUR
    assert calendar.is_open(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    assert not calendar.is_open(datetime(2026, 10, 25, 0, 29, tzinfo=UTC))


@pytest.mark.parametrize(
    ("day", "closed"),
    [
        pytest.param(date(2026, 4, 27), True, id="koningsdag 2026 (monday)"),
        pytest.param(date(2025, 4, 26), True, id="koningsdag 2025 moved to saturday 26 april"),
        pytest.param(date(2025, 4, 27), False, id="27 april 2025 is a sunday"),
        pytest.param(date(2025, 5, 5), True, id="bevrijdingsdag in a lustrum year"),
        pytest.param(date(2026, 5, 5), False, id="bevrijdingsdag 2026 is not a day off"),
        pytest.param(date(2026, 1, 1), True, id="nieuwjaarsdag"),
        pytest.param(date(2026, 4, 3), False, id="goede vrijdag is a working day by default"),
        pytest.param(date(2026, 4, 6), True, id="tweede paasdag"),
        pytest.param(date(2026, 5, 14), True, id="hemelvaartsdag"),
        pytest.param(date(2026, 5, 25), True, id="tweede pinksterdag"),
        pytest.param(date(2026, 12, 25), True, id="eerste kerstdag"),
        pytest.param(date(2026, 12, 26), True, id="tweede kerstdag"),
        pytest.param(date(2026, 12, 24), False, id="christmas eve"),
        pytest.param(date(2026, 3, 9), False, id="ordinary monday"),
    ],
)
def test_dutch_public_holidays(day: date, closed: bool) -> None:
    calendar = daily_office("NL")
    assert calendar.is_closed_day(day) is closed


# Goede Vrijdag 2026 is Friday 3 April (Tweede Paasdag Monday 6 April is closed in every
# choice); Bevrijdingsdag is Monday 5 May 2025 (a lustrum year) and Tuesday 5 May 2026.
GOEDE_VRIJDAG_2026 = (ams(2026, 4, 2, 17), ams(2026, 4, 7, 8, 30))
BEVRIJDINGSDAG_2025 = (ams(2025, 5, 2, 17), ams(2025, 5, 6, 8, 30))
BEVRIJDINGSDAG_2026 = (ams(2026, 5, 4, 17), ams(2026, 5, 6, 8, 30))


@pytest.mark.parametrize(
    ("choice", "goede_vrijdag_2026", "bevrijdingsdag_2025", "bevrijdingsdag_2026"),
    [
        pytest.param("NL", 8.5, 0, 8.5, id="short form NL: the defaults"),
        pytest.param(PublicHolidays("NL"), 8.5, 0, 8.5, id="defaults"),
        pytest.param(PublicHolidays("NL", goede_vrijdag="open"), 8.5, 0, 8.5, id="gv open"),
        pytest.param(PublicHolidays("NL", goede_vrijdag="closed"), 0, 0, 8.5, id="gv closed"),
        pytest.param(PublicHolidays("NL", bevrijdingsdag="lustrum"), 8.5, 0, 8.5, id="bd lustrum"),
        pytest.param(PublicHolidays("NL", bevrijdingsdag="closed"), 8.5, 0, 0, id="bd closed"),
        pytest.param(PublicHolidays("NL", bevrijdingsdag="open"), 8.5, 8.5, 8.5, id="bd open"),
        pytest.param(
            PublicHolidays("NL", goede_vrijdag="closed", bevrijdingsdag="closed"),
            0,
            0,
            0,
            id="both closed",
        ),
    ],
)
def test_business_time_follows_the_organisations_holiday_choice(
    choice: PublicHolidays | str,
    goede_vrijdag_2026: float,
    bevrijdingsdag_2025: float,
    bevrijdingsdag_2026: float,
) -> None:
    calendar = office(public_holidays=choice)

    assert calendar.business_seconds_between(*GOEDE_VRIJDAG_2026) == goede_vrijdag_2026 * HOUR
    assert calendar.business_seconds_between(*BEVRIJDINGSDAG_2025) == bevrijdingsdag_2025 * HOUR
    assert calendar.business_seconds_between(*BEVRIJDINGSDAG_2026) == bevrijdingsdag_2026 * HOUR


@pytest.mark.parametrize(
    ("choice", "filed", "due"),
    [
        # Filed at 15:00 with a 4-hour norm: 2 hours that day, 2 the next working day.
        pytest.param("NL", ams(2026, 4, 2, 15), ams(2026, 4, 3, 10, 30), id="gv open"),
        pytest.param(
            PublicHolidays("NL", goede_vrijdag="closed"),
            ams(2026, 4, 2, 15),
            ams(2026, 4, 7, 10, 30),
            id="gv closed: after easter",
        ),
        pytest.param("NL", ams(2026, 5, 4, 15), ams(2026, 5, 5, 10, 30), id="5 may 2026 open"),
        pytest.param(
            PublicHolidays("NL", bevrijdingsdag="closed"),
            ams(2026, 5, 4, 15),
            ams(2026, 5, 6, 10, 30),
            id="5 may 2026 closed",
        ),
        pytest.param("NL", ams(2025, 5, 2, 15), ams(2025, 5, 6, 10, 30), id="5 may 2025 closed"),
        pytest.param(
            PublicHolidays("NL", bevrijdingsdag="open"),
            ams(2025, 5, 2, 15),
            ams(2025, 5, 5, 10, 30),
            id="5 may 2025 open",
        ),
    ],
)
def test_deadlines_follow_the_organisations_holiday_choice(
    choice: PublicHolidays | str, filed: datetime, due: datetime
) -> None:
    assert office(public_holidays=choice).add_business_seconds(filed, 4 * HOUR) == due


def test_bevrijdingsdag_open_keeps_hemelvaartsdag_on_the_same_day_closed() -> None:
    # 5 May 2016 was both Bevrijdingsdag and Hemelvaartsdag.
    calendar = office(public_holidays=PublicHolidays("NL", bevrijdingsdag="open"))
    assert calendar.is_closed_day(date(2016, 5, 5))
    assert not calendar.is_closed_day(date(2017, 5, 5))


def test_other_countries_keep_the_package_holidays() -> None:
    # Karfreitag is a public holiday in Germany; the NL choice does not touch other countries.
    calendar = office(public_holidays="DE")
    assert calendar.is_closed_day(date(2026, 4, 3))
    assert calendar.public_holidays == PublicHolidays("DE")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"country": "BE", "goede_vrijdag": "closed"},
            "goede_vrijdag and bevrijdingsdag are choices about Dutch public holidays; they "
            "need country 'NL', not 'BE'",
            id="choice for another country",
        ),
        pytest.param(
            {"country": "NL", "goede_vrijdag": "dicht"},
            "goede_vrijdag must be 'open' or 'closed', not 'dicht'",
            id="goede vrijdag",
        ),
        pytest.param(
            {"country": "NL", "bevrijdingsdag": "every_year"},
            "bevrijdingsdag must be 'lustrum', 'closed' or 'open', not 'every_year'",
            id="bevrijdingsdag",
        ),
        pytest.param({"country": "XX"}, "unknown holiday country 'XX'", id="country"),
    ],
)
def test_invalid_public_holidays(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        PublicHolidays(**kwargs)  # type: ignore[arg-type]


def test_no_public_holidays() -> None:
    calendar = daily_office(None)
    assert not calendar.is_closed_day(date(2026, 12, 25))
    assert calendar.is_open(ams(2026, 12, 25, 10))


def test_weekday_without_spans_is_closed_day() -> None:
    calendar = office()
    assert calendar.is_closed_day(date(2026, 3, 7))
    assert calendar.is_closed_day(date(2026, 3, 8))
    assert not calendar.is_closed_day(date(2026, 3, 6))


def test_round_trip() -> None:
    rng = random.Random(20260329)
    calendars = [office(), lunch_break(), sunday_night(), around_the_clock()]
    origin = ams(2025, 1, 1)
    for _ in range(2000):
        calendar = rng.choice(calendars)
        start = origin + timedelta(seconds=rng.randrange(3 * 365 * 86400))
        seconds = rng.choice([1, 0.5, 59.25, HOUR, 8.5 * HOUR, 1234.567891]) * rng.randint(1, 300)
        due = calendar.add_business_seconds(start, seconds)
        assert due >= start
        assert calendar.business_seconds_between(start, due) == pytest.approx(seconds, abs=1e-6)
        # Earliest instant: one microsecond earlier has not used up the budget.
        before = calendar.business_seconds_between(start, due - timedelta(microseconds=1))
        assert before < seconds


@pytest.mark.parametrize("seconds", [1.0, 0.25, 3600.0, 30600.0, 86400.0 * 30, 1234.567891])
def test_round_trip_exact(seconds: float) -> None:
    calendar = office()
    start = ams(2026, 3, 6, 16, 12, 7)
    assert (
        calendar.business_seconds_between(start, calendar.add_business_seconds(start, seconds))
        == seconds
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'", id="tz"),
        pytest.param({"timezone": ""}, "unknown time zone ''", id="empty tz"),
        pytest.param({"timezone": "/etc/passwd"}, "unknown time zone", id="path tz"),
        pytest.param(
            {"opening_hours": {0: [Span(time(17), time(8, 30))]}},
            "Monday: span 17:00-08:30 must start before it ends",
            id="reversed span",
        ),
        pytest.param(
            {"opening_hours": {2: [Span(time(9), time(9))]}},
            "Wednesday: span 09:00-09:00 must start before it ends",
            id="empty span",
        ),
        pytest.param(
            {"opening_hours": {4: [Span(time(12), time(17)), Span(time(8, 30), time(12, 30))]}},
            "Friday: spans 08:30-12:30 and 12:00-17:00 overlap",
            id="overlap",
        ),
        pytest.param(
            {"opening_hours": {7: [OFFICE]}},
            "weekday must be 0 (Monday) to 6 (Sunday), got 7",
            id="weekday 7",
        ),
        pytest.param(
            {"opening_hours": {-1: [OFFICE]}},
            "weekday must be 0 (Monday) to 6 (Sunday), got -1",
            id="weekday -1",
        ),
        pytest.param(
            {"opening_hours": {0: [Span(time(8, tzinfo=UTC), time(17))]}},
            "Monday: span times must be local times without tzinfo",
            id="aware span",
        ),
        pytest.param({"public_holidays": "XX"}, "unknown holiday country 'XX'", id="country"),
        pytest.param({"public_holidays": "nl"}, "unknown holiday country 'nl'", id="lowercase"),
        pytest.param(
            {"closed_days": [datetime(2026, 3, 9, tzinfo=UTC)]},
            "closed day must be a date, not a datetime",
            id="closed datetime",
        ),
    ],
)
def test_invalid_construction(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "timezone": "Europe/Amsterdam",
        "opening_hours": {0: [OFFICE]},
        **kwargs,
    }
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        BusinessCalendar(**arguments)  # type: ignore[arg-type]


def test_calendar_without_opening_hours() -> None:
    calendar = BusinessCalendar(timezone="Europe/Amsterdam", opening_hours={})
    assert not calendar.is_open(ams(2026, 3, 9, 10))
    assert calendar.business_seconds_between(ams(2026, 1, 1), ams(2027, 1, 1)) == 0
    assert calendar.is_closed_day(date(2026, 3, 9))
    with pytest.raises(ValueError, match=r"^calendar has no opening hours$"):
        calendar.add_business_seconds(ams(2026, 3, 9, 10), HOUR)
    with pytest.raises(ValueError, match=r"^calendar has no opening hours$"):
        calendar.add_business_seconds(ams(2026, 3, 9, 10), 0)


def test_search_is_bounded_to_ten_years() -> None:
    mondays = [date(2026, 1, 5) + timedelta(weeks=n) for n in range(53 * 12)]
    calendar = BusinessCalendar(
        timezone="Europe/Amsterdam", opening_hours={0: [OFFICE]}, closed_days=mondays
    )
    with pytest.raises(ValueError, match="do not fit within 10 years"):
        calendar.add_business_seconds(ams(2026, 1, 1), HOUR)
    with pytest.raises(ValueError, match="do not fit within 10 years"):
        office().add_business_seconds(ams(2026, 1, 1), 12 * 254 * 8.5 * HOUR)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.is_open(datetime(2026, 3, 9, 10)), id="is_open"),
        pytest.param(
            lambda c: c.business_seconds_between(datetime(2026, 3, 9, 10), ams(2026, 3, 10)),
            id="between start",
        ),
        pytest.param(
            lambda c: c.business_seconds_between(ams(2026, 3, 9), datetime(2026, 3, 10)),
            id="between end",
        ),
        pytest.param(lambda c: c.add_business_seconds(datetime(2026, 3, 9), 1), id="add"),
    ],
)
def test_naive_datetimes_rejected(call: Callable[[BusinessCalendar], object]) -> None:
    with pytest.raises(ValueError, match="must be a timezone-aware datetime"):
        call(office())


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_invalid_seconds_rejected(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds must be a finite number >= 0"):
        office().add_business_seconds(ams(2026, 3, 9, 10), seconds)


def test_is_closed_day_rejects_datetime() -> None:
    with pytest.raises(ValueError, match="takes a date, not a datetime"):
        office().is_closed_day(datetime(2026, 3, 9, tzinfo=UTC))
