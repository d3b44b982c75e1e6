"""Business-time calendar: opening hours, public holidays and business seconds across DST."""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

__all__ = [
    "BEVRIJDINGSDAG_CHOICES",
    "GOEDE_VRIJDAG_CHOICES",
    "Bevrijdingsdag",
    "BusinessCalendar",
    "GoedeVrijdag",
    "PublicHolidays",
    "Span",
]

GoedeVrijdag = Literal["open", "closed"]
Bevrijdingsdag = Literal["lustrum", "closed", "open"]
GOEDE_VRIJDAG_CHOICES: Final[tuple[GoedeVrijdag, ...]] = ("open", "closed")
BEVRIJDINGSDAG_CHOICES: Final[tuple[Bevrijdingsdag, ...]] = ("lustrum", "closed", "open")
# The names the holidays package gives these two days in Dutch (holidays 0.109, language "nl");
# test_calendar.py fails when an upgrade renames them.
_GOEDE_VRIJDAG: Final = "Goede vrijdag"
_BEVRIJDINGSDAG: Final = "Bevrijdingsdag"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_US_PER_SECOND = 1_000_000
_ONE_DAY = dt.timedelta(days=1)
_MIDNIGHT = dt.time(0)
# add_business_seconds gives up after this many calendar years past the start's year, so a
# calendar whose opening hours are all cancelled by closed days cannot loop forever.
_MAX_SEARCH_YEARS = 10
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Span:
    """An opening span within one local day, ``start < end``.

    Times are local wall-clock times without tzinfo. Because ``datetime.time`` cannot express
    24:00, an ``end`` of ``datetime.time.max`` (23:59:59.999999) means "until midnight".
    """

    start: dt.time
    end: dt.time


@dataclass(frozen=True)
class PublicHolidays:
    """Which public holidays of ``country`` (a ``holidays`` package country code) close a
    calendar.

    Every holiday in the package's default "public" category closes it, except two days on
    which Dutch municipalities differ, so for ``country="NL"`` the organisation chooses:

    * ``goede_vrijdag``: ``"open"`` (the default; most municipalities work on Good Friday, and
      the Algemene termijnenwet does not list it) or ``"closed"``.
    * ``bevrijdingsdag`` (5 May): ``"lustrum"`` (the default: closed in 2025, 2030, ... only, as
      many collective agreements have it), ``"closed"`` (every year) or ``"open"`` (never
      closed).

    For other countries both choices must stay ``None``: they are about Dutch holidays.
    """

    country: str
    goede_vrijdag: GoedeVrijdag | None = None
    bevrijdingsdag: Bevrijdingsdag | None = None

    def __post_init__(self) -> None:
        if self.country not in holidays.list_supported_countries():
            raise ValueError(
                f"unknown holiday country {self.country!r} "
                "(expected a country code such as 'NL', or None for no public holidays)"
            )
        if self.country != "NL" and (
            self.goede_vrijdag is not None or self.bevrijdingsdag is not None
        ):
            raise ValueError(
                "goede_vrijdag and bevrijdingsdag are choices about Dutch public holidays; "
                f"they need country 'NL', not {self.country!r}"
            )
        if self.goede_vrijdag not in (None, *GOEDE_VRIJDAG_CHOICES):
            raise ValueError(
                f"goede_vrijdag must be 'open' or 'closed', not {self.goede_vrijdag!r}"
            )
        if self.bevrijdingsdag not in (None, *BEVRIJDINGSDAG_CHOICES):
            raise ValueError(
                f"bevrijdingsdag must be 'lustrum', 'closed' or 'open', not {self.bevrijdingsdag!r}"
            )

    def dates(self, year: int) -> frozenset[dt.date]:
        """The local dates in ``year`` on which these holidays close the calendar."""
        if self.country != "NL":
            return frozenset(holidays.country_holidays(self.country, years=year).keys())
        public = holidays.country_holidays("NL", years=year, language="nl")
        # The package lists Bevrijdingsdag as public only in lustrum years; every year it is in
        # the "optional" category.
        every_may_5 = holidays.country_holidays(
            "NL", years=year, language="nl", categories=("optional",)
        )
        bevrijdingsdag = self.bevrijdingsdag or "lustrum"
        closes = {
            _GOEDE_VRIJDAG: self.goede_vrijdag == "closed",
            _BEVRIJDINGSDAG: bevrijdingsdag != "open",
        }
        days = {
            day
            for day in public
            # A day stays closed when any holiday on it closes it: 5 May 2016 was also
            # Hemelvaartsdag.
            if any(closes.get(name, True) for name in public.get_list(day))
        }
        if bevrijdingsdag == "closed":
            days.update(day for day in every_may_5 if _BEVRIJDINGSDAG in every_may_5.get_list(day))
        return frozenset(days)


@dataclass(frozen=True)
class _YearIndex:
    """The opening intervals of one local calendar year, in UTC microseconds, with prefix sums."""

    starts: list[int]
    ends: list[int]
    # cum[i] is the business time in intervals 0..i-1, so cum[-1] is the year's total.
    cum: list[int]

    @property
    def total(self) -> int:
        return self.cum[-1]

    def elapsed_before(self, instant: int) -> int:
        """Business microseconds in this year before ``instant``."""
        k = bisect.bisect_right(self.starts, instant)
        if k == 0:
            return 0
        return self.cum[k - 1] + min(instant, self.ends[k - 1]) - self.starts[k - 1]

    def instant_at(self, target: int) -> int:
        """Earliest instant at which ``target`` business microseconds (0 < target <= total) of
        this year have elapsed."""
        # Intervals have positive length, so cum is strictly increasing and
        # cum[i] < target <= cum[i + 1] picks exactly one interval.
        i = bisect.bisect_left(self.cum, target) - 1
        return self.starts[i] + target - self.cum[i]


class BusinessCalendar:
    """Opening hours in one time zone, minus public holidays and extra closed days.

    Rules and choices:

    * All datetimes passed in must be timezone-aware (naive ones raise ``ValueError``); they are
      converted to the calendar's zone to compare with the local opening hours.
      ``add_business_seconds`` returns an aware UTC datetime.
    * Spans are half-open: open at ``start``, closed at ``end``.
    * Each local span boundary is converted to a real instant per day, so a span over a DST
      switch counts the real elapsed time (00:00-06:00 is 5 h on the spring-forward Sunday and 7 h
      on the fall-back Sunday in Europe/Amsterdam).
    * A boundary in a non-existent local hour (the spring-forward gap) is moved to the instant
      the clock jumps (02:30 on 29 March 2026 becomes 03:00 CEST), the first moment the wall
      clock has passed it. A boundary in a repeated hour (fall-back) uses its first occurrence.
    * ``public_holidays`` is a :class:`PublicHolidays` choice, a country code for the
      ``holidays`` package (short for ``PublicHolidays(country)``, the defaults), or ``None``
      for none. For "NL" (holidays 0.109) the defaults close on: Nieuwjaarsdag, Eerste and
      Tweede Paasdag, Koningsdag (27 April, or Saturday 26 April when the 27th is a Sunday),
      Bevrijdingsdag (5 May) only in lustrum years (2025, 2030, ...), Hemelvaartsdag, Eerste and
      Tweede Pinksterdag, Eerste and Tweede Kerstdag; Goede Vrijdag stays open. The package
      lists Goede Vrijdag as public; the default leaves it open because most municipalities
      work that day (``PublicHolidays("NL", goede_vrijdag="closed")`` closes it).
    """

    def __init__(
        self,
        *,
        timezone: str,
        opening_hours: Mapping[int, Sequence[Span]],
        closed_days: Iterable[dt.date] = (),
        public_holidays: PublicHolidays | str | None = "NL",
    ) -> None:
        try:
            self._tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {timezone!r}") from None

        hours: list[tuple[Span, ...]] = [()] * 7
        for weekday, spans in opening_hours.items():
            if isinstance(weekday, bool) or weekday not in range(7):
                raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {weekday!r}")
            hours[weekday] = _checked_spans(_WEEKDAYS[weekday], spans)
        self._hours = tuple(hours)
        self._has_hours = any(self._hours)

        days: set[dt.date] = set()
        for day in closed_days:
            # A datetime is a date too, but would never compare equal to the dates looked up.
            if isinstance(day, dt.datetime):
                raise ValueError(f"closed day must be a date, not a datetime: {day!r}")
            days.add(day)
        self._closed_days = frozenset(days)

        if isinstance(public_holidays, str):
            public_holidays = PublicHolidays(public_holidays)
        self._public_holidays = public_holidays

        # Both caches only grow by one entry per calendar year touched; a lost race between
        # threads merely computes the same immutable value twice.
        self._holiday_cache: dict[int, frozenset[dt.date]] = {}
        self._year_cache: dict[int, _YearIndex] = {}

    @property
    def public_holidays(self) -> PublicHolidays | None:
        """The public holidays this calendar closes on (``None``: none)."""
        return self._public_holidays

    def is_open(self, moment: dt.datetime) -> bool:
        """Whether the calendar is open at ``moment`` (timezone-aware)."""
        instant = _to_us(moment, "moment")
        index = self._year(moment.astimezone(self._tz).year)
        k = bisect.bisect_right(index.starts, instant)
        return k > 0 and instant < index.ends[k - 1]

    def business_seconds_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Business seconds in ``[start, end)``; 0 if ``end <= start``."""
        a = _to_us(start, "start")
        b = _to_us(end, "end")
        if b <= a:
            return 0.0
        first = start.astimezone(self._tz).year
        last = end.astimezone(self._tz).year
        if first == last:
            index = self._year(first)
            return (index.elapsed_before(b) - index.elapsed_before(a)) / _US_PER_SECOND
        first_index = self._year(first)
        total = first_index.total - first_index.elapsed_before(a)
        total += sum(self._year(year).total for year in range(first + 1, last))
        total += self._year(last).elapsed_before(b)
        return total / _US_PER_SECOND

    def add_business_seconds(self, start: dt.datetime, seconds: float) -> dt.datetime:
        """The earliest instant (aware, UTC) at which ``seconds`` business seconds have elapsed
        since ``start``.

        For a due time this means: ``seconds == 0`` returns ``start`` itself even outside
        business hours (nothing has to elapse, so it is due at once), and a budget that runs out
        exactly at closing time is due at closing time, not at the next opening. Precision is
        one microsecond. Raises ``ValueError`` for negative or non-finite ``seconds``, for a
        calendar without opening hours, and when the time does not fit within ten calendar years
        after the start's year.
        """
        instant = _to_us(start, "start")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        if not self._has_hours:
            raise ValueError("calendar has no opening hours")
        remaining = round(seconds * _US_PER_SECOND)
        if remaining == 0:
            return start.astimezone(dt.UTC)

        year = start.astimezone(self._tz).year
        index = self._year(year)
        target = index.elapsed_before(instant) + remaining
        while target > index.total:
            target -= index.total
            year += 1
            if year > start.astimezone(self._tz).year + _MAX_SEARCH_YEARS or year >= dt.MAXYEAR:
                raise ValueError(
                    f"{seconds} business seconds after {start.isoformat()} do not fit within "
                    f"{_MAX_SEARCH_YEARS} years of this calendar"
                )
            index = self._year(year)
        return _EPOCH + index.instant_at(target) * _US

    def is_closed_day(self, day: dt.date) -> bool:
        """Whether ``day`` (a local date) is a public holiday, an extra closed day or a weekday
        without opening spans."""
        if isinstance(day, dt.datetime):
            raise ValueError(f"is_closed_day takes a date, not a datetime: {day!r}")
        return (
            not self._hours[day.weekday()]
            or day in self._closed_days
            or day in self._holidays(day.year)
        )

    def _holidays(self, year: int) -> frozenset[dt.date]:
        cached = self._holiday_cache.get(year)
        if cached is None:
            cached = frozenset()
            if self._public_holidays is not None:
                cached = self._public_holidays.dates(year)
            self._holiday_cache[year] = cached
        return cached

    def _year(self, year: int) -> _YearIndex:
        cached = self._year_cache.get(year)
        if cached is None:
            cached = self._build_year(year)
            self._year_cache[year] = cached
        return cached

    def _build_year(self, year: int) -> _YearIndex:
        # One pass per year turns every open span into UTC instants with prefix sums, so each
        # later call is a couple of binary searches instead of a walk over days.
        starts: list[int] = []
        ends: list[int] = []
        cum = [0]
        day = dt.date(year, 1, 1)
        while day.year == year:
            if not self.is_closed_day(day):
                for span in self._hours[day.weekday()]:
                    begin = self._local_to_us(day, span.start)
                    if span.end == dt.time.max:
                        finish = self._local_to_us(day + _ONE_DAY, _MIDNIGHT)
                    else:
                        finish = self._local_to_us(day, span.end)
                    # Empty when both boundaries fall in the same DST gap.
                    if finish > begin:
                        starts.append(begin)
                        ends.append(finish)
                        cum.append(cum[-1] + finish - begin)
            if day == dt.date.max:
                break
            day += _ONE_DAY
        return _YearIndex(starts, ends, cum)

    def _local_to_us(self, day: dt.date, wall: dt.time) -> int:
        """The instant (UTC microseconds) at which the local clock shows ``wall`` on ``day``."""
        naive = dt.datetime.combine(day, wall.replace(fold=0))
        # fold=0: in a repeated hour this is the first occurrence.
        local = naive.replace(tzinfo=self._tz)
        instant = (local - _EPOCH) // _US
        if local.utcoffset() == local.replace(fold=1).utcoffset():
            return instant
        if local.astimezone(dt.UTC).astimezone(self._tz).replace(tzinfo=None) == naive:
            return instant  # repeated hour, not a gap
        return self._gap_end(local)

    def _gap_end(self, local: dt.datetime) -> int:
        """The instant the clock jumps over the gap that the non-existent ``local`` lies in."""
        # For a time in a gap, fold=0 uses the offset before the switch and fold=1 the one after
        # (PEP 495), which brackets the switch: earlier < switch <= later.
        before = local.utcoffset()
        after = local.replace(fold=1).utcoffset()
        assert before is not None
        assert after is not None
        naive = local.replace(tzinfo=None)
        earlier = math.floor((naive - after - _EPOCH.replace(tzinfo=None)).total_seconds())
        later = math.ceil((naive - before - _EPOCH.replace(tzinfo=None)).total_seconds())
        # tz database switches happen on whole seconds; this bisection runs only for span
        # boundaries inside a gap, at most once per day per boundary thanks to the year cache.
        while later - earlier > 1:
            middle = (earlier + later) // 2
            if dt.datetime.fromtimestamp(middle, self._tz).utcoffset() == before:
                earlier = middle
            else:
                later = middle
        return later * _US_PER_SECOND


def _checked_spans(weekday: str, spans: Sequence[Span]) -> tuple[Span, ...]:
    for span in spans:
        if span.start.tzinfo is not None or span.end.tzinfo is not None:
            raise ValueError(f"{weekday}: span times must be local times without tzinfo")
        if span.start >= span.end:
            raise ValueError(
                f"{weekday}: span {span.start:%H:%M}-{span.end:%H:%M} must start before it ends"
            )
    ordered = tuple(sorted(spans, key=lambda span: span.start))
    for previous, current in itertools.pairwise(ordered):
        if current.start < previous.end:
            raise ValueError(
                f"{weekday}: spans {previous.start:%H:%M}-{previous.end:%H:%M} and "
                f"{current.start:%H:%M}-{current.end:%H:%M} overlap"
            )
    return ordered


def _to_us(moment: dt.datetime, name: str) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {moment!r}")
    return (moment - _EPOCH) // _US
