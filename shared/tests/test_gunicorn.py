"""The gunicorn settings every HTTP service shares come from Config, checked before it starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from kcc_shared.gunicorn import settings


@pytest.fixture(autouse=True)
def metrics_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # settings() sets a default for it in the environment; keep that out of other tests.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))


def test_the_defaults_bind_the_services_own_port_on_localhost() -> None:
    conf = settings("intake", default_port=8001)

    assert conf["bind"] == "127.0.0.1:8001"
    assert (conf["workers"], conf["threads"]) == (2, 32)


def test_the_http_variables_set_bind_workers_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCC_HTTP_BIND", "0.0.0.0:9001")
    monkeypatch.setenv("KCC_HTTP_WORKERS", "4")
    monkeypatch.setenv("KCC_HTTP_THREADS", "48")

    conf = settings("backoffice", default_port=8002)

    assert (conf["bind"], conf["workers"], conf["threads"]) == ("0.0.0.0:9001", 4, 48)


def test_a_wrong_variable_stops_gunicorn_before_it_starts_and_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KCC_HTTP_WORKERS", "veel")

    with pytest.raises(SystemExit) as stopped:
        settings("intake", default_port=8001)

    assert stopped.value.code == 2
    assert "KCC_HTTP_WORKERS='veel': must be an integer" in capsys.readouterr().err
