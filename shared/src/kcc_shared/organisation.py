"""The organisation file: calendars, departments, SLA targets, categories and routing rules."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal, TypeVar
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
from kcc_shared.events import PRIORITIES, Priority

__all__ = [
    "DEFAULT_REUSE_SHELF_LIFE_DAYS",
    "DEFAULT_WARNING_RATIO",
    "PRIORITIES",
    "WEEKDAYS",
    "Category",
    "Department",
    "Organisation",
    "OrganisationError",
    "Priority",
    "PriorityChange",
    "Problem",
    "RuleSpec",
    "SlaTarget",
    "format_duration",
    "load_organisation",
    "parse_duration",
]

_PRIORITY_BY_NAME: Final[Mapping[str, Priority]] = {p: p for p in PRIORITIES}
_GOEDE_VRIJDAG: Final[Mapping[str, GoedeVrijdag]] = {c: c for c in GOEDE_VRIJDAG_CHOICES}
_BEVRIJDINGSDAG: Final[Mapping[str, Bevrijdingsdag]] = {c: c for c in BEVRIJDINGSDAG_CHOICES}
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_WARNING_RATIO: Final = 0.8
# How long a department's reusable answer is suggested to KCC-medewerkers (docs/similar.md):
# a rule or a fee changes within a year or so, and an old answer that is still right can be
# marked reusable again. At most ten years: beyond that "never expires" is meant, which this
# setting deliberately cannot say.
DEFAULT_REUSE_SHELF_LIFE_DAYS: Final = 365
REUSE_SHELF_LIFE_MAX_DAYS: Final = 3650
SUPPORTED_VERSION: Final = 1

_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SPAN = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_DURATION = re.compile(r"(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?")
_DAYS_OR_WEEKS = re.compile(r"\d+(?:[.,]\d+)?\s*(?:d|w|days?|weeks?|dagen|dag|weken|wk)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_NULL_TAG: Final = "tag:yaml.org,2002:null"
_C = TypeVar("_C", bound=str)
_DEFAULT_RESOURCE: Final = "organisation.yaml"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an organisation file; ``line`` is None for whole-file problems."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.message}"
        return f"{self.file}:{self.line}: {self.message}"


class OrganisationError(ValueError):
    """The organisation file is unusable; ``problems`` lists everything found, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class SlaTarget:
    """The agreed norm for one priority, in business seconds."""

    first_response_s: int
    resolution_s: int


@dataclass(frozen=True)
class Department:
    """A back-office department: its calendar, norms and warning threshold (0 < ratio < 1),
    and for how many days its reusable answers are suggested."""

    id: str
    name: str
    calendar: str
    warning_ratio: float
    sla: Mapping[Priority, SlaTarget]
    reuse_shelf_life_days: int = DEFAULT_REUSE_SHELF_LIFE_DAYS


@dataclass(frozen=True)
class Category:
    """A catalog entry an agent may pick, owned by one department."""

    id: str
    label: str
    department: str


@dataclass(frozen=True)
class PriorityChange:
    """What a rule does to the request's priority: ``set`` it, or ``raise_to`` at least."""

    mode: Literal["set", "raise_to"]
    priority: Priority

    def apply(self, current: str) -> Priority:
        """The priority after this change; ``current`` must be one of PRIORITIES."""
        now = _PRIORITY_BY_NAME.get(current)
        if now is None:
            raise ValueError(
                f"unknown priority {current!r}; expected one of {', '.join(PRIORITIES)}"
            )
        if self.mode == "set":
            return self.priority
        # raise_to never lowers: keep whichever is more urgent.
        return min(now, self.priority, key=PRIORITIES.index)

    def __str__(self) -> str:
        verb = "set to" if self.mode == "set" else "raise to"
        return f"{verb} {self.priority}"


@dataclass(frozen=True)
class RuleSpec:
    """One routing rule as written in the file (validated, not yet compiled)."""

    id: str
    department: str
    line: int
    categories: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    priority: PriorityChange | None = None
    description: str | None = None
    # A policy rule always decides when it matches, whatever the model thinks ("a damage claim
    # is juridische zaken, whatever street object it mentions"). Other rules may be overruled
    # by a confident model (docs/routing.md).
    policy: bool = False


@dataclass(frozen=True)
class Organisation:
    """The validated organisation file. ``version`` is a short hash of the file's bytes."""

    name: str
    version: str
    source: str
    calendars: Mapping[str, BusinessCalendar]
    departments: Mapping[str, Department]
    categories: Mapping[str, Category]
    fallback_department: str
    rules: tuple[RuleSpec, ...]
    # The organisation's labelled example questions (JSON Lines), from the optional top-level
    # ``examples`` key, relative to the organisation file; what `kcc router train` learns from.
    examples_file: Path | None = None

    def calendar_for(self, department_id: str) -> BusinessCalendar:
        """The business calendar a department's clocks run on."""
        department = self.departments.get(department_id)
        if department is None:
            raise KeyError(f"unknown department {department_id!r}")
        return self.calendars[department.calendar]

    def sla_for(self, department_id: str, priority: str) -> SlaTarget:
        """The SLA target of a department for one priority."""
        department = self.departments.get(department_id)
        if department is None:
            raise KeyError(f"unknown department {department_id!r}")
        known = _PRIORITY_BY_NAME.get(priority)
        if known is None:
            raise KeyError(f"unknown priority {priority!r}")
        return department.sla[known]


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
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)


def load_organisation(path: str | Path | None = None) -> Organisation:
    """Read and validate an organisation file; None reads the packaged default.

    Raises OrganisationError listing every problem found, each with file and line.
    """
    if path is None:
        resource = resources.files("kcc_shared").joinpath(_DEFAULT_RESOURCE)
        source = str(resource)
        try:
            raw = resource.read_bytes()
        except OSError as exc:
            raise OrganisationError([Problem(source, None, _os_message(exc))]) from None
    else:
        source = str(path)
        try:
            raw = Path(path).read_bytes()
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
        problems = sorted(reader.problems, key=lambda p: p.line or 0)
        raise OrganisationError(problems)
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
        if not isinstance(node, MappingNode):
            self.report(node, f"{what} must be a mapping (field: value), not {_describe(node)}")
            return None
        allowed = (*required, *optional)
        found: dict[str, Node] = {}
        key_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.report(key_node, f"{what}: field names must be plain words")
                continue
            key = str(key_node.value)
            if key == "<<":
                self.report(
                    key_node,
                    f"{what}: merge keys (<<) are not supported; "
                    "use an alias for the whole value instead (sla: *standaard)",
                )
                continue
            if key in key_lines:
                self.report(
                    key_node, f"{what}: duplicate field '{key}' (first at line {key_lines[key]})"
                )
                continue
            key_lines[key] = _line(key_node)
            if key not in allowed:
                self.report(key_node, f"{what}: unknown field '{key}'{_did_you_mean(key, allowed)}")
                continue
            found[key] = value_node
        for name in required:
            if name not in key_lines:
                self.report(node, f"{what}: missing required field '{name}'")
        return found

    def entries(self, node: Node, what: str) -> list[tuple[str, Node, Node]]:
        """A mapping with free keys (calendar names, weekdays); reports duplicate keys."""
        if not isinstance(node, MappingNode):
            self.report(node, f"{what} must be a mapping (name: value), not {_describe(node)}")
            return []
        result: list[tuple[str, Node, Node]] = []
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.report(key_node, f"{what}: names must be plain words")
                continue
            key = str(key_node.value)
            if key in seen:
                self.report(key_node, f"{what}: duplicate '{key}' (first at line {seen[key]})")
                continue
            seen[key] = _line(key_node)
            result.append((key, key_node, value_node))
        return result

    def items(self, node: Node, what: str, example: str) -> list[Node]:
        if isinstance(node, ScalarNode) and node.tag == _NULL_TAG:
            return []
        if not isinstance(node, SequenceNode):
            self.report(node, f"{what} must be a list, e.g. {example}, not {_describe(node)}")
            return []
        return list(node.value)

    def text(self, node: Node, what: str) -> str | None:
        if not isinstance(node, ScalarNode):
            self.report(node, f"{what} must be a single value, not {_describe(node)}")
            return None
        if node.tag == _NULL_TAG or not str(node.value).strip():
            self.report(node, f"{what} is empty")
            return None
        return str(node.value).strip()

    def reference(
        self, node: Node, owner: str, field: str | None, kind: str, known: Iterable[str]
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
        result = []
        for item in self.items(node, what, example):
            value = self.text(item, f"an entry in {what}")
            if value is not None:
                result.append((value, item))
        return result

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

        examples_file = None
        if "examples" in top:
            value = self.text(top["examples"], "examples")
            if value is not None:
                examples_file = Path(self.source).parent / value

        if "version" in top:
            node = top["version"]
            value = self.text(node, "version")
            if value is not None and value != str(SUPPORTED_VERSION):
                self.report(
                    node,
                    f"unsupported file version '{value}'; this release reads version "
                    f"{SUPPORTED_VERSION}",
                )

        name = None
        if "organisation" in top:
            organisation = self.fields(top["organisation"], "organisation", required=("name",))
            if organisation and "name" in organisation:
                name = self.text(organisation["name"], "organisation name")

        calendar_names: set[str] = set()
        calendars: dict[str, BusinessCalendar] = {}
        if "calendars" in top:
            entries = self.entries(top["calendars"], "calendars")
            if isinstance(top["calendars"], MappingNode) and not entries:
                self.report(top["calendars"], "calendars: define at least one calendar")
            for cal_id, key_node, value_node in entries:
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

        fallback = None
        if "fallback_department" in top:
            fallback = self.reference(
                top["fallback_department"],
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

        timezone = None
        if "timezone" in fields:
            timezone = self.text(fields["timezone"], f"{what}: timezone")
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
        if "closed_days" in fields:
            for value, item in self.strings(
                fields["closed_days"], f"{what}: closed_days", "[2026-12-24, 2026-12-31]"
            ):
                try:
                    closed_days.append(dt.date.fromisoformat(value))
                except ValueError:
                    self.report(
                        item, f"{what}: bad date '{value}' in closed_days; write YYYY-MM-DD"
                    )

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
        country = None
        if "country" in fields:
            country = self.country(fields["country"], what, "public_holidays: country")
        goede_vrijdag = None
        if "goede_vrijdag" in fields:
            goede_vrijdag = self.choice(
                fields["goede_vrijdag"],
                f"{what}: public_holidays: goede_vrijdag",
                _GOEDE_VRIJDAG,
                "open (the default: a working day) or closed",
            )
        bevrijdingsdag = None
        if "bevrijdingsdag" in fields:
            bevrijdingsdag = self.choice(
                fields["bevrijdingsdag"],
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

    def choice(self, node: Node, what: str, choices: Mapping[str, _C], meaning: str) -> _C | None:
        """One of a few words, e.g. open or closed."""
        value = self.text(node, what)
        if value is None:
            return None
        if value not in choices:
            self.report(node, f"{what}: unknown choice '{value}'; write {meaning}")
            return None
        return choices[value]

    def country(self, node: Node, what: str, field: str) -> str | None:
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
        for day, key_node, value_node in self.entries(node, f"{what}: opening_hours"):
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
        if node is None:
            return []
        result: list[tuple[str, Department | None]] = []
        seen: dict[str, int] = {}
        items = self.items(node, "departments", "[{id: burgerzaken, ...}]")
        if not items:
            self.report(node, "departments: define at least one department")
        for index, item in enumerate(items, start=1):
            fields = self.fields(
                item,
                _name_for(item, "department", index),
                required=("id", "name", "calendar", "sla"),
                optional=("warning_at", "reuse_shelf_life_days"),
            )
            if fields is None or "id" not in fields:
                continue
            dept_id = self.identifier(fields["id"], "department id")
            if dept_id is None:
                continue
            if dept_id in seen:
                self.report(
                    fields["id"],
                    f"duplicate department id '{dept_id}' (first at line {seen[dept_id]})",
                )
                continue
            seen[dept_id] = _line(fields["id"])
            result.append((dept_id, self.department(dept_id, item, fields, calendar_names)))
        return result

    def department(
        self,
        dept_id: str,
        node: Node,
        fields: dict[str, Node],
        calendar_names: set[str],
    ) -> Department | None:
        what = f"department '{dept_id}'"
        before = len(self.problems)
        name = self.text(fields["name"], f"{what}: name") if "name" in fields else None

        calendar = None
        if "calendar" in fields:
            calendar = self.reference(
                fields["calendar"], what, "calendar", "calendar", calendar_names
            )

        warning_ratio = DEFAULT_WARNING_RATIO
        if "warning_at" in fields:
            warning_ratio = self.percentage(fields["warning_at"], f"{what}: warning_at")

        shelf_life = DEFAULT_REUSE_SHELF_LIFE_DAYS
        if "reuse_shelf_life_days" in fields:
            shelf_life = self.days(
                fields["reuse_shelf_life_days"], f"{what}: reuse_shelf_life_days"
            )

        sla: dict[Priority, SlaTarget] = {}
        if "sla" in fields:
            sla = self.sla(fields["sla"], what)

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

    def days(self, node: Node, what: str) -> int:
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

    def percentage(self, node: Node, what: str) -> float:
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
        fields = self.fields(node, f"{what}: sla", required=PRIORITIES)
        result: dict[Priority, SlaTarget] = {}
        if fields is None:
            return result
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
        if node is None:
            return None
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
        if node is None:
            return result
        seen: dict[str, int] = {}
        for index, item in enumerate(
            self.items(node, "categories", "[{id: documenten, label: ..., department: ...}]"),
            start=1,
        ):
            fields = self.fields(
                item, _name_for(item, "category", index), required=("id", "label", "department")
            )
            if fields is None or "id" not in fields:
                continue
            cat_id = self.identifier(fields["id"], "category id")
            if cat_id is None:
                continue
            if cat_id in seen:
                self.report(
                    fields["id"], f"duplicate category id '{cat_id}' (first at line {seen[cat_id]})"
                )
                continue
            seen[cat_id] = _line(fields["id"])
            what = f"category '{cat_id}'"
            label = self.text(fields["label"], f"{what}: label") if "label" in fields else None
            department = None
            if "department" in fields:
                department = self.reference(
                    fields["department"], what, "department", "department", department_ids
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
        result: list[RuleSpec] = []
        if node is None:
            return result
        seen: dict[str, int] = {}
        for index, item in enumerate(
            self.items(node, "rules", "[{id: ..., department: ..., keywords: [...]}]"), start=1
        ):
            fields = self.fields(
                item,
                _name_for(item, "rule", index),
                required=("id", "department"),
                optional=(
                    "description",
                    "categories",
                    "keywords",
                    "phrases",
                    "patterns",
                    "unless",
                    "priority",
                    "policy",
                ),
            )
            if fields is None or "id" not in fields:
                continue
            rule_id = self.identifier(fields["id"], "rule id")
            if rule_id is None:
                continue
            if rule_id in seen:
                self.report(
                    fields["id"], f"duplicate rule id '{rule_id}' (first at line {seen[rule_id]})"
                )
                continue
            seen[rule_id] = _line(fields["id"])
            rule = self.rule(rule_id, item, fields, department_ids, categories)
            if rule is not None:
                result.append(rule)
        return result

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

        department = None
        if "department" in fields:
            department = self.reference(
                fields["department"], what, "department", "department", department_ids
            )

        description = None
        if "description" in fields:
            description = self.text(fields["description"], f"{what}: description")

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

        priority = None
        if "priority" in fields:
            priority = self.priority_change(fields["priority"], what)

        policy = False
        if "policy" in fields:
            node_policy = fields["policy"]
            if node_policy.tag != "tag:yaml.org,2002:bool":
                self.report(node_policy, f"{what}: policy must be true or false")
            else:
                policy = str(node_policy.value).lower() == "true"

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
            policy=policy,
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
        if fields is None:
            return None
        if len(fields) != 1:
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
        priority = _PRIORITY_BY_NAME.get(value)
        if priority is None:
            self.report(
                value_node,
                f"{what}: unknown priority '{value}'; use one of {', '.join(PRIORITIES)}",
            )
            return None
        return PriorityChange(mode="set" if mode == "set" else "raise_to", priority=priority)


_EMPTY: Final = ScalarNode(_NULL_TAG, "")


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
