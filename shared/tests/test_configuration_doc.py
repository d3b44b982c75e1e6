"""docs/configuration.md documents every variable the product reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from kcc_shared.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = REPO_ROOT / "docs" / "configuration.md"

# Direct reads of the environment outside Config (gunicorn settings, test fixtures, benchmarks).
_ENV_READ = re.compile(r"""environ(?:\.get|\.setdefault)?[(\[]\s*["'](KCC_[A-Z0-9_]+)["']""")


def documented() -> dict[str, list[str]]:
    """Each table row of the doc that names a variable: variable -> its cells."""
    rows: dict[str, list[str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        if line.startswith("|") and match:
            rows[match.group(1)] = cells
    return rows


def _default_text(default: str) -> str:
    """describe()'s repr of a default, as the doc writes it."""
    if default == "None":
        return "unset"
    if default in ("True", "False"):
        return f"`{default.lower()}`"
    return f"`{default.strip(chr(39))}`"


@pytest.mark.parametrize(("variable", "default"), [(v, d) for v, d, _ in Config.describe()])
def test_every_config_variable_is_documented_with_its_default(variable: str, default: str) -> None:
    rows = documented()

    assert variable in rows, f"{variable} is missing from {DOC.relative_to(REPO_ROOT)}"
    assert rows[variable][1].startswith(_default_text(default)), rows[variable]


def test_every_variable_read_from_the_environment_elsewhere_is_documented() -> None:
    sources = [REPO_ROOT / "conftest.py"]
    for top in ("shared/src", "services", "cli/src", "bench"):
        sources += [p for p in (REPO_ROOT / top).rglob("*.py") if "tests" not in p.parts]
    read = {name for path in sources for name in _ENV_READ.findall(path.read_text("utf-8"))}
    assert "KCC_REQUIRE_SERVICES" in read  # the scan itself works

    missing = sorted(read - set(documented()))

    assert missing == []
