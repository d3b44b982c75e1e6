"""The short reference a KCC-medewerker reads out on the phone: "KV-2026-004217".

Prefix, the year of filing (Dutch time) and a number counted per year, zero-padded to six
digits. Assigned once, when the question is filed (see RequestStore.submit); never reused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "KV"
DIGITS: Final = 6
# What people type: any case, a space or dash between the parts, the number with or without
# its leading zeros ("kv 2026 4217" is KV-2026-004217).
_READ: Final = re.compile(r"^\s*kv[\s-]*(\d{4})[\s-]+(\d{1,9})\s*$", re.IGNORECASE)
# Text that can only have been meant as a reference (a search for it must not fall back to a
# text search that finds nothing and says nothing).
_MEANT: Final = re.compile(r"^\s*kv[\s-]*\d", re.IGNORECASE)


class MalformedReference(ValueError):
    """Text meant as a reference that is not one."""

    def __init__(self, text: str) -> None:
        super().__init__(f"not a reference: write it as {PREFIX}-<year>-<number>, e.g. {example()}")
        self.text = text


@dataclass(frozen=True, order=True)
class Reference:
    year: int
    number: int

    def __str__(self) -> str:
        return f"{PREFIX}-{self.year}-{self.number:0{DIGITS}d}"


def example() -> str:
    return str(Reference(2026, 4217))


def looks_like_reference(text: str) -> bool:
    return bool(_MEANT.match(text))


def parse(text: str) -> Reference:
    """The reference in ``text`` (lenient about case, separators and leading zeros);
    MalformedReference if it is not one."""
    match = _READ.match(text)
    if match is None:
        raise MalformedReference(text)
    year, number = int(match.group(1)), int(match.group(2))
    if not 2000 <= year <= 9999 or number < 1:
        raise MalformedReference(text)
    return Reference(year, number)
