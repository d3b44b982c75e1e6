"""What a person's browser shows when a page refuses or the database is away: a Dutch page with
a way back, while the API beside it keeps answering with problem+json."""

from __future__ import annotations

import logging

import pytest
from flask import Blueprint, Flask, abort
from flask.testing import FlaskClient
from jinja2 import DictLoader
from kcc_shared.problems import register_problem_handlers
from kcc_shared.web import page_errors
from sqlalchemy.exc import OperationalError

SECRET = "postgresql://kcc:geheim@db.intern:5432/intake"


def create_app() -> Flask:
    app = Flask(__name__)
    app.jinja_loader = DictLoader(
        {"fout.html": '<h1>{{ title }}</h1><p role="alert">{{ message }}</p><a href="/">Terug</a>'}
    )
    register_problem_handlers(app)
    pages = Blueprint("pages", __name__)
    page_errors(pages, "fout.html")

    @pages.get("/pagina/<int:status>")
    def refused(status: int) -> str:
        abort(status)

    @pages.get("/pagina/database-weg")
    def database_down() -> str:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError(f"no route to {SECRET}"))

    @app.get("/api/dingen/<int:number>")
    def api(number: int) -> dict[str, int]:
        abort(404)

    app.register_blueprint(pages)
    return app


@pytest.fixture
def client() -> FlaskClient:
    return create_app().test_client()


@pytest.mark.parametrize(
    ("status", "title"),
    [(403, "Geen toegang"), (404, "Niet gevonden"), (405, "Dat lukte niet")],
)
def test_a_refusing_page_answers_in_dutch_with_a_way_back(
    client: FlaskClient, status: int, title: str
) -> None:
    response = client.get(f"/pagina/{status}")

    assert response.status_code == status
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert f"<h1>{title}</h1>" in page
    assert '<a href="/">Terug</a>' in page


def test_a_page_without_its_database_asks_to_retry_in_dutch_and_hides_the_url(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = client.get("/pagina/database-weg")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert "<h1>Even niet bereikbaar</h1>" in page
    assert "geheim" not in page
    assert "database_unavailable" in caplog.text
    assert "geheim" not in caplog.text


def test_the_api_beside_the_pages_keeps_answering_with_problem_json(client: FlaskClient) -> None:
    response = client.get("/api/dingen/1")

    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
