"""The baseline for bench/intake.py: a bare Flask POST that parses JSON and answers 202."""

from __future__ import annotations

import uuid

from flask import Flask, Response, jsonify, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/v1/requests")
    def accept() -> tuple[Response, int]:
        body = request.get_json()
        return jsonify(id=str(uuid.uuid4()), status="submitted", question=body["question"]), 202

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
