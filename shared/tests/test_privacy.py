"""BSN redaction: every way an agent writes a BSN goes, and numbers that merely look alike stay."""

from __future__ import annotations

import pytest
from kcc_shared.privacy import REDACTED, is_bsn, redact_bsn

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
        pytest.param("BSN-nummer: 123456782", "BSN-nummer: [BSN]", 1, id="hyphenated label"),
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
        pytest.param("BSN 12345678", "BSN 12345678", 0, id="labelled but eight digits"),
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
        pytest.param("zaak 2024-123456782", "zaak 2024-123456782", 0, id="tail of a case id"),
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
