"""Moments and business durations in the words a Dutch municipality uses on its pages.

"uiterlijk donderdag 3 december vóór 12:00", "nog 2 werkuur", "35 werkminuten te laat": one way
to say them for the desk, the inbox and the team lead's overview. Names come from tables, not
from the machine's locale (a container rarely has nl_NL installed).
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["LOCAL", "business_left", "day_text", "deadline", "moment"]

# The time zone every page, reference number and answer date is said in.
LOCAL: Final = ZoneInfo("Europe/Amsterdam")

WEEKDAYS: Final = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
MONTHS: Final = (
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
)


def day_text(day: date, today: date) -> str:
    """'vandaag', 'morgen', 'gisteren', else 'donderdag 3 december' (with the year when it is
    not this year's)."""
    offset = (day - today).days
    if offset == 0:
        return "vandaag"
    if offset == 1:
        return "morgen"
    if offset == -1:
        return "gisteren"
    text = f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]}"
    return text if day.year == today.year else f"{text} {day.year}"


def moment(when: datetime, zone: tzinfo, now: datetime) -> str:
    """A point in time as people read it in ``zone``: 'vandaag 14:30', 'donderdag 3 december
    09:05'."""
    local = when.astimezone(zone)
    return f"{day_text(local.date(), now.astimezone(zone).date())} {local:%H:%M}"


def deadline(due: datetime, zone: tzinfo, now: datetime) -> str:
    """When something is due: 'uiterlijk donderdag 3 december vóór 12:00'."""
    local = due.astimezone(zone)
    return f"uiterlijk {day_text(local.date(), now.astimezone(zone).date())} vóór {local:%H:%M}"


def business_left(seconds: float) -> str:
    """Business time left before a deadline ('nog 2 werkuur', 'nog 35 werkminuten'), or past it
    ('3 werkuur te laat'). Hours are whole or halves (rounded down: never promise more time than
    there is); under an hour in whole minutes, at least one."""
    late = seconds < 0
    minutes = max(int(abs(seconds) // 60), 1)
    if minutes < 60:
        amount = f"{minutes} werkminuten" if minutes > 1 else "1 werkminuut"
    else:
        halves = minutes // 30
        whole, half = divmod(halves, 2)
        amount = f"{whole},5 werkuur" if half else f"{whole} werkuur"
    return f"{amount} te laat" if late else f"nog {amount}"
