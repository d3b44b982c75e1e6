"""Every skip for want of a tool or a service goes through conftest.unavailable, which fails
instead under KCC_REQUIRE_SERVICES=1 (CI): a check that silently skips in CI proves nothing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO_ROOT, require_tool, unavailable

TEST_TREES = ("conftest.py", "tests", "shared/tests", "services", "cli/tests")
# Skips that are not about a tool or a service, each with its reason.
NOT_ABOUT_TOOLS = {
    # A feature check (`kcc sla run` present), not a tool or a service.
    "tests/integration/test_prometheus.py",
}


def skipping_calls(path: Path) -> list[int]:
    """Lines of `pytest.skip(...)` and `pytest.importorskip(...)` calls and of
    `pytest.mark.skip`/`skipif` marks in a file."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("skip", "importorskip")
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "pytest"
        ):
            lines.append(node.lineno)
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("skip", "skipif")
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "mark"
        ):
            lines.append(node.lineno)
    return lines


def test_every_skip_goes_through_the_one_helper() -> None:
    files = [
        f
        for tree in TEST_TREES
        for f in ([REPO_ROOT / tree] if tree.endswith(".py") else (REPO_ROOT / tree).rglob("*.py"))
        if "tests" in f.parts or f.name == "conftest.py"
    ]
    assert len(files) > 50, "the scan found too few test files to mean anything"
    offenders = {
        str(f.relative_to(REPO_ROOT)): lines
        for f in files
        if (lines := skipping_calls(f))
        and str(f.relative_to(REPO_ROOT)) not in NOT_ABOUT_TOOLS
        and f != REPO_ROOT / "conftest.py"
    }
    assert not offenders, (
        f"skips outside conftest.unavailable (file: lines): {offenders}; use "
        "conftest.unavailable(message) or conftest.require_tool(name, where_from)"
    )
    # The helper itself is the one place that skips.
    assert len(skipping_calls(REPO_ROOT / "conftest.py")) == 1


def test_a_missing_tool_fails_where_services_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("conftest.REQUIRE_SERVICES", True)
    with pytest.raises(pytest.fail.Exception, match="KCC_REQUIRE_SERVICES=1 forbids skipping"):
        require_tool("kcc-no-such-tool", "nowhere")


def test_a_missing_tool_skips_on_a_developers_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("conftest.REQUIRE_SERVICES", False)
    with pytest.raises(pytest.skip.Exception, match=r"kcc-no-such-tool is not installed \(x\)"):
        require_tool("kcc-no-such-tool", "x")
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not reachable"):
        unavailable("PostgreSQL is not reachable")
