"""Labelled questions: one format for examples, history exports and test sets."""

from __future__ import annotations

from pathlib import Path

import pytest
from kcc_shared.examples import (
    DatasetError,
    LabelledQuestion,
    check_labels,
    read_labelled,
    read_labelled_file,
)


def test_read_labelled_takes_either_label_field_and_skips_blank_lines() -> None:
    lines = [
        '{"id": "q1", "question": "Paspoort", "expected_department": "burgerzaken"}',
        "",
        '{"question": "Container", "department": "afval", "style": "plain", "x": 1}',
    ]

    rows = read_labelled(lines)

    assert rows == [
        LabelledQuestion("q1", "Paspoort", "burgerzaken", line=1),
        LabelledQuestion("line-3", "Container", "afval", style="plain", line=3),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "x", ', "line 2: not valid JSON: Expecting property name"),
        ('["x"]', "line 2: expected a JSON object"),
        ('{"department": "afval"}', "line 2: 'question' must be a non-empty string"),
        ('{"question": "   ", "department": "afval"}', "line 2: 'question' must be a non-empty"),
        ('{"question": "x"}', "line 2: 'department' must be a non-empty string"),
        (
            '{"question": "x", "department": "afval", "expected_department": "afval"}',
            "line 2: give 'department' or 'expected_department', not both",
        ),
        ('{"question": "x", "department": "afval", "category": 3}', "'category' must be a str"),
        ('{"question": "x", "department": "afval", "id": "q1"}', "duplicate id 'q1' (first at"),
    ],
)
def test_read_labelled_names_the_bad_line(line: str, message: str) -> None:
    good = '{"id": "q1", "question": "Paspoort", "department": "burgerzaken"}'

    with pytest.raises(DatasetError) as caught:
        read_labelled([good, line], source="vragen.jsonl")

    assert caught.value.line == 2
    assert str(caught.value).startswith(f"vragen.jsonl:2: {message.removeprefix('line 2: ')}")


def test_read_labelled_file_says_why_it_cannot_read(tmp_path: Path) -> None:
    binary = tmp_path / "vragen.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")

    with pytest.raises(DatasetError, match="not UTF-8 text"):
        read_labelled_file(binary)
    with pytest.raises(DatasetError, match="file not found"):
        read_labelled_file(tmp_path / "missing.jsonl")


def test_check_labels_refuses_unknown_departments_and_bsns() -> None:
    rows = read_labelled(
        [
            '{"question": "Paspoort", "department": "burgerzaken"}',
            '{"question": "Mijn BSN is 111222333", "department": "burgerzaken"}',
            '{"question": "Hond", "department": "dierenzaken"}',
        ]
    )

    with pytest.raises(DatasetError, match="line 3: unknown department 'dierenzaken'"):
        check_labels(rows, {"burgerzaken"})
    with pytest.raises(DatasetError, match="line 2: the question holds a citizen service number"):
        check_labels(rows[:2], {"burgerzaken"}, allow_bsn=False)
    check_labels(rows[:2], {"burgerzaken"})
