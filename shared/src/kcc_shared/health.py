"""/healthz (the process lives) and /readyz (its store and broker answer)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flask import Blueprint, Response, jsonify
from kombu.connection import Connection
from sqlalchemy import Engine, text

from kcc_shared.publisher import connect_once

log = logging.getLogger(__name__)

Check = Callable[[], None]


def database_check(engine: Engine) -> Check:
    def check() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return check


def broker_check(connection_factory: Callable[[], Connection]) -> Check:
    def check() -> None:
        connection = connection_factory()
        try:
            connect_once(connection)
        finally:
            connection.release()

    return check


def run_checks(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # readiness reports any failure instead of raising it
            results[name] = f"failing: {type(exc).__name__}"
            log.warning("readiness_check_failed", extra={"check": name, "error": str(exc)[:200]})
    return all(v == "ok" for v in results.values()), results


def health_blueprint(checks: Mapping[str, Check]) -> Blueprint:
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @blueprint.get("/readyz")
    def readyz() -> tuple[Response, int]:
        ready, results = run_checks(checks)
        return jsonify(status="ready" if ready else "not ready", checks=results), (
            200 if ready else 503
        )

    return blueprint
