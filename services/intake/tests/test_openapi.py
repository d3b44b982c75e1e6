"""The committed OpenAPI description is exactly what the code generates."""

from __future__ import annotations

import json
from pathlib import Path

from intake.commands import openapi_document

COMMITTED = Path(__file__).resolve().parents[1] / "openapi.json"


def test_committed_openapi_matches_the_code() -> None:
    committed = json.loads(COMMITTED.read_text())
    generated = json.loads(json.dumps(openapi_document()))
    assert generated == committed, (
        "services/intake/openapi.json is stale: run `make openapi` and commit the result"
    )


def test_every_operation_documents_its_problems() -> None:
    spec = openapi_document()
    for path, item in spec["paths"].items():  # type: ignore[attr-defined]
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert "401" in operation["responses"], (method, path)
            assert operation.get("security") == [{"bearerAuth": []}], (method, path)
