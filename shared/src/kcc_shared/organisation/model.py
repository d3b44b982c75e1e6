"""The organisation as the services see it: calendars, departments, SLA norms, categories, rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from kcc_shared.calendar import BusinessCalendar
from kcc_shared.events import PRIORITIES, Priority

__all__ = [
    "DEFAULT_REUSE_SHELF_LIFE_DAYS",
    "DEFAULT_WARNING_RATIO",
    "PRIORITIES",
    "WEEKDAYS",
    "Category",
    "Department",
    "Organisation",
    "Priority",
    "PriorityChange",
    "RuleSpec",
    "SlaTarget",
]

# Narrows a priority name to the Priority type (the reader checks names with it too).
PRIORITY_BY_NAME: Final[Mapping[str, Priority]] = {p: p for p in PRIORITIES}
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_WARNING_RATIO: Final = 0.8
# How long a department's reusable answer is suggested to KCC-medewerkers (docs/similar.md):
# a rule or a fee changes within a year or so, and an old answer that is still right can be
# marked reusable again.
DEFAULT_REUSE_SHELF_LIFE_DAYS: Final = 365


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
        now = PRIORITY_BY_NAME.get(current)
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
        known = PRIORITY_BY_NAME.get(priority)
        if known is None:
            raise KeyError(f"unknown priority {priority!r}")
        return department.sla[known]
