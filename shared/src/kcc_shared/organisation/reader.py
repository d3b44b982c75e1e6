"""Reading an organisation file: YAML checked field by field, every problem with its line."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import itertools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kcc_shared.calendar import (
    BEVRIJDINGSDAG_CHOICES,
    GOEDE_VRIJDAG_CHOICES,
    Bevrijdingsdag,
    BusinessCalendar,
    GoedeVrijdag,
    PublicHolidays,
    Span,
)
from kcc_shared.organisation.model import (
    DEFAULT_REUSE_SHELF_LIFE_DAYS,
    DEFAULT_WARNING_RATIO,
    PRIORITIES,
    PRIORITY_BY_NAME,
    WEEKDAYS,
    Category,
    Department,
    Organisation,
    Priority,
    PriorityChange,
    RuleSpec,
    SlaTarget,
)

__all__ = [
    "OrganisationError",
    "Problem",
    "format_duration",
    "load_organisation",
    "parse_duration",
]

_GOEDE_VRIJDAG: Final[Mapping[str, GoedeVrijdag]] = {c: c for c in GOEDE_VRIJDAG_CHOICES}
_BEVRIJDINGSDAG: Final[Mapping[str, Bevrijdingsdag]] = {c: c for c in BEVRIJDINGSDAG_CHOICES}
# At most ten years: beyond that "never expires" is meant, which this setting deliberately
# cannot say.
REUSE_SHELF_LIFE_MAX_DAYS: Final = 3650
SUPPORTED_VERSION: Final = 1

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SPAN = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_DURATION = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
_DAYS_OR_WEEKS = re.compile(r"\d+(?:[.,]\d+)?\s*(?:d|w|days?|weeks?|dagen|dag|weken|wk)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_NULL_TAG: Final = "tag:yaml.org,2002:null"
_C = TypeVar("_C", bound=str)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an organisation file; ``line`` is None for whole-file problems."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        line = "" if self.line is None else f"{self.line}:"
        return f"{self.file}:{line} {self.message}"


class OrganisationError(ValueError):
    """The organisation file is unusable; ``problems`` lists everything found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def parse_duration(text: str) -> int:
    """Seconds in a business duration such as ``30m``, ``4h``, ``1h30m`` or ``90s``.

    Raises ValueError with a message meant for the person who wrote it.
    """
    value = text.strip()
    if _DAYS_OR_WEEKS.fullmatch(value.lower()):
        raise ValueError(
            f"duration {text!r}: days and weeks are ambiguous in business time (a business day "
            "is not 24 hours); write hours instead, e.g. 16h for two days of 8 hours"
        )
    if value.isdigit():
        raise ValueError(f"duration {text!r} has no unit; write e.g. {value}m, {value}s or 4h")
    match = _DURATION.fullmatch(value)
    if not value or match is None:
        raise ValueError(f"bad duration {text!r}; use h, m and s, e.g. 30m, 4h, 1h30m or 90s")
    seconds = int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    return seconds


def format_duration(seconds: int) -> str:
    """The inverse of parse_duration, e.g. 5400 -> ``1h30m``."""
    if seconds <= 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)


def load_organisation(path: str | Path | None = None) -> Organisation:
    """Read and validate an organisation file; None reads the packaged default.

    Raises OrganisationError listing every problem found, each with file and line.
    """
    # The packaged default stays beside the package (kcc_shared/organisation.yaml): Compose,
    # Kubernetes and the docs name that path.
    file = resources.files("kcc_shared") / "organisation.yaml" if path is None else Path(path)
    source = str(file if path is None else path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise OrganisationError([Problem(source, None, _os_message(exc))]) from None
    return _parse(raw, source)


def _os_message(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a file"
    if isinstance(exc, PermissionError):
        return "cannot read the file: permission denied"
    return f"cannot read the file: {exc.strerror or exc}"


def _parse(raw: bytes, source: str) -> Organisation:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = raw[: exc.start].count(b"\n") + 1
        raise OrganisationError([Problem(source, bad_line, "the file is not UTF-8 text")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        mark_line = mark.line + 1 if mark is not None else None
        detail = exc.problem or "invalid YAML"
        if exc.context:
            context = exc.context
            if exc.context_mark is not None and exc.context_mark.line + 1 != mark_line:
                context = f"{context} that starts at line {exc.context_mark.line + 1}"
            detail = f"{detail} ({context})"
        raise OrganisationError(
            [Problem(source, mark_line, f"YAML syntax error: {detail}")]
        ) from None
    except yaml.YAMLError as exc:
        raise OrganisationError([Problem(source, None, f"YAML error: {exc}")]) from None
    if root is None:
        raise OrganisationError([Problem(source, None, "the file is empty")])

    reader = _Reader(source)
    organisation = reader.read(root, version=hashlib.sha256(raw).hexdigest()[:12])
    if reader.problems or organisation is None:
        raise OrganisationError(sorted(reader.problems, key=lambda p: p.line or 0))
    return organisation


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == _NULL_TAG:
        return "empty"
    return f"{node.value!r}"


class _Reader:
    """Walks the composed YAML nodes, keeping every problem with its line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def report(self, node: Node | None, message: str) -> None:
        self.problems.append(
            Problem(self.source, _line(node) if node is not None else None, message)
        )

    # -- generic shapes -------------------------------------------------------------------

    def fields(
        self,
        node: Node,
        what: str,
        required: Sequence[str],
        optional: Sequence[str] = (),
    ) -> dict[str, Node] | None:
        """A mapping with known field names; reports unknown, duplicate and missing fields."""
        entries = self.entries(node, what, allowed=(*required, *optional))
        if entries is None:
            return None
        found = {key: value_node for key, _, value_node in entries}
        for name in required:
            if name not in found:
                self.report(node, f"{what}: missing required field '{name}'")
        return found

    def entries(
        self, node: Node, what: str, allowed: Sequence[str] | None = None
    ) -> list[tuple[str, Node, Node]] | None:
        """A mapping's keys (calendar names, weekdays) with their values, each key once; with
        ``allowed``, a mapping of fields with those names only."""
        noun = "field" if allowed is not None else "name"
        if not isinstance(node, MappingNode):
            self.report(node, f"{what} must be a mapping ({noun}: value), not {_describe(node)}")
            return None
        field = "field " if allowed is not None else ""
        result: list[tuple[str, Node, Node]] = []
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.report(key_node, f"{what}: {field}names must be plain words")
                continue
            key = str(key_node.value)
            if allowed is not None and key == "<<":
                self.report(
                    key_node,
                    f"{what}: merge keys (<<) are not supported; "
                    "use an alias for the whole value instead (sla: *standaard)",
                )
                continue
            if key in seen:
                self.report(
                    key_node, f"{what}: duplicate {field}'{key}' (first at line {seen[key]})"
                )
                continue
            seen[key] = _line(key_node)
            if allowed is not None and key not in allowed:
                self.report(key_node, f"{what}: unknown field '{key}'{_did_you_mean(key, allowed)}")
                continue
            result.append((key, key_node, value_node))
        return result

    def items(self, node: Node, what: str, example: str) -> list[Node]:
        if isinstance(node, ScalarNode) and node.tag == _NULL_TAG:
            return []
        if not isinstance(node, SequenceNode):
            self.report(node, f"{what} must be a list, e.g. {example}, not {_describe(node)}")
            return []
        return list(node.value)

    def text(self, node: Node | None, what: str) -> str | None:
        """A field's text; None for a missing field, which ``fields`` reported if required."""
        if node is None:
            return None
        if not isinstance(node, ScalarNode):
            self.report(node, f"{what} must be a single value, not {_describe(node)}")
            return None
        if node.tag == _NULL_TAG or not str(node.value).strip():
            self.report(node, f"{what} is empty")
            return None
        return str(node.value).strip()

    def reference(
        self, node: Node | None, owner: str, field: str | None, kind: str, known: Iterable[str]
    ) -> str | None:
        """`owner`'s `field`, a name that must be one of `known` (a department, a calendar)."""
        value = self.text(node, f"{owner}: {field}" if field else owner)
        if value is not None and value not in known:
            self.report(node, f"{owner}: unknown {kind} '{value}'{_did_you_mean(value, known)}")
            return None
        return value

    def identifier(self, node: Node, what: str) -> str | None:
        value = self.text(node, what)
        if value is not None and not _ID.fullmatch(value):
            self.report(
                node,
                f"{what} '{value}' is not a valid id: use lowercase letters, digits and single "
                "hyphens, e.g. sociaal-domein",
            )
            return None
        return value

    def strings(self, node: Node, what: str, example: str) -> list[tuple[str, Node]]:
        items = self.items(node, what, example)
        values = ((self.text(item, f"an entry in {what}"), item) for item in items)
        return [(value, item) for value, item in values if value is not None]

    def listed(
        self,
        node: Node | None,
        kind: str,
        plural: str,
        example: str,
        required: Sequence[str],
        optional: Sequence[str] = (),
        at_least_one: bool = False,
    ) -> Iterator[tuple[str, Node, dict[str, Node]]]:
        """The entries of a list of things with an id (departments, categories, rules): each
        with its id and fields, once per id; reports the problems of the list and its ids."""
        if node is None:
            return
        items = self.items(node, plural, example)
        if at_least_one and not items:
            self.report(node, f"{plural}: define at least one {kind}")
        seen: dict[str, int] = {}
        for index, item in enumerate(items, start=1):
            fields = self.fields(item, _name_for(item, kind, index), required, optional)
            if fields is None or "id" not in fields:
                continue
            item_id = self.identifier(fields["id"], f"{kind} id")
            if item_id is None:
                continue
            if item_id in seen:
                self.report(
                    fields["id"],
                    f"duplicate {kind} id '{item_id}' (first at line {seen[item_id]})",
                )
                continue
            seen[item_id] = _line(fields["id"])
            yield item_id, item, fields

    # -- the file ---------------------------------------------------------------------------

    def read(self, root: Node, version: str) -> Organisation | None:
        top = self.fields(
            root,
            "the file",
            required=("version", "organisation", "calendars", "departments", "fallback_department"),
            optional=("categories", "rules", "examples"),
        )
        if top is None:
            return None

        examples = self.text(top.get("examples"), "examples")
        examples_file = Path(self.source).parent / examples if examples is not None else None

        version_text = self.text(top.get("version"), "version")
        if version_text is not None and version_text != str(SUPPORTED_VERSION):
            self.report(
                top["version"],
                f"unsupported file version '{version_text}'; this release reads version "
                f"{SUPPORTED_VERSION}",
            )

        organisation = None
        if "organisation" in top:
            organisation = self.fields(top["organisation"], "organisation", required=("name",))
        name = self.text((organisation or {}).get("name"), "organisation name")

        calendar_names: set[str] = set()
        calendars: dict[str, BusinessCalendar] = {}
        if "calendars" in top:
            entries = self.entries(top["calendars"], "calendars")
            if entries == []:
                self.report(top["calendars"], "calendars: define at least one calendar")
            for cal_id, key_node, value_node in entries or ():
                if not _ID.fullmatch(cal_id):
                    self.report(
                        key_node,
                        f"calendar name '{cal_id}' is not a valid id: use lowercase letters, "
                        "digits and single hyphens",
                    )
                    continue
                calendar_names.add(cal_id)
                calendar = self.calendar(cal_id, value_node)
                if calendar is not None:
                    calendars[cal_id] = calendar

        departments = self.departments(top.get("departments"), calendar_names)
        department_ids = {d_id for d_id, _ in departments}

        categories = self.categories(top.get("categories"), department_ids)

        fallback = self.reference(
            top.get("fallback_department"),
            "fallback_department",
            None,
            "department",
            department_ids,
        )

        rules = self.rules(top.get("rules"), department_ids, categories)

        if self.problems or name is None or fallback is None:
            return None
        return Organisation(
            name=name,
            version=version,
            source=self.source,
            calendars=MappingProxyType(calendars),
            departments=MappingProxyType({d_id: d for d_id, d in departments if d is not None}),
            categories=MappingProxyType(categories),
            fallback_department=fallback,
            examples_file=examples_file,
            rules=tuple(rules),
        )

    # -- calendars --------------------------------------------------------------------------

    def calendar(self, cal_id: str, node: Node) -> BusinessCalendar | None:
        what = f"calendar '{cal_id}'"
        fields = self.fields(
            node,
            what,
            required=("timezone", "opening_hours"),
            optional=("public_holidays", "closed_days"),
        )
        if fields is None:
            return None
        before = len(self.problems)

        timezone = self.text(fields.get("timezone"), f"{what}: timezone")
        if timezone is not None and not _is_time_zone(timezone):
            self.report(
                fields["timezone"],
                f"{what}: unknown time zone '{timezone}'; use an IANA name such as "
                "Europe/Amsterdam",
            )

        public_holidays: PublicHolidays | None = PublicHolidays("NL")
        if "public_holidays" in fields:
            public_holidays = self.public_holidays(fields["public_holidays"], what)

        opening_hours: dict[int, list[Span]] = {}
        if "opening_hours" in fields:
            opening_hours = self.opening_hours(fields["opening_hours"], what)
            if len(self.problems) == before and not any(opening_hours.values()):
                self.report(
                    fields["opening_hours"],
                    f"{what}: no opening hours at all; clocks on this calendar would never run",
                )

        closed_days: list[dt.date] = []
        for value, item in self.strings(
            fields.get("closed_days", _EMPTY), f"{what}: closed_days", "[2026-12-24, 2026-12-31]"
        ):
            try:
                closed_days.append(dt.date.fromisoformat(value))
            except ValueError:
                self.report(item, f"{what}: bad date '{value}' in closed_days; write YYYY-MM-DD")

        if len(self.problems) != before or timezone is None:
            return None
        try:
            return BusinessCalendar(
                timezone=timezone,
                opening_hours=opening_hours,
                closed_days=closed_days,
                public_holidays=public_holidays,
            )
        except ValueError as exc:
            self.report(node, f"{what}: {exc}")
            return None

    def public_holidays(self, node: Node, what: str) -> PublicHolidays | None:
        """`public_holidays: NL` (the defaults), `null` (none), or the long form
        `{country: NL, goede_vrijdag: open|closed, bevrijdingsdag: lustrum|closed|open}`."""
        if isinstance(node, ScalarNode) and node.tag == _NULL_TAG:
            return None
        if isinstance(node, ScalarNode):
            country = self.country(node, what, "public_holidays")
            return PublicHolidays(country) if country is not None else None
        if not isinstance(node, MappingNode):
            self.report(
                node,
                f"{what}: public_holidays must be a country code (NL), null, or a mapping such "
                "as {country: NL, goede_vrijdag: closed}, not " + _describe(node),
            )
            return None
        fields = self.fields(
            node,
            f"{what}: public_holidays",
            required=("country",),
            optional=("goede_vrijdag", "bevrijdingsdag"),
        )
        if fields is None:
            return None
        before = len(self.problems)
        country = self.country(fields.get("country"), what, "public_holidays: country")
        goede_vrijdag = self.choice(
            fields.get("goede_vrijdag"),
            f"{what}: public_holidays: goede_vrijdag",
            _GOEDE_VRIJDAG,
            "open (the default: a working day) or closed",
        )
        bevrijdingsdag = self.choice(
            fields.get("bevrijdingsdag"),
            f"{what}: public_holidays: bevrijdingsdag",
            _BEVRIJDINGSDAG,
            "lustrum (the default: closed in 2025, 2030, ... only), closed (every year) "
            "or open (never closed)",
        )
        if country is not None and country != "NL":
            for name in ("goede_vrijdag", "bevrijdingsdag"):
                if name in fields:
                    self.report(
                        fields[name],
                        f"{what}: public_holidays: {name} is a choice about Dutch public "
                        f"holidays; it needs country: NL, not '{country}'",
                    )
        if len(self.problems) != before or country is None:
            return None
        return PublicHolidays(country, goede_vrijdag=goede_vrijdag, bevrijdingsdag=bevrijdingsdag)

    def choice(
        self, node: Node | None, what: str, choices: Mapping[str, _C], meaning: str
    ) -> _C | None:
        """One of a few words, e.g. open or closed."""
        value = self.text(node, what)
        if value is None:
            return None
        if value not in choices:
            self.report(node, f"{what}: unknown choice '{value}'; write {meaning}")
            return None
        return choices[value]

    def country(self, node: Node | None, what: str, field: str) -> str | None:
        # Note: the raw text is used on purpose: YAML 1.1 would read NO (Norway) as false.
        value = self.text(node, f"{what}: {field}")
        if value is None:
            return None
        if value not in holidays.list_supported_countries():
            self.report(
                node,
                f"{what}: unknown public holiday country '{value}'; use a country code such as "
                "NL, or null for no public holidays",
            )
            return None
        return value

    def opening_hours(self, node: Node, what: str) -> dict[int, list[Span]]:
        hours: dict[int, list[Span]] = {}
        for day, key_node, value_node in self.entries(node, f"{what}: opening_hours") or ():
            if day not in WEEKDAYS:
                self.report(
                    key_node,
                    f"{what}: unknown weekday '{day}'{_did_you_mean(day, WEEKDAYS)}; use "
                    "monday ... sunday (English, lowercase)",
                )
                continue
            # A single span may be written without brackets.
            if isinstance(value_node, ScalarNode) and value_node.tag != _NULL_TAG:
                span_nodes: list[Node] = [value_node]
            else:
                span_nodes = self.items(value_node, f"{what}: {day}", '["08:30-17:00"]')
            spans: list[tuple[Span, Node]] = []
            for span_node in span_nodes:
                span = self.span(span_node, f"{what}: {day}")
                if span is not None:
                    spans.append((span, span_node))
            spans.sort(key=lambda pair: pair[0].start)
            for (earlier, _), (later, later_node) in itertools.pairwise(spans):
                if later.start < earlier.end:
                    self.report(
                        later_node,
                        f"{what}: {day}: spans {_span_text(earlier)} and {_span_text(later)} "
                        "overlap",
                    )
            hours[WEEKDAYS.index(day)] = [span for span, _ in spans]
        return hours

    def span(self, node: Node, what: str) -> Span | None:
        if not isinstance(node, ScalarNode):
            self.report(node, f'{what}: a span must be text like "08:30-17:00"')
            return None
        value = str(node.value)
        match = _SPAN.fullmatch(value)
        if match is None:
            self.report(
                node, f"{what}: bad time span '{value}'; write HH:MM-HH:MM, e.g. 08:30-17:00"
            )
            return None
        sh, sm, eh, em = (int(g) for g in match.groups())
        if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em != 0):
            self.report(node, f"{what}: bad time span '{value}': no such time of day")
            return None
        start = dt.time(sh, sm)
        # datetime.time cannot say 24:00; the calendar reads time.max as "until midnight".
        end = dt.time.max if eh == 24 else dt.time(eh, em)
        if end <= start:
            self.report(node, f"{what}: bad time span '{value}': it must end after it starts")
            return None
        return Span(start, end)

    # -- departments ------------------------------------------------------------------------

    def departments(
        self, node: Node | None, calendar_names: set[str]
    ) -> list[tuple[str, Department | None]]:
        return [
            (dept_id, self.department(dept_id, fields, calendar_names))
            for dept_id, _, fields in self.listed(
                node,
                "department",
                "departments",
                "[{id: burgerzaken, ...}]",
                required=("id", "name", "calendar", "sla"),
                optional=("warning_at", "reuse_shelf_life_days"),
                at_least_one=True,
            )
        ]

    def department(
        self, dept_id: str, fields: dict[str, Node], calendar_names: set[str]
    ) -> Department | None:
        what = f"department '{dept_id}'"
        before = len(self.problems)
        name = self.text(fields.get("name"), f"{what}: name")
        calendar = self.reference(
            fields.get("calendar"), what, "calendar", "calendar", calendar_names
        )
        warning_ratio = self.percentage(fields.get("warning_at"), f"{what}: warning_at")
        shelf_life = self.days(
            fields.get("reuse_shelf_life_days"), f"{what}: reuse_shelf_life_days"
        )
        sla = self.sla(fields["sla"], what) if "sla" in fields else {}
        if len(self.problems) != before or name is None or calendar is None:
            return None
        return Department(
            id=dept_id,
            name=name,
            calendar=calendar,
            warning_ratio=warning_ratio,
            sla=MappingProxyType(sla),
            reuse_shelf_life_days=shelf_life,
        )

    def days(self, node: Node | None, what: str) -> int:
        value = self.text(node, what)
        if value is None:
            return DEFAULT_REUSE_SHELF_LIFE_DAYS
        if not value.isdigit() or not 1 <= int(value) <= REUSE_SHELF_LIFE_MAX_DAYS:
            self.report(
                node,
                f"{what} must be a whole number of days from 1 to {REUSE_SHELF_LIFE_MAX_DAYS}, "
                f"e.g. {DEFAULT_REUSE_SHELF_LIFE_DAYS}, not '{value}'",
            )
            return DEFAULT_REUSE_SHELF_LIFE_DAYS
        return int(value)

    def percentage(self, node: Node | None, what: str) -> float:
        value = self.text(node, what)
        if value is None:
            return DEFAULT_WARNING_RATIO
        match = _PERCENT.fullmatch(value)
        percent = float(match[1]) if match else None
        if percent is None or not 1 <= percent <= 99:
            self.report(
                node, f"{what} must be a percentage from 1% to 99%, e.g. 80%, not '{value}'"
            )
            return DEFAULT_WARNING_RATIO
        return percent / 100

    def sla(self, node: Node, what: str) -> dict[Priority, SlaTarget]:
        fields = self.fields(node, f"{what}: sla", required=PRIORITIES) or {}
        result: dict[Priority, SlaTarget] = {}
        for priority in PRIORITIES:
            if priority not in fields:
                continue
            where = f"{what}: sla {priority}"
            target = self.fields(fields[priority], where, required=("first_response", "resolution"))
            if target is None:
                continue
            first = self.duration(target.get("first_response"), f"{where}: first_response")
            resolution = self.duration(target.get("resolution"), f"{where}: resolution")
            if first is None or resolution is None:
                continue
            if first > resolution:
                self.report(
                    target["first_response"],
                    f"{where}: first_response ({format_duration(first)}) is longer than "
                    f"resolution ({format_duration(resolution)})",
                )
                continue
            result[priority] = SlaTarget(first_response_s=first, resolution_s=resolution)
        return result

    def duration(self, node: Node | None, what: str) -> int | None:
        value = self.text(node, what)
        if value is None:
            return None
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.report(node, f"{what}: {exc}")
            return None

    # -- categories -------------------------------------------------------------------------

    def categories(self, node: Node | None, department_ids: set[str]) -> dict[str, Category]:
        result: dict[str, Category] = {}
        for cat_id, _, fields in self.listed(
            node,
            "category",
            "categories",
            "[{id: documenten, label: ..., department: ...}]",
            required=("id", "label", "department"),
        ):
            what = f"category '{cat_id}'"
            label = self.text(fields.get("label"), f"{what}: label")
            department = self.reference(
                fields.get("department"), what, "department", "department", department_ids
            )
            if label is not None and department is not None:
                result[cat_id] = Category(id=cat_id, label=label, department=department)
            else:
                # Keep the id known so rules naming it do not add a second, misleading problem.
                result[cat_id] = Category(id=cat_id, label=label or "", department="")
        return result

    # -- rules ------------------------------------------------------------------------------

    def rules(
        self,
        node: Node | None,
        department_ids: set[str],
        categories: Mapping[str, Category],
    ) -> list[RuleSpec]:
        listed = self.listed(
            node,
            "rule",
            "rules",
            "[{id: ..., department: ..., keywords: [...]}]",
            required=("id", "department"),
            optional=_RULE_FIELDS,
        )
        specs = (
            self.rule(r_id, item, fields, department_ids, categories)
            for r_id, item, fields in listed
        )
        return [rule for rule in specs if rule is not None]

    def rule(
        self,
        rule_id: str,
        node: Node,
        fields: dict[str, Node],
        department_ids: set[str],
        categories: Mapping[str, Category],
    ) -> RuleSpec | None:
        what = f"rule '{rule_id}'"
        before = len(self.problems)

        department = self.reference(
            fields.get("department"), what, "department", "department", department_ids
        )
        description = self.text(fields.get("description"), f"{what}: description")

        rule_categories: list[str] = []
        for value, item in self.strings(
            fields.get("categories", _EMPTY), f"{what}: categories", "[documenten]"
        ):
            category = categories.get(value)
            if category is None:
                self.report(
                    item,
                    f"{what}: unknown category '{value}'{_did_you_mean(value, categories)}",
                )
            elif (
                category.department
                and department in department_ids
                and category.department != department
            ):
                self.report(
                    item,
                    f"{what}: category '{value}' belongs to department '{category.department}' "
                    f"in the catalog, but this rule routes to '{department}'",
                )
            else:
                rule_categories.append(value)

        words: dict[str, list[str]] = {}
        for field in ("keywords", "phrases", "unless"):
            words[field] = []
            for value, item in self.strings(
                fields.get(field, _EMPTY), f"{what}: {field}", "[paspoort, rijbewijs]"
            ):
                if not any(ch.isalnum() for ch in value):
                    self.report(item, f"{what}: {field}: '{value}' has no letters or digits")
                else:
                    words[field].append(value)

        patterns: list[str] = []
        for value, item in self.strings(
            fields.get("patterns", _EMPTY), f"{what}: patterns", "['\\bvog\\b']"
        ):
            problem = _pattern_problem(value)
            if problem is not None:
                self.report(item, f"{what}: pattern '{value}': {problem}")
            else:
                patterns.append(value)

        priority = self.priority_change(fields["priority"], what) if "priority" in fields else None

        policy = fields.get("policy")
        if policy is not None and policy.tag != "tag:yaml.org,2002:bool":
            self.report(policy, f"{what}: policy must be true or false")

        if not (rule_categories or words["keywords"] or words["phrases"] or patterns) and (
            len(self.problems) == before
        ):
            self.report(
                node,
                f"{what} can never match: give it categories, keywords, phrases or patterns",
            )
        if len(self.problems) != before or department is None:
            return None
        return RuleSpec(
            id=rule_id,
            department=department,
            line=_line(node),
            categories=tuple(rule_categories),
            keywords=tuple(words["keywords"]),
            phrases=tuple(words["phrases"]),
            patterns=tuple(patterns),
            unless=tuple(words["unless"]),
            priority=priority,
            description=description,
            policy=policy is not None and str(policy.value).lower() == "true",
        )

    def priority_change(self, node: Node, what: str) -> PriorityChange | None:
        if not isinstance(node, MappingNode):
            self.report(
                node,
                f"{what}: priority must be {{set: <priority>}} or {{raise_to: <priority>}}, "
                f"not {_describe(node)}",
            )
            return None
        fields = self.fields(node, f"{what}: priority", required=(), optional=("set", "raise_to"))
        if fields is None or len(fields) != 1:
            self.report(
                node,
                f"{what}: priority needs exactly one of 'set' or 'raise_to', "
                "e.g. {raise_to: high}",
            )
            return None
        ((mode, value_node),) = fields.items()
        value = self.text(value_node, f"{what}: priority {mode}")
        if value is None:
            return None
        priority = PRIORITY_BY_NAME.get(value)
        if priority is None:
            self.report(
                value_node,
                f"{what}: unknown priority '{value}'; use one of {', '.join(PRIORITIES)}",
            )
            return None
        return PriorityChange(mode="set" if mode == "set" else "raise_to", priority=priority)


_EMPTY: Final = ScalarNode(_NULL_TAG, "")
_RULE_FIELDS: Final = (
    "description",
    "categories",
    "keywords",
    "phrases",
    "patterns",
    "unless",
    "priority",
    "policy",
)


def _name_for(node: Node, kind: str, index: int) -> str:
    """How to call a list entry in a message: by its id when it has a usable one."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if (
                isinstance(key, ScalarNode)
                and key.value == "id"
                and isinstance(value, ScalarNode)
                and _ID.fullmatch(str(value.value))
            ):
                return f"{kind} '{value.value}'"
    return f"{kind} #{index}"


def _span_text(span: Span) -> str:
    end = "24:00" if span.end == dt.time.max else f"{span.end:%H:%M}"
    return f"{span.start:%H:%M}-{end}"


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _pattern_problem(pattern: str) -> str | None:
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        return f"not a valid regular expression: {exc.msg} at position {exc.pos}"
    if compiled.search("") is not None:
        return "it matches empty text, so it would match every question"
    decomposed = unicodedata.normalize("NFKD", pattern)
    if any(unicodedata.combining(ch) for ch in decomposed):
        return "patterns run over text without accents; write e instead of é"
    return None


def _did_you_mean(value: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
