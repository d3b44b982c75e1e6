"""Labelled questions: the organisation's example questions, history exports and test sets.

One JSON Lines format for all of them, one object per line:

    {"id": "vb-afval-001", "question": "...", "department": "afval", "style": "paraphrase"}

``department`` is the department the question belongs to; ``expected_department`` is accepted as
the same field (test sets say it that way). ``id``, ``style`` (how the question is written:
plain, shorthand, paraphrase, context, english, typos, ...), ``category`` (the catalog id an agent
picked) and ``source`` are optional; other fields are ignored. Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kcc_shared.privacy import redact_bsn

__all__ = [
    "LABEL_FIELDS",
    "DatasetError",
    "LabelledQuestion",
    "check_labels",
    "read_labelled",
    "read_labelled_file",
]

# The two spellings of the label; a line may use either, not both.
LABEL_FIELDS: Final = ("department", "expected_department")


@dataclass(frozen=True)
class LabelledQuestion:
    """A question with the department it belongs to."""

    id: str
    question: str
    department: str
    category: str | None = None
    style: str | None = None
    source: str | None = None
    line: int | None = None


class DatasetError(ValueError):
    """A labelled-questions file has a bad line (or cannot be read: line 0)."""

    def __init__(self, line: int, message: str, source: str | None = None) -> None:
        self.line = line
        self.message = message
        self.source = source
        where = f"line {line}"
        if source:
            # Line 0: the file as a whole (it could not be read).
            where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {message}")


def _optional_text(data: Mapping[str, object], key: str, number: int) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise DatasetError(number, f"'{key}' must be a string")
    return value


def read_labelled(lines: Iterable[str], source: str | None = None) -> list[LabelledQuestion]:
    """Parse labelled questions; DatasetError names the first bad line and what is wrong."""
    rows: list[LabelledQuestion] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                number, f"not valid JSON: {exc.msg} (column {exc.colno})", source
            ) from None
        if not isinstance(data, dict):
            raise DatasetError(number, "expected a JSON object", source)
        try:
            rows.append(_row(data, number, seen))
        except DatasetError as exc:
            raise DatasetError(exc.line, exc.message, source) from None
    return rows


def _row(data: dict[str, object], number: int, seen: dict[str, int]) -> LabelledQuestion:
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(number, "'question' must be a non-empty string")
    labels = [key for key in LABEL_FIELDS if key in data]
    if len(labels) > 1:
        raise DatasetError(number, "give 'department' or 'expected_department', not both")
    label = data.get(labels[0]) if labels else None
    if not isinstance(label, str) or not label.strip():
        raise DatasetError(number, "'department' must be a non-empty string")
    row_id = data.get("id", f"line-{number}")
    if not isinstance(row_id, str | int) or isinstance(row_id, bool):
        raise DatasetError(number, "'id' must be a string")
    if str(row_id) in seen:
        raise DatasetError(number, f"duplicate id '{row_id}' (first at line {seen[str(row_id)]})")
    seen[str(row_id)] = number
    return LabelledQuestion(
        id=str(row_id),
        question=question,
        department=label.strip(),
        category=_optional_text(data, "category", number),
        style=_optional_text(data, "style", number),
        source=_optional_text(data, "source", number),
        line=number,
    )


def read_labelled_file(path: str | Path) -> list[LabelledQuestion]:
    """Read a labelled-questions file; DatasetError (line 0) when it cannot be read at all."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(0, "file not found", source) from None
    except UnicodeDecodeError:
        raise DatasetError(0, "not UTF-8 text", source) from None
    except OSError as exc:
        raise DatasetError(0, f"cannot read: {exc.strerror or exc}", source) from None
    return read_labelled(text.splitlines(), source)


def check_labels(
    rows: Iterable[LabelledQuestion],
    departments: Iterable[str],
    categories: Iterable[str] = (),
    *,
    source: str | None = None,
    allow_bsn: bool = True,
) -> None:
    """Refuse labels that name no department (or category) of the organisation; with
    ``allow_bsn=False`` also a question holding a citizen service number (examples are shown to
    people, so they must never hold one)."""
    known = set(departments)
    known_categories = set(categories)
    for row in rows:
        line = row.line or 0
        if row.department not in known:
            raise DatasetError(
                line,
                f"unknown department '{row.department}'; known: {', '.join(sorted(known))}",
                source,
            )
        if row.category is not None and row.category not in known_categories:
            raise DatasetError(line, f"unknown category '{row.category}'", source)
        if not allow_bsn and redact_bsn(row.question)[1]:
            raise DatasetError(
                line, "the question holds a citizen service number (BSN); remove it", source
            )
