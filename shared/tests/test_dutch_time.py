from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from kcc_shared.dutch_time import business_left, deadline, moment

AMS = ZoneInfo("Europe/Amsterdam")
# Wednesday 2 December 2026, 10:00 in Amsterdam.
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_a_deadline_names_the_day_and_the_local_time_before_which_it_falls() -> None:
    due = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)  # 12:00 in Amsterdam (winter time)
    assert deadline(due, AMS, NOW) == "uiterlijk morgen vóór 12:00"
    assert deadline(datetime(2026, 12, 10, 15, 30, tzinfo=UTC), AMS, NOW) == (
        "uiterlijk donderdag 10 december vóór 16:30"
    )
    assert deadline(datetime(2027, 1, 4, 7, 30, tzinfo=UTC), AMS, NOW) == (
        "uiterlijk maandag 4 januari 2027 vóór 08:30"
    )


def test_a_moment_is_said_relative_to_today_in_the_departments_time_zone() -> None:
    assert moment(datetime(2026, 12, 2, 13, 14, tzinfo=UTC), AMS, NOW) == "vandaag 14:14"
    # 23:30 UTC on 1 December is already 2 December in Amsterdam.
    assert moment(datetime(2026, 12, 1, 23, 30, tzinfo=UTC), AMS, NOW) == "vandaag 00:30"
    assert moment(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), AMS, NOW) == "gisteren 13:00"
    # Summer time: +2 hours.
    assert moment(datetime(2026, 7, 1, 8, 0, tzinfo=UTC), AMS, NOW) == "woensdag 1 juli 10:00"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (2 * 3600, "nog 2 werkuur"),
        (2 * 3600 + 29 * 60, "nog 2 werkuur"),
        (2 * 3600 + 30 * 60, "nog 2,5 werkuur"),
        (3599, "nog 59 werkminuten"),
        (60, "nog 1 werkminuut"),
        (20, "nog 1 werkminuut"),
        (0, "nog 1 werkminuut"),
        (-35 * 60, "35 werkminuten te laat"),
        (-3 * 3600, "3 werkuur te laat"),
    ],
)
def test_business_time_left_is_rounded_down_and_says_when_it_is_late(
    seconds: float, text: str
) -> None:
    assert business_left(seconds) == text
