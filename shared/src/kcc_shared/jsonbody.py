"""Reading a JSON request body strictly: what parses but cannot be stored is a 400, not a 500.

Python's json module accepts things no store or log line can take: a lone surrogate escape
("\\ud800") becomes a str that cannot be encoded as UTF-8, "\\u0000" a NUL that PostgreSQL
refuses in text, a number of thousands of digits raises ValueError (int max str digits) and
a thousand nested brackets run into the recursion limit further on. `load_json` checks for
each before any view sees the data and raises `InvalidBody` (a 400 problem) that names the
field but never echoes the value.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final, NoReturn

from kcc_shared.problems import Problem

__all__ = ["load_json"]

MAX_DEPTH: Final = 32
MAX_INT_DIGITS: Final = 20
_STRINGS: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS: Final = re.compile(r"[\[\]{}]")
_SAFE_KEY: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class InvalidBody(Problem):
    status, title, slug = 400, "Invalid JSON body", "invalid-json"


def load_json(data: bytes | str) -> Any:
    """The parsed body, or InvalidBody with a specific reason."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        _refuse("The body is not UTF-8 encoded JSON.", "json", "Not UTF-8.")
    if _depth(text) > MAX_DEPTH:
        _refuse(f"The JSON body is nested more than {MAX_DEPTH} levels deep.", "json", "Too deep.")
    try:
        value = json.loads(text, parse_int=_int, parse_constant=_constant)
    except InvalidBody:
        raise
    except (json.JSONDecodeError, RecursionError, ValueError):
        _refuse("The body is not valid JSON.", "json", "Invalid JSON body.")
    check_text(value)
    return value


def check_text(value: Any) -> None:
    """Raise InvalidBody for a string (key or value) with a NUL or a lone surrogate."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            _check_string(item, path or "json")
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = _join(path, key)
                _check_string(key, child_path or "json", what="field name")
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((_join(path, str(i)), child) for i, child in enumerate(item))


def _check_string(text: str, path: str, what: str = "text") -> None:
    if "\x00" in text:
        _refuse(
            f"A {what} in the JSON body contains a NUL character (\\u0000), which cannot be "
            "stored; remove it.",
            path,
            "Contains a NUL character.",
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            _refuse(
                f"A {what} in the JSON body is not valid Unicode: it holds a lone surrogate "
                "escape (such as \\ud800). Send the character itself, or a complete pair.",
                path,
                "Not valid Unicode text.",
            )


def _join(path: str, key: str) -> str:
    # Keys a client made up go into no answer (they may hold anything, a BSN included).
    name = key if _SAFE_KEY.fullmatch(key) else "<field>"
    return f"{path}.{name}" if path else name


def _depth(text: str) -> int:
    brackets = _BRACKETS.findall(_STRINGS.sub('""', text))
    depth = deepest = 0
    for bracket in brackets:
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        _refuse(
            f"A number in the JSON body has more than {MAX_INT_DIGITS} digits.",
            "json",
            "Number too long.",
        )
    return int(digits)


def _constant(name: str) -> NoReturn:
    _refuse(f"{name} is not a JSON number.", "json", "Not a JSON number.")


def _refuse(detail: str, path: str, message: str) -> NoReturn:
    raise InvalidBody(detail, errors={path: [message]})
