"""Citizen service numbers (BSN) never leave the edge: found and replaced before anything else."""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "[BSN]"

# Nine digits, written plainly or in groups with spaces, dots or dashes (1234.56.782,
# 123 456 782, 123-45-6782), optionally after the word BSN or burgerservicenummer, and never
# part of a longer number (a phone number or IBAN must not lose nine of its digits).
_LABEL = (
    r"(?:(?:bsn|burgerservicenummer|burger\s*service\s*nummer)"
    r"(?:\s*(?:nr\.?|nummer))?\s*[:.#=]?\s*)"
)
_DIGITS = r"(?:\d[\s.\-]?){8}\d"
# A Dutch mobile number without its trunk 0 is nine digits too: after +31, 0031 or (0) it is a
# phone number ("+31 6 12345671"), not a BSN, even when it happens to pass the 11-check.
_PHONE_PREFIX = r"(?<!\+31)(?<!\+31[\s\-])(?<!0031[\s\-])(?<!\(0\))(?<!\(0\)\s)"
_CANDIDATE = re.compile(
    rf"(?P<label>{_LABEL})?(?<![\d\-./]){_PHONE_PREFIX}(?P<number>{_DIGITS})(?![\d]|[\-./]\d)",
    re.IGNORECASE,
)


def is_bsn(digits: str) -> bool:
    """The 11-check: 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 must be divisible by 11 (and not 0)."""
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def redact_bsn(text: str) -> tuple[str, int]:
    """Replace every BSN (and the word announcing it) with [BSN]; return text and count.

    A labelled number ("BSN 123456789") is redacted even when it fails the 11-check: an agent
    who mistypes a BSN has still typed most of one.
    """
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        digits = re.sub(r"\D", "", match.group("number"))
        if len(digits) == 9 and (match.group("label") or is_bsn(digits)):
            count += 1
            return REDACTED
        return match.group(0)

    redacted = _CANDIDATE.sub(replace, text)
    return redacted, count
