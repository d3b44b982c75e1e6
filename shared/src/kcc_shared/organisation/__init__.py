"""The organisation file: calendars, departments, SLA targets, categories and routing rules.
``model`` is what the services use; ``reader`` checks the YAML, every problem with its line."""

from kcc_shared.organisation.model import (
    DEFAULT_REUSE_SHELF_LIFE_DAYS,
    DEFAULT_WARNING_RATIO,
    PRIORITIES,
    WEEKDAYS,
    Category,
    Department,
    Organisation,
    Priority,
    PriorityChange,
    RuleSpec,
    SlaTarget,
)
from kcc_shared.organisation.reader import (
    OrganisationError,
    Problem,
    format_duration,
    load_organisation,
    parse_duration,
)

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
