"""The compiled fast path for event data agrees with marshmallow, or leaves the input to it."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from kcc_shared.events import _FAST_LOADERS, DATA_SCHEMAS, _fast_load, parse_event
from marshmallow import ValidationError

from shared.tests.test_events import EXAMPLES, INVALID, _body, with_data


def agree(type_: str, data: Any) -> dict[str, Any] | None:
    """Assert the fast path and marshmallow agree on `data`; the fast path's result (or None)."""
    fast = _fast_load(type_, copy.deepcopy(data))
    try:
        expected = DATA_SCHEMAS[type_].load(copy.deepcopy(data))
    except ValidationError:
        assert fast is None, f"fast path accepted what marshmallow refuses: {data!r}"
        return None
    if fast is not None:
        # repr too: same key order, same types (1 vs True vs 1.0), same tzinfo.
        assert fast == expected, data
        assert repr(fast) == repr(expected), data
    return fast


def wire_data(type_: str) -> dict[str, Any]:
    return dict(_body(type_)["data"])


def test_a_fast_path_is_compiled_for_the_hot_types() -> None:
    assert "request.submitted" in _FAST_LOADERS
    assert "request.reroute_requested" in _FAST_LOADERS


@pytest.mark.parametrize("type_", list(DATA_SCHEMAS))
def test_valid_examples_take_the_fast_path_with_marshmallows_result(type_: str) -> None:
    data = wire_data(type_)
    if type_ in _FAST_LOADERS:
        assert agree(type_, data) is not None
    # Missing optional fields: load_default fills, or the key stays absent, as marshmallow does.
    for name, field in DATA_SCHEMAS[type_].load_fields.items():
        if not field.required:
            reduced = {k: v for k, v in data.items() if k != name}
            assert (agree(type_, reduced) is not None) == (type_ in _FAST_LOADERS)
    _, original = EXAMPLES[type_]
    agree(type_, original)  # python values (datetimes) as new_event gets them


def _invalid_cases() -> list[Any]:
    cases = []
    for case in INVALID:
        body = case.values[0]
        if isinstance(body, dict) and body.get("type") in DATA_SCHEMAS:
            cases.append(pytest.param(body["type"], body.get("data"), id=case.id))
    return cases


@pytest.mark.parametrize(("type_", "data"), _invalid_cases())
def test_every_invalid_case_of_the_contract_is_left_to_marshmallow(type_: str, data: Any) -> None:
    agree(type_, data)


EDGES: list[Any] = [
    None,
    "",
    "x",
    "x" * 40,
    "x" * 41,
    "x" * 64,
    "x" * 65,
    "x" * 4001,
    "x" * 100_000,
    "Burger Zaken",
    "a.b",
    "vergunningen",
    "normal",
    "phone",
    "rule",
    "agent",
    "first_response",
    b"bytes",
    True,
    False,
    0,
    1,
    -1,
    2,
    5,
    6,
    10**30,
    2.0,
    2.5,
    float("nan"),
    "2",
    " 2",
    "1",
    "0",
    "yes",
    "true",
    [],
    ["a"],
    ["a", 1],
    ["a", None],
    [""],
    ["x" * 41],
    ("a",),
    {},
    {"a": 1},
    "2026-03-09T12:00:00Z",
    "2026-03-09T12:00:00+02:00",
    "2026-03-09T12:00:00.123456+00:00",
    "2026-03-09T12:00:00",
    "2026-03-09",
    "morgen",
    datetime(2026, 3, 9, 12, tzinfo=UTC),
    datetime(2026, 3, 9, 12),
]


@pytest.mark.parametrize("type_", list(DATA_SCHEMAS))
def test_every_field_agrees_on_edge_values(type_: str) -> None:
    data = wire_data(type_)
    for name in DATA_SCHEMAS[type_].load_fields:
        for value in EDGES:
            agree(type_, {**data, name: value})
        agree(type_, {k: v for k, v in data.items() if k != name})
    agree(type_, {**data, "colour": "blue"})
    for not_a_mapping in (None, [], "x", 1):
        agree(type_, not_a_mapping)


@pytest.mark.parametrize("type_", list(DATA_SCHEMAS))
def test_random_mixtures_of_edge_values_agree(type_: str) -> None:
    rng = random.Random(type_)
    data = wire_data(type_)
    names = list(DATA_SCHEMAS[type_].load_fields)
    for _ in range(300):
        mixed = dict(data)
        for name in rng.sample(names, rng.randint(1, len(names))):
            if rng.random() < 0.2:
                mixed.pop(name, None)
            else:
                mixed[name] = rng.choice(EDGES)
        agree(type_, mixed)


def test_input_the_fast_path_is_unsure_of_still_loads_through_marshmallow() -> None:
    body = with_data("request.rated", score="5", thanks="yes")

    assert _fast_load("request.rated", body["data"]) is None
    event = parse_event(json.dumps(body))

    assert event.data["score"] == 5
    assert event.data["thanks"] is True
