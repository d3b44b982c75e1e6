"""`kcc router run` refuses to start on a broken organisation file, listing every problem."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from router.commands import router_group


def test_run_refuses_an_invalid_organisation_file(tmp_path: Path) -> None:
    broken = tmp_path / "organisation.yaml"
    broken.write_text("version: 1\norganisation: {name: X}\ncalendars: {}\n")

    result = CliRunner().invoke(
        router_group,
        ["run"],
        env={"KCC_ORGANISATION_FILE": str(broken), "KCC_BROKER_URL": "memory://"},
    )

    assert result.exit_code == 2
    assert "the organisation file is invalid; not starting" in result.output
    assert f"{broken}:" in result.output


def test_run_refuses_bad_configuration() -> None:
    result = CliRunner().invoke(router_group, ["run"], env={"KCC_PREFETCH": "veel"})

    assert result.exit_code == 2
    assert "KCC_PREFETCH" in result.output
