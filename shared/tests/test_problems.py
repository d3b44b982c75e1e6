"""Every error a client of a service sees is application/problem+json with a clear detail."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from kcc_shared.problems import (
    PROBLEM_JSON,
    Conflict,
    Forbidden,
    NotFound,
    Problem,
    Unauthorized,
    register_problem_handlers,
)
from marshmallow import Schema, fields, validate
from sqlalchemy.exc import OperationalError
from webargs.flaskparser import use_args

SECRET = "postgresql://kcc:hunter2@db.internal/kcc"


class RequestAlreadyAnswered(Problem):
    status, title, slug = 409, "Already answered", "already-answered"


class RatingSchema(Schema):
    score = fields.Integer(required=True, validate=validate.Range(min=1, max=5))
    comment = fields.String(validate=validate.Length(max=10))


def create_app() -> Flask:
    app = Flask(__name__)
    register_problem_handlers(app)

    @app.get("/requests/<int:number>")
    def show(number: int) -> dict[str, Any]:
        if number == 1:
            raise RequestAlreadyAnswered("Request 1 was answered on 3 March; rate it instead.")
        if number == 2:
            raise Problem("The question is empty.", errors={"question": ["May not be empty."]})
        return {"number": number}

    @app.get("/private")
    def private() -> dict[str, Any]:
        raise Unauthorized("Send a bearer token.")

    @app.get("/guarded")
    def guarded() -> dict[str, Any]:
        abort(401)

    @app.get("/boom")
    def boom() -> dict[str, Any]:
        raise RuntimeError(f"could not connect to {SECRET}")

    @app.get("/database-down")
    def database_down() -> dict[str, Any]:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError(f"no route to {SECRET}"))

    @app.post("/ratings")
    @use_args(RatingSchema(), location="json")
    def rate(args: dict[str, Any]) -> dict[str, Any]:
        return args

    return app


@pytest.fixture
def client() -> FlaskClient:
    return create_app().test_client()


@pytest.mark.parametrize(
    ("method", "path", "status", "slug", "detail"),
    [
        pytest.param(
            "GET",
            "/requests/1",
            409,
            "already-answered",
            "Request 1 was answered on 3 March; rate it instead.",
            id="a raised Problem subclass",
        ),
        pytest.param("GET", "/private", 401, "unauthorized", "Send a bearer token.", id="401"),
        pytest.param("GET", "/nowhere", 404, "not-found", "not found", id="unknown URL"),
        pytest.param("GET", "/requests/abc", 404, "not-found", "not found", id="bad path arg"),
        pytest.param("DELETE", "/requests/3", 405, "method-not-allowed", "not allowed", id="405"),
        pytest.param(
            "GET", "/boom", 500, "internal-server-error", "went wrong on our side", id="500"
        ),
    ],
)
def test_errors_are_problem_json(
    client: FlaskClient, method: str, path: str, status: int, slug: str, detail: str
) -> None:
    response = client.open(path, method=method)

    assert response.status_code == status
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    assert set(body) == {"type", "title", "status", "detail"}
    assert body["status"] == status
    assert body["type"] == f"https://kcc.example/problems/{slug}"
    assert body["title"]
    assert detail in body["detail"]


@pytest.mark.parametrize(
    ("problem", "status", "title"),
    [
        (Unauthorized, 401, "Not authenticated"),
        (Forbidden, 403, "Not allowed"),
        (NotFound, 404, "Not found"),
        (Conflict, 409, "Conflict"),
        (Problem, 400, "Bad request"),
    ],
)
def test_the_shared_problems_carry_their_status_and_title(
    problem: type[Problem], status: int, title: str
) -> None:
    app = create_app()

    @app.get("/raise")
    def raise_it() -> dict[str, Any]:
        raise problem("Detail for the client.")

    response = app.test_client().get("/raise")

    assert response.status_code == status
    assert response.get_json()["title"] == title
    assert response.get_json()["detail"] == "Detail for the client."


def test_field_errors_are_listed_by_field(client: FlaskClient) -> None:
    response = client.get("/requests/2")

    assert response.status_code == 400
    assert response.get_json()["errors"] == {"question": ["May not be empty."]}


def test_invalid_input_lists_every_field_as_a_400(client: FlaskClient) -> None:
    response = client.post("/ratings", json={"score": 9, "comment": "x" * 11, "extra": 1})

    assert response.status_code == 400
    assert response.mimetype == PROBLEM_JSON
    body = response.get_json()
    assert body["type"] == "https://kcc.example/problems/validation"
    assert set(body["errors"]) == {"score", "comment", "extra"}
    assert all(isinstance(m, list) and m for m in body["errors"].values())


def test_an_unexpected_error_leaks_nothing_and_is_logged(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="kcc_shared.problems"):
        response = client.get("/boom")

    text = response.get_data(as_text=True)
    assert response.status_code == 500
    for internal in ("hunter2", "db.internal", "RuntimeError", "Traceback", "boom", ".py"):
        assert internal not in text
    [record] = [r for r in caplog.records if r.getMessage() == "request_failed"]
    assert record.__dict__["error_type"] == "RuntimeError"
    assert record.exc_info is not None


@pytest.mark.parametrize("path", ["/private", "/guarded"])
def test_401_tells_the_client_how_to_authenticate(client: FlaskClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 401
    assert response.mimetype == PROBLEM_JSON
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_405_says_which_methods_are_allowed(client: FlaskClient) -> None:
    response = client.delete("/requests/3")

    assert response.status_code == 405
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "HEAD"}


def test_an_unreachable_database_is_a_503_to_retry_without_the_connection_details(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = client.get("/database-down")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.mimetype == PROBLEM_JSON
    assert "Idempotency-Key" in response.get_json()["detail"]
    assert "hunter2" not in response.get_data(as_text=True)
    assert "hunter2" not in caplog.text


def test_a_400_never_repeats_a_bsn_it_refused(client: FlaskClient) -> None:
    # Not in a message, not as the name of an unknown field, not in a detail.
    response = client.post(
        "/ratings",
        json={"score": "123456782", "comment": "BSN 123 456 782!", "bsn.111222333": 1},
    )

    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "123456782" not in text.replace(" ", "")
    assert "111222333" not in text
    assert set(response.get_json()["errors"]) == {"score", "comment", "[BSN]"}


def test_a_problem_detail_holding_a_bsn_is_redacted() -> None:
    app = create_app()

    @app.get("/careless")
    def careless() -> dict[str, Any]:
        raise Problem("No request for 123.456.782.", errors={"ref 111222333": ["Is 111222333."]})

    body = app.test_client().get("/careless").get_json()

    assert body["detail"] == "No request for [BSN]."
    assert body["errors"] == {"ref [BSN]": ["Is [BSN]."]}
