"""The labelled history the router's model learns from: answered requests and who answered."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from intake.commands import intake_group
from intake.history import labelled_history
from kcc_shared.events import Event


def file_question(client: FlaskClient, token: str, question: str) -> str:
    response = client.post(
        "/api/v1/requests",
        json={"question": question, "channel": "phone"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def test_answered_requests_are_labelled_with_the_department_that_answered(
    app: Flask,
    client: FlaskClient,
    agent_token: str,
    deliver: Callable[..., Event],
    routed_data: Callable[..., dict[str, Any]],
) -> None:
    forwarded = file_question(client, agent_token, "Ik wil mijn parkeervergunning opzeggen")
    deliver(forwarded, "routed", **routed_data("burgerzaken"))
    deliver(forwarded, "routed", **routed_data("parkeren", handoff_count=1))
    deliver(forwarded, "answered", department="parkeren", staff_id="s1", answer="Geregeld.")
    plain = file_question(client, agent_token, "Paspoort verlopen, BSN 111222333")
    deliver(plain, "routed", **routed_data("burgerzaken"))
    deliver(plain, "answered", department="burgerzaken", staff_id="s2", answer="Afspraak.")
    waiting = file_question(client, agent_token, "Nog niet beantwoord")
    deliver(waiting, "routed", **routed_data("afval"))

    rows = {row["id"]: row for row in labelled_history(app.extensions["kcc.intake"].store.engine)}

    assert set(rows) == {forwarded, plain}
    # A forward is a correction: the label is who answered, not where it first went.
    assert rows[forwarded]["department"] == "parkeren"
    assert rows[plain] == {
        "id": plain,
        "question": "Paspoort verlopen, [BSN]",
        "department": "burgerzaken",
        "source": "historie",
        "answered_at": rows[plain]["answered_at"],
    }
    # Only the question and its label leave the store: no agent, citizen or answer.
    assert "Afspraak" not in json.dumps(rows)


def test_export_labelled_prints_json_lines_the_trainer_reads(
    app: Flask,
    client: FlaskClient,
    agent_token: str,
    deliver: Callable[..., Event],
    routed_data: Callable[..., dict[str, Any]],
    database_url: str,
    tmp_path: Path,
) -> None:
    request_id = file_question(client, agent_token, "Container niet geleegd")
    deliver(request_id, "routed", **routed_data("afval"))
    deliver(request_id, "answered", department="afval", staff_id="s1", answer="Komt morgen.")

    result = CliRunner().invoke(
        intake_group, ["export-labelled"], env={"KCC_DATABASE_URL": database_url}
    )

    assert result.exit_code == 0, result.output
    [line] = result.stdout.splitlines()
    assert json.loads(line)["department"] == "afval"
    assert result.stderr == "1 answered requests exported\n"


def test_export_labelled_says_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        intake_group,
        ["export-labelled"],
        env={"KCC_DATABASE_URL": f"sqlite:///{tmp_path / 'leeg.db'}"},
    )

    assert result.exit_code == 2
    assert result.stderr.startswith("intake: cannot read the database:")
