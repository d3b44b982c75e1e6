"""Check a similar-question file (data/similar-*.jsonl) and print its counts.

Usage: python3 data/check_similar.py data/similar-dev.jsonl [data/similar-validation.jsonl ...]

Each line is one JSON object of one of two kinds:

- ``earlier``: an answered question in the knowledge base,
  ``{"kind", "id" (e001), "department", "question", "answer", "answered_on" (YYYY-MM-DD)}``;
- ``new``: a question typed by a KCC-medewerker,
  ``{"kind", "id" (n001), "question", "match" (an earlier id in the same file, or null), "style"}``.

Exits 1 and names every problem (with its line number) when a file is not valid. Standard
library only, so it runs without the project's environment.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DEPARTMENTS = frozenset(
    {
        "afval",
        "belastingen",
        "burgerzaken",
        "juridische-zaken",
        "kcc-triage",
        "ondernemers",
        "openbare-ruimte",
        "parkeren",
        "sociaal-domein",
        "vergunningen",
        "wonen",
    }
)
STYLES = ("paraphrase", "telegram", "context", "typo", "english", "near_miss")
EARLIER_KEYS = frozenset({"kind", "id", "department", "question", "answer", "answered_on"})
NEW_KEYS = frozenset({"kind", "id", "question", "match", "style"})
EARLIER_ID = re.compile(r"e\d{3,}")
NEW_ID = re.compile(r"n\d{3,}")
# Nine or more digits in a row look like a BSN; 06 followed by eight digits like a mobile number.
PERSONAL_NUMBER = re.compile(r"\d{9,}|\b06[- ]?\d{8}\b")
SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
MAX_ANSWER_SENTENCES = 4
USAGE = "usage: python3 data/check_similar.py FILE.jsonl [FILE.jsonl ...]"


@dataclass
class Report:
    """What one file holds, and what is wrong with it."""

    errors: list[str] = field(default_factory=list)
    earlier: dict[str, str] = field(default_factory=dict)  # id -> department
    new: list[tuple[str, str | None, str]] = field(default_factory=list)  # id, match, style


def _text(obj: dict[str, object], key: str, where: str, errors: list[str]) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{where}: {key} must be a non-empty string")
        return ""
    if PERSONAL_NUMBER.search(value):
        errors.append(f"{where}: {key} contains what looks like a BSN or phone number")
    return value


def _check_earlier(obj: dict[str, object], where: str, report: Report) -> None:
    errors = report.errors
    if set(obj) != EARLIER_KEYS:
        errors.append(f"{where}: earlier keys must be {sorted(EARLIER_KEYS)}, got {sorted(obj)}")
    ident = _text(obj, "id", where, errors)
    if ident and not EARLIER_ID.fullmatch(ident):
        errors.append(f"{where}: earlier id {ident!r} is not like e001")
    department = _text(obj, "department", where, errors)
    if department and department not in DEPARTMENTS:
        errors.append(f"{where}: unknown department {department!r}")
    _text(obj, "question", where, errors)
    answer = _text(obj, "answer", where, errors)
    sentences = len(SENTENCE_END.findall(answer.strip()))
    if answer and not 1 <= sentences <= MAX_ANSWER_SENTENCES:
        errors.append(f"{where}: answer has {sentences} sentences, want 1 to 4")
    day = _text(obj, "answered_on", where, errors)
    if day:
        try:
            dt.date.fromisoformat(day)
        except ValueError:
            errors.append(f"{where}: answered_on {day!r} is not a YYYY-MM-DD date")
    if ident:
        report.earlier[ident] = department


def _check_new(obj: dict[str, object], where: str, report: Report) -> None:
    errors = report.errors
    if set(obj) != NEW_KEYS:
        errors.append(f"{where}: new keys must be {sorted(NEW_KEYS)}, got {sorted(obj)}")
    ident = _text(obj, "id", where, errors)
    if ident and not NEW_ID.fullmatch(ident):
        errors.append(f"{where}: new id {ident!r} is not like n001")
    _text(obj, "question", where, errors)
    match = obj.get("match")
    if match is not None and not (isinstance(match, str) and EARLIER_ID.fullmatch(match)):
        errors.append(f"{where}: match must be an earlier id or null, got {match!r}")
        match = None
    style = obj.get("style")
    if style not in STYLES:
        errors.append(f"{where}: style must be one of {', '.join(STYLES)}, got {style!r}")
        style = "?"
    report.new.append((ident, match, str(style)))


def check(path: Path) -> Report:
    """Read and validate one file."""
    report = Report()
    seen_ids: dict[str, int] = {}
    seen_questions: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path}:{number}"
        if not line.strip():
            report.errors.append(f"{where}: empty line")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            report.errors.append(f"{where}: not JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            report.errors.append(f"{where}: not a JSON object")
            continue
        kind = obj.get("kind")
        if kind == "earlier":
            _check_earlier(obj, where, report)
        elif kind == "new":
            _check_new(obj, where, report)
        else:
            report.errors.append(f"{where}: kind must be 'earlier' or 'new', got {kind!r}")
            continue
        ident = obj.get("id")
        if isinstance(ident, str):
            if ident in seen_ids:
                report.errors.append(f"{where}: id {ident} also on line {seen_ids[ident]}")
            seen_ids.setdefault(ident, number)
        question = obj.get("question")
        if isinstance(question, str):
            key = " ".join(question.lower().split())
            if key in seen_questions:
                report.errors.append(f"{where}: same question text as line {seen_questions[key]}")
            seen_questions.setdefault(key, number)
    for ident, match, _style in report.new:
        if match is not None and match not in report.earlier:
            report.errors.append(f"{path}: {ident} matches {match}, which is no earlier id here")
    if not report.earlier or not report.new:
        report.errors.append(f"{path}: needs both earlier and new questions")
    return report


def summary(report: Report) -> list[str]:
    """Counts per department and per style, as printable lines."""
    lines = [f"earlier questions: {len(report.earlier)}"]
    for department, count in sorted(Counter(report.earlier.values()).items()):
        lines.append(f"  {department:<17} {count:>4}")
    nulls = sum(1 for _i, match, _s in report.new if match is None)
    share = nulls / len(report.new) if report.new else 0.0
    lines.append(f"new questions: {len(report.new)} ({nulls} without a match, {share:.0%})")
    lines.append(f"  {'style':<17} {'all':>4} {'null':>5}")
    styles = Counter(style for _i, _m, style in report.new)
    style_nulls = Counter(style for _i, match, style in report.new if match is None)
    for style in (*STYLES, "?"):
        if styles[style]:
            lines.append(f"  {style:<17} {styles[style]:>4} {style_nulls[style]:>5}")
    matched = Counter(report.earlier.get(match, "?") for _i, match, _s in report.new if match)
    lines.append("new questions with a match, by department of the earlier question:")
    for department, count in sorted(matched.items()):
        lines.append(f"  {department:<17} {count:>4}")
    used = {match for _i, match, _s in report.new if match in report.earlier}
    lines.append(f"earlier questions matched at least once: {len(used)} of {len(report.earlier)}")
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    failed = False
    for name in argv:
        report = check(Path(name))
        print(f"== {name}")
        for line in summary(report):
            print(line)
        for error in report.errors:
            print(f"ERROR {error}")
        if report.errors:
            failed = True
            print(f"{name}: {len(report.errors)} problem(s)")
        else:
            print(f"{name}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
