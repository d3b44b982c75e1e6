"""Citizen service numbers (BSN) never leave the edge: found and replaced before anything else.

A BSN is nine digits passing the 11-check (9*d1 + 8*d2 + ... + 2*d8 - 1*d9 divisible by 11);
one that starts with 0 is often written as eight digits. People write them in every way a
number can be written, so the redaction works on what a reader sees, not on one spelling:

1. **Digit runs.** A run is a maximal sequence of decimal digits (of any script: fullwidth
   digits count). Invisible characters (zero-width spaces and joiners, direction marks, soft
   hyphens, variation selectors, combining marks) between digits are ignored: a run
   ``1234<ZWSP>56782`` is the run ``123456782``. A run is never cut: nine digits inside a longer
   run (an IBAN's account number, an order number ``1234567820``) are part of that number.
2. **Chains.** Runs separated only by a short gap of separators form a chain: one number as a
   person groups it. Separators are spaces (any number of them, also no-break and narrow
   no-break spaces), dots, hyphens and dashes (en, em, minus), slashes, underscores and commas;
   a gap holds at most three of them after spaces are collapsed (``123 - 456``). A single line
   break (with the quote marks of a quoted mail after it) is a gap of its own kind: a mail
   program wraps a long line at a space, so a pasted mail may hold ``123 456`` at the end of one
   line and ``782`` (or ``> 782``) at the start of the next; and a BSN on a line of its own
   stays a block after a line that ends in a number. Any other gap with a line break (a blank
   line) ends a chain. Letters and other punctuation end a chain too, but do not protect what
   they touch: ``dossier-123456782``, ``abc123456782@x.nl`` and ``/personen/123456782`` hold a
   BSN. Each gap has a *kind*: its separators with spaces collapsed and dashes unified.
3. **Known shapes are kept.** Within a chain, groups that form a phone number (Dutch: ten
   digits starting with a 0 and an area code group, ``06 12 34 56 78``, ``020-1234567``; service
   numbers ``0800``/``0900``; after ``+``, ``00`` and ``(0)``), a date (``12-03-2026``,
   ``2026.03.12``, also ``12032026``), a year range (``2024-2026``), a time range
   (``09.00-17.00``) or an amount after or before a currency sign (``€ 1.234.567,89``) are
   protected and never redacted; so are UUIDs and clock times (``10:15:30.123``) wherever
   they stand. Postcodes (``1234 AB``) and IBANs need no rule: their digit groups are too short
   or too long to be a BSN.
4. **Blocks.** In what remains, any group or run of consecutive groups holding 9 digits that
   pass the 11-check, or 8 digits that pass it with a leading 0, is a BSN, provided it is a
   *block*: the gaps joining it to its neighbours in the chain are of a different kind than the
   gaps inside it. ``123.456.782/1`` is a BSN followed by ``/1``; ``123456782, 111222333`` two
   BSNs; but ``06 12 34 56 78`` and ``1 123 456 782`` are ten-digit numbers written in evenly
   spaced groups, and no nine of their digits are taken out. A single run has no inside gaps,
   so it is always a block: nine check-passing digits in one run are a BSN wherever they
   stand, unless a known shape (3.) claims them.
5. **Labels.** A number announced by a label (BSN, burgerservicenummer, burger service nummer,
   sofinummer, sofi-nummer; optionally with nr, nr., nummer, and ``:``, ``.``, ``#``, ``=``) is
   redacted even when it fails the check: 8 or 9 digits in the groups right after the label. A
   mistyped BSN is still mostly a BSN. The label goes too: ``BSN: 123456782`` becomes ``[BSN]``.

The scan is linear in the length of the text: every regular expression below has bounded
repetition (no nested unbounded quantifiers, so no catastrophic backtracking), and per run the
work is bounded (a BSN spans at most nine groups).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Final, NamedTuple

__all__ = ["REDACTED", "contains_bsn", "is_bsn", "redact_bsn"]

REDACTED: Final = "[BSN]"

# Characters a reader does not see (format characters, joiners, direction marks, soft hyphen,
# fillers, variation selectors, tag characters) and combining marks drawn over a digit.
_INVISIBLE: Final = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U0001d173-\U0001d17a\U000e0000-\U000e007f\U000e0100-\U000e01ef"
    "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
)
# Horizontal spaces (not line breaks): space, tab, no-break, en/em/thin/hair, narrow no-break…
_SPACES: Final = " \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_DASHES: Final = "\\-\u2010-\u2015\u2212\ufe58\ufe63\uff0d"
_DOTS: Final = ".\u00b7\u2024\uff0e"
_OTHERS: Final = ",/_\uff0c\uff0f\uff3f"

_DIGIT: Final = re.compile(r"\d")
_RUN: Final = re.compile(rf"\d(?:[{_INVISIBLE}]*\d)*")
_GAP: Final = re.compile(rf"[{_INVISIBLE}{_SPACES}{_DASHES}{_DOTS}{_OTHERS}]+")
_INVISIBLE_CHARS: Final = re.compile(rf"[{_INVISIBLE}]+")
_SPACE_RUN: Final = re.compile(rf"[{_SPACES}]+")
_KIND: Final = str.maketrans(
    {
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d", "-"),
        **dict.fromkeys("\u00b7\u2024\uff0e", "."),
        "\uff0c": ",",
        "\uff0f": "/",
        "\uff3f": "_",
    }
)
_MAX_GAP: Final = 3
# A line break where a mail program wrapped the line (with the quote marks of a quoted mail).
_WRAP: Final = re.compile(rf"[{_SPACES}]*\r?\n(?:[{_SPACES}]*>)*[{_SPACES}]*")
_SINGLE_KINDS: Final = {
    "\n": "\n",
    **dict.fromkeys(" \t\u00a0\u1680\u202f\u205f\u3000", " "),
    **{chr(c): " " for c in range(0x2000, 0x200B)},
    **{c: c.translate(_KIND) for c in ".,/_-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58"},
    **{c: c.translate(_KIND) for c in "\ufe63\uff0d\u00b7\u2024\uff0e\uff0c\uff0f\uff3f"},
}

_LABEL: Final = re.compile(
    r"(?<![^\W\d_])"  # not glued to a word before it
    r"(?:bsn|burger[\s_.\-]{0,2}service[\s_.\-]{0,2}nummer|sofi[\s_.\-]{0,2}(?:nummer|nr\.?))"
    r"(?:[\s_.\-]{0,2}(?:nummer|nr\.?))?"
    rf"[\s:.#=\-{_INVISIBLE}]{{0,8}}"
    rf"(?:is[\s:{_INVISIBLE}]{{1,6}})?"
    r"(?=\d)",
    re.IGNORECASE,
)

# Shapes found in the text before chains are built: whatever digits they hold are theirs.
_SHAPES: Final = re.compile(
    # A UUID (a request or event id in a URL or a log line).
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12}(?![0-9A-Za-z])"
    # A clock time with a colon, seconds and fractions (10:15, 10:15:30.123456).
    r"|(?<!\d)\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d{1,9})?"
)

# Context right before a chain (searched backwards from its first digit).
_PLUS: Final = re.compile(r"(?<![0-9A-Za-z+])\+[ \t\u00a0]?\Z")
_TRUNK: Final = re.compile(r"\(0\)[ \t\u00a0]?\Z")
_AREA: Final = re.compile(r"\((0\d{1,3})\)[ \t\u00a0]?\Z")
_CURRENCY_BEFORE: Final = re.compile(
    r"(?:€|\beur\b|\beuro\b)[ \t\u00a0]{0,2}-?[ \t\u00a0]{0,2}\Z", re.IGNORECASE
)
_CURRENCY_AFTER: Final = re.compile(r",-|[ \t\u00a0]{0,2}(?:€|eur\b|euro\b)", re.IGNORECASE)
_INTERNATIONAL: Final = re.compile(r"00[1-9]\d{0,2}|00[1-9]\d{8,12}")
_CONTEXT: Final = 16

_PHONE_GAPS: Final = frozenset({" ", "-", ".", " - "})
_SERVICE_NUMBERS: Final = frozenset({"0800", "0900", "0906", "0909"})
_DATE_GAPS: Final = frozenset({"-", ".", "/", " "})
_RANGE_GAPS: Final = frozenset({"-", "/", " - ", " / ", " "})


class _Run(NamedTuple):
    start: int
    end: int
    digits: str


def is_bsn(digits: str) -> bool:
    """The 11-check: 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 must be divisible by 11 (and not 0)."""
    if len(digits) != 9 or not digits.isdigit() or not digits.isascii() or digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def contains_bsn(text: str) -> bool:
    """Whether the text holds anything `redact_bsn` would take out."""
    return redact_bsn(text)[1] > 0


def redact_bsn(text: str) -> tuple[str, int]:
    """Replace every BSN (and the label announcing it) with [BSN]; return text and count.

    See the module documentation for what counts as a BSN and what is kept.
    """
    if not _DIGIT.search(text):
        return text, 0
    spans = _find(text)
    if not spans:
        return text, 0
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(REDACTED)
        last = end
    parts.append(text[last:])
    return "".join(parts), len(spans)


# -- finding ---------------------------------------------------------------------------------


def _find(text: str) -> list[tuple[int, int]]:
    runs = [_Run(m.start(), m.end(), _digits(m.group())) for m in _RUN.finditer(text)]
    labels = {m.end(): m.start() for m in _LABEL.finditer(text)}
    shaped = _shaped_runs(text, runs)
    spans: list[tuple[int, int]] = []
    chain: list[_Run] = [runs[0]]
    kinds: list[str] = []
    for run in runs[1:]:
        kind = _gap_kind(text, chain[-1].end, run.start)
        if kind is None:
            _scan_chain(text, chain, kinds, labels, shaped, spans)
            chain, kinds = [run], []
        else:
            chain.append(run)
            kinds.append(kind)
    _scan_chain(text, chain, kinds, labels, shaped, spans)
    return spans


def _digits(run: str) -> str:
    digits = "".join(c for c in run if c.isdecimal()) if not run.isdigit() else run
    if digits.isascii():
        return digits
    return "".join(str(unicodedata.decimal(c)) for c in digits)


def _gap_kind(text: str, start: int, end: int) -> str | None:
    """The kind of the separators between two runs, or None when they do not join them."""
    if end - start == 1:  # the common case, one character: no regular expression needed
        return _SINGLE_KINDS.get(text[start])
    if "\n" in text[start:end]:
        return "\n" if _WRAP.fullmatch(_INVISIBLE_CHARS.sub("", text[start:end])) else None
    match = _GAP.match(text, start, end)
    if match is None or match.end() != end:
        return None
    gap = _INVISIBLE_CHARS.sub("", match.group())
    kind = _SPACE_RUN.sub(" ", gap).translate(_KIND)
    # A run always ends at a digit and the next starts at one, so an empty gap cannot occur;
    # a gap of only invisible characters would have made the two runs one.
    return kind if 0 < len(kind) <= _MAX_GAP else None


def _shaped_runs(text: str, runs: Sequence[_Run]) -> set[int]:
    """Start offsets of the runs inside a UUID or a clock time."""
    shapes = [m.span() for m in _SHAPES.finditer(text)]
    inside: set[int] = set()
    if not shapes:
        return inside
    index = 0
    for run in runs:
        while index < len(shapes) and shapes[index][1] <= run.start:
            index += 1
        if index < len(shapes) and shapes[index][0] <= run.start and run.end <= shapes[index][1]:
            inside.add(run.start)
    return inside


def _scan_chain(
    text: str,
    chain: list[_Run],
    kinds: list[str],
    labels: dict[int, int],
    shaped: set[int],
    spans: list[tuple[int, int]],
) -> None:
    first = 0
    label_start = labels.get(chain[0].start)
    if label_start is not None:
        # A labelled number: the 9 (else 8) digits right after the label, checked or not, in
        # however many groups; the label goes with them.
        end = _labelled_end(chain)
        if end is not None:
            spans.append((label_start, chain[end].end))
            first = end + 1
    if first >= len(chain):
        return
    groups = [run.digits for run in chain]
    if sum(len(g) for g in groups[first:]) < 8:
        return  # the common case: too few digits to hold a BSN
    protected = [run.start in shaped for run in chain]
    if first == 0:
        _protect_by_context(text, chain, groups, kinds, protected)
    _protect_shapes(groups, kinds, protected, first)
    start = first
    while start < len(chain):
        if protected[start]:
            start += 1
            continue
        stop = start
        while stop + 1 < len(chain) and not protected[stop + 1]:
            stop += 1
        _scan_segment(chain, groups, kinds, start, stop, spans)
        start = stop + 1


def _labelled_end(chain: Sequence[_Run]) -> int | None:
    total = 0
    found: int | None = None
    for index, run in enumerate(chain):
        total += len(run.digits)
        if total > 9:
            break
        if total >= 8:
            found = index
    return found


def _scan_segment(
    chain: Sequence[_Run],
    groups: Sequence[str],
    kinds: Sequence[str],
    first: int,
    last: int,
    spans: list[tuple[int, int]],
) -> None:
    """Take out every block of 9 (or 8) check-passing digits between first and last.

    Every candidate is tried (not first come, first served): in ``2024-1234 5671`` both
    ``2024-1234`` and ``1234 5671`` may pass the check as eight digits, and taking only the
    first would leave half of the second behind. Candidates that overlap are taken out
    together: a few digits too many go rather than one digit of a BSN stays.
    """
    found: list[tuple[int, int]] = []
    for i in range(first, last + 1):
        total = 0
        for j in range(i, min(last, i + 8) + 1):
            total += len(groups[j])
            if total > 9:
                break
            if total >= 8 and _is_block(kinds, i, j, first, last):
                digits = "".join(groups[i : j + 1])
                if is_bsn(digits if total == 9 else "0" + digits):
                    if found and i <= found[-1][1]:
                        found[-1] = (found[-1][0], max(found[-1][1], j))
                    else:
                        found.append((i, j))
    spans.extend((chain[i].start, chain[j].end) for i, j in found)


def _is_block(kinds: Sequence[str], i: int, j: int, first: int, last: int) -> bool:
    """Groups i..j stand apart: the gaps around them differ from every gap inside them."""
    if i == j:
        return True
    inside = set(kinds[i:j])
    if i > first and kinds[i - 1] in inside:
        return False
    return not (j < last and kinds[j] in inside)


# -- what is kept ----------------------------------------------------------------------------


def _protect_by_context(
    text: str,
    chain: Sequence[_Run],
    groups: Sequence[str],
    kinds: Sequence[str],
    protected: list[bool],
) -> None:
    """International and trunk-prefixed phone numbers, amounts after a currency sign."""
    start = chain[0].start
    window = max(0, start - _CONTEXT)
    total = sum(len(g) for g in groups)
    if _PLUS.search(text, window, start) and (len(groups[0]) <= 3 or total >= 10):
        _protect_phone_prefix(groups, protected)
    elif _INTERNATIONAL.fullmatch(groups[0]) and total >= 11:
        _protect_phone_prefix(groups, protected, trunk=2)
    elif _TRUNK.search(text, window, start):
        _protect_prefix(groups, protected, 9)
    elif area := _AREA.search(text, window, start):
        _protect_prefix(groups, protected, 10 - len(area.group(1)))
    if _CURRENCY_BEFORE.search(text, window, start):
        _protect_amount(groups, kinds, protected, whole=False)
    elif _CURRENCY_AFTER.match(text, chain[-1].end):
        _protect_amount(groups, kinds, protected, whole=True)


def _protect_phone_prefix(groups: Sequence[str], protected: list[bool], trunk: int = 0) -> None:
    # After +31 (or 0031) come the nine digits of a Dutch number and no more: a BSN written
    # right after such a number is not swallowed by it. Other countries: up to 15 digits.
    country = groups[0][trunk:]
    if country.startswith("31"):
        _protect_prefix(groups, protected, 9 + 2 + trunk)
    else:
        _protect_prefix(groups, protected, 15 + trunk)


def _protect_prefix(groups: Sequence[str], protected: list[bool], limit: int) -> None:
    total = 0
    for index, group in enumerate(groups):
        total += len(group)
        if total > limit and index > 0:
            return
        protected[index] = True


def _protect_amount(
    groups: Sequence[str], kinds: Sequence[str], protected: list[bool], *, whole: bool
) -> None:
    """Euro amounts: 1.234.567,89 / 1 234 567 / 1234567,89 (thousands in threes, two cents)."""
    end = _amount_end(groups, kinds)
    if end is None or (whole and end != len(groups) - 1):
        return
    for index in range(end + 1):
        protected[index] = True


def _amount_end(groups: Sequence[str], kinds: Sequence[str]) -> int | None:
    if not groups[0] or len(groups[0]) > 7:
        return None
    index = 0
    if len(groups[0]) <= 3:
        while (
            index + 1 < len(groups) and kinds[index] in (".", " ") and len(groups[index + 1]) == 3
        ):
            index += 1
    if index + 1 < len(groups) and kinds[index] == "," and len(groups[index + 1]) == 2:
        return index + 1
    if index == 0 and len(groups[0]) > 3:
        return None
    return index


def _protect_shapes(
    groups: Sequence[str], kinds: Sequence[str], protected: list[bool], first: int
) -> None:
    """Phone numbers, dates, year and time ranges anywhere in the chain."""
    i = first
    while i < len(groups):
        if protected[i]:
            i += 1
            continue
        end = None
        for shape in _KEPT_SHAPES:
            end = shape(groups, kinds, i)
            if end is not None:
                break
        if end is None:
            i += 1
            continue
        for index in range(i, end + 1):
            protected[index] = True
        i = end + 1


def _standalone(kinds: Sequence[str], i: int, j: int) -> bool:
    """Like `_is_block` over the whole chain: a date followed by `-7` is no date."""
    return _is_block(kinds, i, j, 0, len(kinds))


def _date_end(groups: Sequence[str], kinds: Sequence[str], i: int) -> int | None:
    group = groups[i]
    if len(groups) == 1 and len(group) == 8:
        # 12032026 or 20260312, standing alone (with a neighbour it may be part of a BSN).
        dated = _is_date(group[:2], group[2:4], group[4:]) or _is_date(
            group[6:], group[4:6], group[:4]
        )
        return i if dated else None
    if i + 2 >= len(groups) or kinds[i] != kinds[i + 1] or kinds[i] not in _DATE_GAPS:
        return None
    a, b, c = groups[i : i + 3]
    dated = (len(a) <= 2 and len(b) <= 2 and _is_date(a, b, c)) or (
        len(a) == 4 and len(b) <= 2 and len(c) <= 2 and _is_date(c, b, a)
    )
    return i + 2 if dated and _standalone(kinds, i, i + 2) else None


def _is_date(day: str, month: str, year: str) -> bool:
    return (
        len(year) == 4
        and 1 <= int(day) <= 31
        and 1 <= int(month) <= 12
        and 1900 <= int(year) <= 2099
    )


def _range_end(groups: Sequence[str], kinds: Sequence[str], i: int) -> int | None:
    """2024-2026, 2024/2025: two years."""
    if i + 1 >= len(groups) or kinds[i] not in _RANGE_GAPS:
        return None
    a, b = groups[i], groups[i + 1]
    years = all(len(y) == 4 and 1900 <= int(y) <= 2099 for y in (a, b))
    if not years or not _standalone(kinds, i, i + 1):
        return None
    # "zaken/2024/2000 000 07": the second "year" begins a BSN written on after it.
    return None if _begins_bsn(groups, i + 1) else i + 1


def _begins_bsn(groups: Sequence[str], i: int) -> bool:
    """The digits from group i on, whatever the gaps, start with a BSN (9 digits, or 8 that
    left out the leading zero)."""
    digits = "".join(groups[i:])
    return is_bsn(digits[:9]) or (len(digits) >= 8 and is_bsn("0" + digits[:8]))


def _time_range_end(groups: Sequence[str], kinds: Sequence[str], i: int) -> int | None:
    """09.00-17.00: opening hours, two times with a dot."""
    if i + 3 >= len(groups) or kinds[i] != "." or kinds[i + 2] != "." or kinds[i + 1] == ".":
        return None
    h1, m1, h2, m2 = groups[i : i + 4]
    times = all(
        len(h) <= 2 and len(m) == 2 and int(h) <= 24 and int(m) <= 59
        for h, m in ((h1, m1), (h2, m2))
    )
    return i + 3 if times and _standalone(kinds, i, i + 3) else None


def _phone_end(groups: Sequence[str], kinds: Sequence[str], i: int) -> int | None:
    """A Dutch phone number: 10 digits from an area code group (06, 020, 0591) or in one run;
    0800/0900 numbers of 8 or 11 digits."""
    first = groups[i]
    if not first.startswith("0") or first.startswith("00"):
        return None
    service = first in _SERVICE_NUMBERS
    if not (2 <= len(first) <= 4 or len(first) == 10 or service):
        return None
    total = 0
    for j in range(i, len(groups)):
        if j > i and kinds[j - 1] not in _PHONE_GAPS:
            return None
        total += len(groups[j])
        if total == 10 or (service and total in (8, 11)):
            return j
        if total > 11:
            return None
    return None


_KEPT_SHAPES: Final = (_date_end, _range_end, _time_range_end, _phone_end)
