"""Dependencies point one way: services → kcc_shared; only the kcc CLI composes services."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {
    path.name: next((path / "src").iterdir()).name
    for path in sorted((ROOT / "services").iterdir())
    if (path / "src").is_dir()
}
PACKAGES = set(SERVICES.values())


def imported_top_levels(source: Path) -> set[str]:
    tree = ast.parse(source.read_text(), filename=str(source))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_never_imports_another_service(service: str) -> None:
    own = SERVICES[service]
    for source in (ROOT / "services" / service).rglob("*.py"):
        foreign = (imported_top_levels(source) & PACKAGES) - {own}
        assert not foreign, f"{source.relative_to(ROOT)} imports {sorted(foreign)}"


def test_shared_imports_no_service_and_not_the_cli() -> None:
    for source in (ROOT / "shared").rglob("*.py"):
        bad = imported_top_levels(source) & (PACKAGES | {"kcc_cli"})
        assert not bad, f"{source.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_layout_has_the_services_this_check_guards() -> None:
    assert {"intake", "router"} <= PACKAGES
