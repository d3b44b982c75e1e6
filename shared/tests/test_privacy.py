"""BSN redaction: every way an agent writes a BSN goes, and numbers that merely look alike stay."""

from __future__ import annotations

import itertools
import re
import time
import unicodedata
from typing import NamedTuple

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from kcc_shared.privacy import REDACTED, contains_bsn, is_bsn, redact_bsn

# The privacy rows of the labelled dev set, as they must come out.
DEV_SET_REDACTED = {
    "priv-001": "Meneer met [BSN] vraagt of zijn nieuwe adres al verwerkt is in de BRP.",
    "priv-002": (
        "Mevrouw ([BSN], tel 06-12345678) belt over haar bijstandsuitkering die niet is uitbetaald."
    ),
    "priv-003": "Kwijtschelding aanvraag, [BSN], mail terug naar j.jansen@example.nl",
}


@pytest.mark.parametrize("row_id", sorted(DEV_SET_REDACTED))
def test_the_privacy_rows_of_the_dev_set_are_redacted(
    dev_rows: list[dict[str, object]], row_id: str
) -> None:
    [row] = [r for r in dev_rows if r["id"] == row_id]
    assert isinstance(row["question"], str)

    assert redact_bsn(row["question"]) == (DEV_SET_REDACTED[row_id], 1)


def test_no_other_question_of_the_dev_set_is_touched(dev_rows: list[dict[str, object]]) -> None:
    others = [r for r in dev_rows if r["id"] not in DEV_SET_REDACTED]
    assert others

    changed = [r["id"] for r in others if redact_bsn(str(r["question"]))[1]]

    assert changed == []


# 123456782, 111222333 and 999993653 pass the 11-check; so do 612345671 and 417164300, which
# makes the phone number and IBAN below real traps: nine of their digits form a valid BSN.
@pytest.mark.parametrize(
    ("text", "expected", "count"),
    [
        pytest.param("123456782", "[BSN]", 1, id="plain"),
        pytest.param("1234.56.782", "[BSN]", 1, id="grouped with dots"),
        pytest.param("123 456 782", "[BSN]", 1, id="grouped with spaces"),
        pytest.param("123-45-6782", "[BSN]", 1, id="grouped with dashes"),
        pytest.param("(123456782)", "([BSN])", 1, id="in brackets"),
        pytest.param("Klant 123456782.", "Klant [BSN].", 1, id="before a full stop"),
        pytest.param("bsn: 123456782", "[BSN]", 1, id="label goes too"),
        pytest.param("Burgerservicenummer 999993653", "[BSN]", 1, id="full label"),
        pytest.param("burger service nummer: 1234.56.782", "[BSN]", 1, id="spaced label"),
        pytest.param("BSN-nummer: 123456782", "[BSN]", 1, id="hyphenated label"),
        # Documented choice: a labelled number that fails the 11-check is a mistyped BSN,
        # still personal data; it goes.
        pytest.param("BSN: 123456789", "[BSN]", 1, id="labelled, fails the 11-check"),
        pytest.param("bsn 123-45-6789", "[BSN]", 1, id="labelled, grouped, fails the check"),
        pytest.param(
            "BSN 123456782 en partner 111222333", "[BSN] en partner [BSN]", 2, id="two of them"
        ),
        pytest.param("Meneer met BSN 111222333", "Meneer met [BSN]", 1, id="in a sentence"),
        # What must stay.
        pytest.param("123456789", "123456789", 0, id="unlabelled, fails the 11-check"),
        pytest.param("000000000", "000000000", 0, id="all zeros"),
        pytest.param("06-12345678", "06-12345678", 0, id="mobile with dash"),
        pytest.param("0612345678", "0612345678", 0, id="mobile plain"),
        pytest.param("06-12345671", "06-12345671", 0, id="mobile whose tail passes the check"),
        pytest.param("0612345671", "0612345671", 0, id="mobile plain, tail passes the check"),
        pytest.param("06 1234 5671", "06 1234 5671", 0, id="mobile grouped"),
        pytest.param("+31 6 12345671", "+31 6 12345671", 0, id="international mobile"),
        pytest.param("+31 (0)6 12345671", "+31 (0)6 12345671", 0, id="international with (0)"),
        pytest.param("0031 6 12345671", "0031 6 12345671", 0, id="international with 00"),
        pytest.param("NL91ABNA0417164300", "NL91ABNA0417164300", 0, id="IBAN"),
        pytest.param("NL91 ABNA 0417 1643 00", "NL91 ABNA 0417 1643 00", 0, id="IBAN grouped"),
        pytest.param("order 1234567820", "order 1234567820", 0, id="10-digit order number"),
        pytest.param("1234 AB", "1234 AB", 0, id="postcode"),
        pytest.param("1234 AB 56", "1234 AB 56", 0, id="postcode and house number"),
        pytest.param("12-03-2024", "12-03-2024", 0, id="date"),
        pytest.param("91234567823", "91234567823", 0, id="nine digits inside a longer number"),
        pytest.param("123456782123", "123456782123", 0, id="a BSN as a prefix of a number"),
        pytest.param("", "", 0, id="empty"),
    ],
)
def test_redact_bsn(text: str, expected: str, count: int) -> None:
    assert redact_bsn(text) == (expected, count)


def test_redaction_is_idempotent() -> None:
    once, _ = redact_bsn("BSN 123456782, tel 06-12345671")

    assert redact_bsn(once) == (once, 0)
    assert REDACTED in once


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        pytest.param("123456782", True, id="123456782"),
        pytest.param("111222333", True, id="111222333"),
        pytest.param("999993653", True, id="999993653"),
        pytest.param("612345671", True, id="612345671"),
        pytest.param("123456789", False, id="fails the 11-check"),
        pytest.param("111222334", False, id="last digit off by one"),
        pytest.param("000000000", False, id="all zeros passes the sum but is no BSN"),
        pytest.param("12345678", False, id="eight digits"),
        pytest.param("1234567820", False, id="ten digits"),
        pytest.param("12345678a", False, id="a letter"),
        pytest.param("123 456 782", False, id="separators (digits only)"),
        pytest.param("", False, id="empty"),
    ],
)
def test_is_bsn(digits: str, valid: bool) -> None:
    assert is_bsn(digits) is valid


# -- every way a BSN slipped through before ---------------------------------------------------
# 123456782 and 111222333 pass the 11-check; 12345611 does with a leading zero (012345611).
ZWSP, NBSP, NNBSP = "\u200b", "\u00a0", "\u202f"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # After a label that ends in a dot.
        pytest.param("BSN.123456782", "[BSN]", id="BSN."),
        pytest.param("BSN nr.123456782", "[BSN]", id="BSN nr."),
        pytest.param("bsn-nr.:123456782", "[BSN]", id="bsn-nr.:"),
        pytest.param("klant nr.123456782", "klant nr.[BSN]", id="klant nr."),
        pytest.param("Burgerservicenummer.123456782 bekend", "[BSN] bekend", id="long label."),
        # In a URL path, a dossier code, a path with more after it.
        pytest.param(
            "https://gemeente.nl/personen/123456782", "https://gemeente.nl/personen/[BSN]", id="url"
        ),
        pytest.param("/personen/123456782/1", "/personen/[BSN]/1", id="path segment"),
        pytest.param("123456782/1", "[BSN]/1", id="bsn/1"),
        pytest.param("dossier-123456782", "dossier-[BSN]", id="dossier code"),
        pytest.param("zaak 2024-123456782", "zaak 2024-[BSN]", id="after a year"),
        pytest.param("ref123456782x", "ref[BSN]x", id="glued to letters"),
        pytest.param("/personen/123.456.782/1", "/personen/[BSN]/1", id="grouped in a path"),
        # In an e-mail local part.
        pytest.param("abc123456782@x.nl", "abc[BSN]@x.nl", id="e-mail"),
        pytest.param("j.jansen.123456782@example.nl", "j.jansen.[BSN]@example.nl", id="e-mail."),
        # Separators.
        pytest.param("123  456  782", "[BSN]", id="double spaces"),
        pytest.param("1234   56   782", "[BSN]", id="triple spaces"),
        pytest.param("123\u2013456\u2013782", "[BSN]", id="en dash"),
        pytest.param("123\u2014456\u2014782", "[BSN]", id="em dash"),
        pytest.param("123/456/782", "[BSN]", id="slash"),
        pytest.param("123_456_782", "[BSN]", id="underscore"),
        pytest.param("123,456,782", "[BSN]", id="comma"),
        pytest.param("123 - 456 - 782", "[BSN]", id="spaced dash"),
        pytest.param("123.456-782", "[BSN]", id="mixed separators"),
        # Invisible and special spaces.
        pytest.param(f"1234{ZWSP}56782", "[BSN]", id="zero-width space"),
        pytest.param(
            f"1{ZWSP}2{ZWSP}3{ZWSP}4{ZWSP}5{ZWSP}6{ZWSP}7{ZWSP}8{ZWSP}2", "[BSN]", id="ZWSPs"
        ),
        pytest.param("1234\u200c56782", "[BSN]", id="zero-width non-joiner"),
        pytest.param("1234\u200d56782", "[BSN]", id="zero-width joiner"),
        pytest.param("1234\u206056782", "[BSN]", id="word joiner"),
        pytest.param("1234\ufeff56782", "[BSN]", id="byte order mark"),
        pytest.param("1234\u00ad56782", "[BSN]", id="soft hyphen"),
        pytest.param("1234\u200e56782", "[BSN]", id="left-to-right mark"),
        pytest.param("1234\u202e56782", "[BSN]", id="right-to-left override"),
        pytest.param(f"123{NBSP}456{NBSP}782", "[BSN]", id="no-break space"),
        pytest.param(f"123{NNBSP}456{NNBSP}782", "[BSN]", id="narrow no-break space"),
        pytest.param(f"123 {ZWSP}456{ZWSP} 782", "[BSN]", id="space and ZWSP"),
        pytest.param(
            "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff12", "[BSN]", id="fullwidth"
        ),
        # Eight digits: the leading zero dropped.
        pytest.param("12345611", "[BSN]", id="eight digits"),
        pytest.param("1234 5611", "[BSN]", id="eight digits grouped"),
        pytest.param("BSN 12345611", "[BSN]", id="eight digits after BSN"),
        pytest.param("BSN 12345678", "[BSN]", id="eight digits after BSN, failing the check"),
        pytest.param("bsn: 1234.5678", "[BSN]", id="eight grouped digits after BSN"),
        # Labels (with a number that fails the check).
        pytest.param("sofinummer 123456789", "[BSN]", id="sofinummer"),
        pytest.param("sofi-nummer: 123456789", "[BSN]", id="sofi-nummer"),
        pytest.param("sofi nr. 123456789", "[BSN]", id="sofi nr."),
        pytest.param("burger service nummer 123456789", "[BSN]", id="burger service nummer"),
        pytest.param("BSN#123456789", "[BSN]", id="BSN#"),
        pytest.param("bsn=123456789&x=1", "[BSN]&x=1", id="BSN= in a query"),
        pytest.param("BSN is 123 456 789", "[BSN]", id="BSN is"),
        pytest.param("BSN:\n123456789", "[BSN]", id="label on the line before"),
        # A pasted mail, wrapped by the mail program where a space was.
        pytest.param(
            "het nummer is 123 456\n782 volgens", "het nummer is [BSN] volgens", id="wrapped mail"
        ),
        pytest.param("nummer 123 456\r\n782.", "nummer [BSN].", id="wrapped, CRLF from a form"),
        pytest.param("> nummer 123 456\n> 782", "> nummer [BSN]", id="wrapped, quoted"),
        pytest.param("BSN: 123 456 \n 789", "[BSN]", id="labelled, wrapped"),
        pytest.param("BSN 123 456 789 0", "[BSN] 0", id="labelled: the first nine digits"),
        pytest.param(f"BSN{ZWSP}: 123456789", "[BSN]", id="label with a ZWSP"),
        # Next to other numbers.
        pytest.param("123456782, 111222333", "[BSN], [BSN]", id="a list"),
        pytest.param("123 456 782, 111 222 333", "[BSN], [BSN]", id="a list of grouped"),
        pytest.param("12-03-2026 123 456 782", "12-03-2026 [BSN]", id="after a date"),
        pytest.param("12-03-2026.5", "12-03-2026.5", id="a date and a digit: kept"),
        pytest.param("06-12345678 123456782", "06-12345678 [BSN]", id="after a phone"),
        pytest.param("+31 6 12345678 123456782", "+31 6 12345678 [BSN]", id="after +31 phone"),
        pytest.param("+31 6 123456782", "+31 6 [BSN]", id="too long for +31"),
        pytest.param("12-03-2026-5", "[BSN]", id="a date followed by the same separator"),
    ],
)
def test_every_reported_format_is_redacted(text: str, expected: str) -> None:
    redacted, count = redact_bsn(text)

    assert redacted == expected
    assert count == expected.count(REDACTED)


@pytest.mark.parametrize(
    "text",
    [
        # Phone numbers, also those of which nine (or eight) digits pass the check.
        "06 12 34 56 78",
        "06 12 34 56 71",
        "06-12345611",
        "06 12345611",
        "0612345611",
        "06.12.34.56.11",
        "+31 6 12345611",
        "+31612345611",
        "+31 (0)6 12345611",
        "+31 (0)612345671",
        "0031 6 12345611",
        "0031612345671",
        "(06) 12345611",
        "(020) 123 45 67",
        "020-1234567",
        "0591-123456",
        "+32 470 12 34 56",
        "0800-1234",
        "0900 123 4567",
        # IBANs (their account numbers are longer than a BSN).
        "NL91ABNA0417164300",
        "NL91 ABNA 0417 1643 00",
        "BE68 5390 0754 7034",
        "DE89 3704 0044 0532 0130 00",
        # Postcodes, dates, times, amounts, years.
        "1234 AB",
        "Dorpsstraat 12, 1234 AB Utrecht",
        "12-03-2026",
        "12.03.2026",
        "12/03/2026",
        "2026-03-12",
        "12032026",
        "20260312",
        "12-03-2026 14.30",
        "2026-03-12T10:15:30.123456+00:00",
        "open 09.00-17.00 uur",
        "belastingjaar 2024/2025",
        "2024-2026",
        "€ 1.234,56",
        "€ 123.456,78",
        "€ 1.234.567,89",
        "EUR 12.345.678,90",
        "1.234.567,89 euro",
        "€ 312.500,-",
        "€ 1234567,89",
        # Numbers that fail the check, and longer numbers.
        "123456789",
        "123 456 789",
        "1234.56.789",
        "order 1234567820",
        "1 123 456 782",
        "0612345678123456782",
        # Ids.
        "3f2a1234-5678-4abc-9def-123456782abc",
        "12345611-1234-4abc-9def-0123456789ab",
        # Words that look like labels.
        "BSN onbekend, tel 06-12345678",
        # Numbers on lines of their own: a blank line between, or each a number of its own.
        "123 456\n\n782",
        "06 12 34 56 78\n06 98 76 54 32",
        "2024\n2025\n2026",
        "12-03-2026\n12-04-2026",
        "Het bsn van meneer staat in het dossier",
    ],
)
def test_numbers_that_are_no_bsn_are_kept(text: str) -> None:
    assert redact_bsn(text) == (text, 0)
    assert contains_bsn(text) is False


@pytest.mark.parametrize("text", ["123456782", "BSN 123456789", "x 12345611 y"])
def test_contains_bsn(text: str) -> None:
    assert contains_bsn(text) is True


def test_redaction_takes_linear_time() -> None:
    # Inputs that would make a backtracking pattern blow up: long runs of separators,
    # invisible characters and digit groups. 40,000 characters stay far below a second.
    for text in (
        "1 " * 20_000,
        "1" + "\u200b" * 40_000,
        "bsn" + " " * 40_000,
        "12." * 13_000,
        "BSN " * 10_000,
        "a1b2c3d4" * 5_000,
    ):
        started = time.perf_counter()
        redact_bsn(text)
        assert time.perf_counter() - started < 1.0, text[:20]


# -- properties --------------------------------------------------------------------------------
# The generators below build BSNs and numbers that are no BSN in the ways people write them,
# and put them in sentences, URLs, e-mail addresses and after labels. Their own 11-check and
# digit reading are written here, independent of kcc_shared.privacy.

WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)
PROPERTY = settings(max_examples=1500, deadline=None, database=None)

# Separators as people type them, with the kind the redaction sees them as.
SEPARATORS: dict[str, str] = {
    " ": " ",
    "  ": " ",
    # A line a mail program wrapped where the space was (CRLF: a form's textarea).
    "\n": "\n",
    "\r\n": "\n",
    NBSP: " ",
    NNBSP: " ",
    ".": ".",
    "-": "-",
    "\u2013": "-",
    "\u2014": "-",
    "/": "/",
    "_": "_",
    ",": ",",
}
INVISIBLES = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u2063")
DIGIT_SCRIPTS = (0x30, 0x30, 0x30, 0xFF10, 0x0660)  # ASCII (mostly), fullwidth, Arabic-Indic
WORDS = (
    "meneer", "mevrouw", "belt", "over", "haar", "zijn", "uitkering", "paspoort", "aanvraag",
    "klant", "nummer", "dossier", "zaak", "graag", "terugbellen", "Gemeente", "Utrecht", "de",
    "het", "een", "met", "voor", "kenmerk", "referentie", "is", "staat", "op",
)  # fmt: skip
WRAPPERS = ("{}", "({})", "[{}]", "'{}'", '"{}"', "{}.", "{},", "{}:", "{};", "{}!", "{}?")


class Template(NamedTuple):
    text: str
    # The separator joining the number to digits around it (it must differ from the ones
    # inside the number: "123 456 782 1" is one ten-digit number, like "06 12 34 56 78").
    joins: str | None = None
    labelled: bool = False


TEMPLATES = (
    Template("{}"),
    Template("klant nr.{}"),
    Template("https://gemeente.example.nl/personen/{}"),
    Template("https://gemeente.example.nl/personen/{}/1", joins="/"),
    Template("https://gemeente.example.nl/zaken/2024/{}", joins="/"),
    Template("{}/1", joins="/"),
    Template("dossier-{}"),
    Template("zaak_{}_brief"),
    Template("j.jansen{}@example.nl"),
    Template("{}@gemeente.nl"),
    Template("mailto:klant.{}@example.nl?subject=vraag"),
    Template("BSN {}", labelled=True),
    Template("BSN: {}", labelled=True),
    Template("BSN.{}", labelled=True),
    Template("BSN nr.{}", labelled=True),
    Template("bsn-nummer={}", labelled=True),
    Template("burgerservicenummer {}", labelled=True),
    Template("Burger Service Nummer: {}", labelled=True),
    Template("sofinummer {}", labelled=True),
    Template("sofi-nummer: {}", labelled=True),
    Template("https://gemeente.example.nl/zoek?bsn={}&x=1", labelled=True),
)


def passes_check(digits: str) -> bool:
    return (
        digits != "000000000"
        and sum(int(d) * w for d, w in zip(digits, WEIGHTS, strict=True)) % 11 == 0
    )


def digits_in(text: str) -> str:
    """Every decimal digit of the text, in ASCII, with everything else dropped."""
    return "".join(str(unicodedata.decimal(c)) for c in text if c.isdecimal())


@st.composite
def valid_bsns(draw: st.DrawFn, *, leading_zero: bool = False) -> str:
    digits = draw(st.lists(st.integers(0, 9), min_size=8, max_size=8))
    if leading_zero:
        digits[0] = 0
    # The check digit is the weighted sum mod 11; where that is 10, nudge the eighth digit.
    for _ in range(11):
        check = sum(d * w for d, w in zip(digits, WEIGHTS[:8], strict=True)) % 11
        if check < 10:
            break
        digits[7] = (digits[7] + 1) % 10
    bsn = "".join(map(str, digits)) + str(check)
    assume(bsn != "000000000")
    assert passes_check(bsn)
    return bsn


class Rendering(NamedTuple):
    text: str
    groups: tuple[str, ...]
    kinds: frozenset[str]


@st.composite
def renderings(draw: st.DrawFn, digits: str, *, uniform: bool = True) -> Rendering:
    """The digits in groups with separators, invisible characters and maybe another script."""
    cuts = sorted(draw(st.sets(st.integers(1, len(digits) - 1), max_size=len(digits) - 1)))
    groups = tuple(digits[a:b] for a, b in zip([0, *cuts], [*cuts, len(digits)], strict=True))
    if uniform:
        separator = draw(st.sampled_from(sorted(SEPARATORS)))
        separators = [separator] * len(cuts)
    else:
        separators = draw(
            st.lists(st.sampled_from(sorted(SEPARATORS)), min_size=len(cuts), max_size=len(cuts))
        )
    zero = draw(st.sampled_from(DIGIT_SCRIPTS))
    chars = [chr(zero + int(d)) for group in groups for d in group]
    # Interleave the separators after each group, then sprinkle invisible characters.
    pieces: list[str] = []
    position = 0
    for index, group in enumerate(groups):
        pieces.append("".join(chars[position : position + len(group)]))
        position += len(group)
        if index < len(separators):
            pieces.append(separators[index])
    text = "".join(pieces)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(INVISIBLES)) + text[at:]
    return Rendering(text, groups, frozenset(SEPARATORS[s] for s in separators))


def _is_date(day: str, month: str, year: str) -> bool:
    return 1 <= int(day) <= 31 and 1 <= int(month) <= 12 and 1900 <= int(year) <= 2099


def reads_as_something_else(rendering: Rendering) -> bool:
    """Eight digits that are exactly a date, a year range or a 0800/0900 number as written.

    These are documented exceptions (docs/intake.md): 12-03-2026 is a date even though
    012032026 might pass the 11-check.
    """
    groups, digits = rendering.groups, "".join(rendering.groups)
    if len(digits) != 8:
        return False
    sizes = tuple(len(g) for g in groups)
    if sizes == (8,):
        return _is_date(digits[:2], digits[2:4], digits[4:]) or _is_date(
            digits[6:], digits[4:6], digits[:4]
        )
    if sizes == (2, 2, 4):
        return _is_date(*groups)
    if sizes == (4, 2, 2):
        return _is_date(groups[2], groups[1], groups[0])
    if sizes == (4, 4) and all(1900 <= int(y) <= 2099 for y in groups):
        return True
    return groups[0] in ("0800", "0900", "0906", "0909")


@st.composite
def texts_with_a_bsn(draw: st.DrawFn, *, uniform: bool = True) -> tuple[str, str]:
    """(text, the BSN as its digits are written: 9, or 8 without the leading zero)."""
    eight = draw(st.booleans())
    bsn = draw(valid_bsns(leading_zero=eight))
    written = bsn[1:] if eight else bsn
    rendering = draw(renderings(written, uniform=uniform))
    template = draw(st.sampled_from(TEMPLATES))
    if not template.labelled:
        assume(not reads_as_something_else(rendering))
    if template.joins is not None:
        assume(template.joins not in rendering.kinds)
    number = (
        draw(st.sampled_from(WRAPPERS)).format(rendering.text)
        if template.text == "{}"
        else (rendering.text)
    )
    before = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=4)))
    after = " ".join(draw(st.lists(st.sampled_from(WORDS), max_size=4)))
    text = " ".join(p for p in (before, template.text.format(number), after) if p)
    return text, written


@PROPERTY
@given(texts_with_a_bsn())
@example(("BSN.123456782", "123456782"))
@example(("klant nr.1234 5611", "12345611"))
# A BSN on a line of its own after a line that ends in a number.
@example(("zaak 2024\n1234 5611", "12345611"))
# Found by this test: "2024/2000" was kept as a range of years, and the rest was too short.
@example(("https://gemeente.example.nl/zaken/2024/2000 000 07 meneer", "200000007"))
def test_a_bsn_never_survives(case: tuple[str, str]) -> None:
    text, written = case

    redacted, count = redact_bsn(text)

    assert written not in digits_in(redacted)
    assert count >= 1
    assert REDACTED in redacted
    assert redact_bsn(redacted) == (redacted, 0)


@PROPERTY
@given(texts_with_a_bsn(uniform=False))
def test_a_bsn_with_mixed_separators_never_survives(case: tuple[str, str]) -> None:
    text, written = case
    # Mixed separators can make a date or a time range out of part of a number
    # ("12-03-2026.7"); those readings are kept on purpose, so leave them out here.
    assume(not re.search(r"\d[-./ ]\d\d?[-./ ]\d{4}|\d{4}[-/ ]+\d{4}|\d\.\d\d\D+\d\d?\.\d\d", text))

    redacted, _ = redact_bsn(text)

    assert written not in digits_in(redacted)


def _random_digits(draw: st.DrawFn, count: int) -> str:
    return "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=count, max_size=count)))


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    mobile = draw(st.booleans())
    area = "6" if mobile else draw(st.sampled_from(["10", "20", "30", "70", "591", "229", "475"]))
    rest = _random_digits(draw, 9 - len(area))
    formats = [
        f"0{area}-{rest}",
        f"0{area} {rest}",
        f"0{area}{rest}",
        f"+31 {area} {rest}",
        f"+31{area}{rest}",
        f"+31 (0){area} {rest}",
        f"0031 {area} {rest}",
        f"(0{area}) {rest}",
    ]
    if mobile:
        pairs = " ".join(rest[i : i + 2] for i in range(0, 8, 2))
        formats += [f"06 {pairs}", f"06-{pairs}", f"06-{rest[:4]} {rest[4:]}"]
        formats += [f"06.{pairs.replace(' ', '.')}"]
    else:
        formats += [f"0{area}-{rest[:3]} {rest[3:]}", f"0{area} {rest[:3]} {rest[3:5]} {rest[5:]}"]
    return draw(st.sampled_from(formats))


def _iban_check(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{98 - number % 97:02d}"


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.sampled_from(["NL", "BE", "DE"]))
    if country == "NL":
        bank = draw(st.sampled_from(["ABNA", "INGB", "RABO", "TRIO", "SNSB", "ASNB", "BUNQ"]))
        bban = bank + _random_digits(draw, 10)
    else:
        bban = _random_digits(draw, 12 if country == "BE" else 18)
    iban = country + _iban_check(country, bban) + bban
    assert int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1
    if draw(st.booleans()):
        return iban
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


@st.composite
def postcodes(draw: st.DrawFn) -> str:
    number = draw(st.integers(1000, 9999))
    letters = draw(st.sampled_from(["AB", "CD", "GH", "KL", "XZ"]))
    house = draw(st.integers(1, 250))
    return draw(
        st.sampled_from(
            [f"{number} {letters}", f"{number}{letters}", f"nr {house}, {number} {letters}"]
        )
    )


@st.composite
def dates(draw: st.DrawFn) -> str:
    day, month, year = (
        draw(st.integers(1, 28)),
        draw(st.integers(1, 12)),
        draw(st.integers(1900, 2099)),
    )
    separator = draw(st.sampled_from(["-", ".", "/"]))
    return draw(
        st.sampled_from(
            [
                f"{day:02d}{separator}{month:02d}{separator}{year}",
                f"{day}{separator}{month}{separator}{year}",
                f"{year}-{month:02d}-{day:02d}",
                f"{day:02d}{month:02d}{year}",
            ]
        )
    )


@st.composite
def amounts(draw: st.DrawFn) -> str:
    euros, cents = draw(st.integers(0, 99_999_999)), draw(st.integers(0, 99))
    grouped = f"{euros:,}".replace(",", ".")
    return draw(
        st.sampled_from(
            [
                f"€ {grouped},{cents:02d}",
                f"€{grouped},{cents:02d}",
                f"EUR {grouped},{cents:02d}",
                f"{grouped},{cents:02d} euro",
                f"€ {grouped},-",
                f"€ {euros},{cents:02d}" if euros < 10_000_000 else f"€ {grouped}",
            ]
        )
    )


@st.composite
def failing_nine_digit_numbers(draw: st.DrawFn) -> str:
    digits = _random_digits(draw, 9)
    assume(not passes_check(digits))
    sizes = draw(st.sampled_from([(9,), (3, 3, 3), (4, 2, 3), (3, 2, 4), (2, 3, 4)]))
    separator = draw(st.sampled_from(sorted(SEPARATORS)))
    cuts = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    return separator.join(digits[a:b] for a, b in itertools.pairwise(cuts))


NOT_BSNS = st.one_of(
    phone_numbers(), ibans(), postcodes(), dates(), amounts(), failing_nine_digit_numbers()
)


@PROPERTY
@given(
    st.lists(NOT_BSNS, min_size=1, max_size=4),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    st.sampled_from([" en ", "; ", " of ", " ("]),
)
def test_what_is_no_bsn_survives_unchanged(
    numbers: list[str], words: list[str], joiner: str
) -> None:
    text = " ".join(words) + " " + joiner.join(numbers)

    assert redact_bsn(text) == (text, 0)
