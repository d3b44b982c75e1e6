"""Structured logs: one JSON object a line, event name plus fields, and never a BSN."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kcc_shared.logging import JsonFormatter, TextFormatter, configure_logging

BSN = "123456782"


@pytest.fixture
def stream() -> io.StringIO:
    return io.StringIO()


def make_logger(stream: io.StringIO, formatter: logging.Formatter, name: str) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"kcc.test.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


@pytest.fixture
def json_log(stream: io.StringIO, request: pytest.FixtureRequest) -> logging.Logger:
    return make_logger(stream, JsonFormatter(), f"json.{request.node.name}")


@pytest.fixture
def text_log(stream: io.StringIO, request: pytest.FixtureRequest) -> logging.Logger:
    return make_logger(stream, TextFormatter(), f"text.{request.node.name}")


def entries(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = stream.getvalue().splitlines()
    return [json.loads(line) for line in lines]


def test_a_log_line_is_one_json_object_with_event_and_fields(
    json_log: logging.Logger, stream: io.StringIO
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    json_log.info("request_routed", extra={"department": "burgerzaken", "handoffs": 2})

    [entry] = entries(stream)
    assert entry["event"] == "request_routed"
    assert entry["level"] == "info"
    assert entry["logger"] == json_log.name
    assert entry["department"] == "burgerzaken"
    assert entry["handoffs"] == 2
    assert datetime.fromisoformat(entry["ts"]) >= before
    assert datetime.fromisoformat(entry["ts"]).utcoffset() is not None


def test_an_exception_stays_on_one_line(json_log: logging.Logger, stream: io.StringIO) -> None:
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        json_log.exception("lookup_failed", extra={"attempt": 1})

    assert stream.getvalue().count("\n") == 1
    [entry] = entries(stream)
    assert entry["event"] == "lookup_failed"
    assert entry["level"] == "error"
    assert entry["attempt"] == 1
    assert "ValueError: first line\nsecond line" in entry["exception"]


def fail_with_bsn() -> None:
    raise LookupError(f"no citizen with BSN {BSN} in the BRP")


@pytest.mark.parametrize(
    "log",
    [
        pytest.param(
            lambda logger: logger.info("lookup_failed", extra={"question": f"bsn {BSN} klopt?"}),
            id="extra field",
        ),
        pytest.param(
            lambda logger: logger.info("lookup_failed", extra={"context": {"q": f"BSN {BSN}"}}),
            id="nested extra field",
        ),
        pytest.param(
            lambda logger: logger.info("lookup_failed", extra={"numbers": ["1234.56.782"]}),
            id="list in extra field",
        ),
        pytest.param(
            lambda logger: logger.info("lookup_failed", extra={"error": LookupError(BSN)}),
            id="exception object as extra field",
        ),
        pytest.param(lambda logger: logger.info("lookup_failed %s", BSN), id="message argument"),
    ],
)
@pytest.mark.parametrize("formatter", ["json", "text"])
def test_a_bsn_in_a_field_is_scrubbed(
    stream: io.StringIO, formatter: str, log: Any, request: pytest.FixtureRequest
) -> None:
    logger = make_logger(
        stream, JsonFormatter() if formatter == "json" else TextFormatter(), request.node.name
    )

    log(logger)

    output = stream.getvalue()
    assert "[BSN]" in output
    assert BSN not in output
    assert "1234.56.782" not in output


@pytest.mark.parametrize("formatter", ["json", "text"])
def test_a_bsn_in_a_logged_exception_is_scrubbed(
    stream: io.StringIO, formatter: str, request: pytest.FixtureRequest
) -> None:
    logger = make_logger(
        stream, JsonFormatter() if formatter == "json" else TextFormatter(), request.node.name
    )

    try:
        fail_with_bsn()
    except LookupError:
        logger.exception("lookup_failed")

    output = stream.getvalue()
    # The word announcing the BSN goes with it.
    assert "LookupError: no citizen with [BSN] in the BRP" in output
    assert BSN not in output


def test_scrubbing_keeps_values_and_types_that_are_no_bsn(
    json_log: logging.Logger, stream: io.StringIO
) -> None:
    json_log.info(
        "outbox_published",
        extra={"count": 3, "ratio": 0.5, "ok": True, "missing": None, "phone": "06-12345671"},
    )

    [entry] = entries(stream)
    assert entry["count"] == 3
    assert entry["ratio"] == 0.5
    assert entry["ok"] is True
    assert entry["missing"] is None
    assert entry["phone"] == "06-12345671"


def test_text_format_has_level_logger_event_and_fields(
    text_log: logging.Logger, stream: io.StringIO
) -> None:
    text_log.warning("outbox_publish_failed", extra={"failures": 3})

    line = stream.getvalue().rstrip("\n")
    assert line.startswith("WARNING ")
    assert f"{text_log.name}: outbox_publish_failed" in line
    assert "failures=3" in line


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("werkzeug").level)
    yield
    root.handlers[:], level, werkzeug = saved
    root.setLevel(level)
    logging.getLogger("werkzeug").setLevel(werkzeug)


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_sends_json_at_the_level_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("WARNING", "json")
    logger = logging.getLogger("kcc.test.configured")

    logger.info("not_shown")
    logger.warning("shown", extra={"department": "belastingen"})
    logging.getLogger("werkzeug").info("GET /api/v1/requests?bsn=123456782")
    sys.stderr.flush()

    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["shown"]
