"""Structured logs: a stable event name plus key/value fields, with no personal data."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from kcc_shared.privacy import redact_bsn

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _scrub(value: Any) -> Any:
    # Defence in depth: code never logs request text, but an exception message might quote it.
    # Containers are walked and any other object is logged as its (scrubbed) text: an exception
    # or a dict passed in `extra=` must not carry a BSN past the check.
    if isinstance(value, str):
        return redact_bsn(value)[0]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(_scrub(k)): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return redact_bsn(str(value))[0]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": _scrub(record.getMessage()),
        }
        entry.update({k: _scrub(v) for k, v in _fields(record).items()})
        if record.exc_info:
            entry["exception"] = _scrub(self.formatException(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        pairs = " ".join(f"{k}={_scrub(v)!r}" for k, v in _fields(record).items())
        line = (
            f"{record.levelname:<7} {record.name}: {_scrub(record.getMessage())} {pairs}".rstrip()
        )
        if record.exc_info:
            line += "\n" + _scrub(self.formatException(record.exc_info))
        return line


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send all logs to stderr in one format; call once at the edge of a process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Werkzeug's access log quotes full URLs and kombu's debug logs quote bodies.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("amqp").setLevel(logging.WARNING)
