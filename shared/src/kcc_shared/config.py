"""Typed configuration, read once from the environment at the edge of each process."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS: Final = ("json", "text")


class ConfigError(ValueError):
    """One or more environment variables are wrong; `problems` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def _doc(env: str, help_: str) -> dict[str, str]:
    return {"env": env, "help": help_}


@dataclass(frozen=True)
class Config:
    """Every setting of every service. Each field names its variable and says what it does."""

    database_url: str = field(
        default="sqlite:///var/kcc.db",
        metadata=_doc(
            "KCC_DATABASE_URL",
            "SQLAlchemy URL of this service's own store: sqlite:///path or "
            "postgresql+psycopg://user@host/db.",
        ),
    )
    auth_database_url: str | None = field(
        default=None,
        metadata=_doc(
            "KCC_AUTH_DATABASE_URL",
            "Where the API tokens live (shared by all services); defaults to KCC_DATABASE_URL.",
        ),
    )
    broker_url: str = field(
        default="amqp://guest:guest@127.0.0.1:5672//",
        metadata=_doc("KCC_BROKER_URL", "AMQP URL of RabbitMQ, or memory:// (one process only)."),
    )
    organisation_file: str | None = field(
        default=None,
        metadata=_doc(
            "KCC_ORGANISATION_FILE",
            "The organisation YAML (departments, calendars, rules); default: the shipped example.",
        ),
    )
    routing_model: str | None = field(
        default=None,
        metadata=_doc(
            "KCC_ROUTING_MODEL",
            "The router's model file (kcc router train); reloaded when it changes. Unset: the "
            "shipped demo organisation uses its shipped model, any other organisation file its "
            "rules alone.",
        ),
    )
    log_level: str = field(
        default="INFO", metadata=_doc("KCC_LOG_LEVEL", "DEBUG/INFO/WARNING/ERROR.")
    )
    log_format: str = field(
        default="json", metadata=_doc("KCC_LOG_FORMAT", "json (one object a line) or text.")
    )
    publish_timeout: float = field(
        default=5.0,
        metadata=_doc(
            "KCC_PUBLISH_TIMEOUT",
            "Seconds to wait for a broker connection and publisher confirms; keep it well under "
            "the gunicorn worker timeout.",
        ),
    )
    outbox_relay: bool = field(
        default=True,
        metadata=_doc(
            "KCC_OUTBOX_RELAY",
            "Run the outbox relay inside this process (true/false). Off only when a separate "
            "relay process publishes.",
        ),
    )
    outbox_poll_interval: float = field(
        default=1.0,
        metadata=_doc(
            "KCC_OUTBOX_POLL_INTERVAL",
            "Seconds between outbox sweeps; a commit also wakes the relay at once.",
        ),
    )
    outbox_batch_size: int = field(
        default=200, metadata=_doc("KCC_OUTBOX_BATCH_SIZE", "Rows published per confirm batch.")
    )
    prefetch: int = field(
        default=200, metadata=_doc("KCC_PREFETCH", "Unacked messages a consumer may hold.")
    )
    consumer_batch_size: int = field(
        default=100,
        metadata=_doc(
            "KCC_CONSUMER_BATCH_SIZE",
            "Messages an event consumer applies in one transaction; capped at the consumer's "
            "prefetch, since a batch is gathered from unacked messages.",
        ),
    )
    heartbeat: int = field(
        default=20,
        metadata=_doc(
            "KCC_HEARTBEAT",
            "AMQP heartbeat interval (seconds, 1-300) of every consuming connection: a "
            "connection that went silent (a dropped NAT entry, a dead broker host) is noticed "
            "after two missed intervals and the consumer reconnects.",
        ),
    )
    stall_timeout: float = field(
        default=120.0,
        metadata=_doc(
            "KCC_STALL_TIMEOUT",
            "Liveness: a consumer that holds messages and settled none for this many seconds "
            "(10-3600) makes /healthz answer 503, so the supervisor restarts the process.",
        ),
    )
    metrics_port: int = field(
        default=9100,
        metadata=_doc(
            "KCC_METRICS_PORT", "HTTP port for /metrics, /healthz, /readyz of a consumer."
        ),
    )
    metrics_host: str = field(
        default="127.0.0.1",
        metadata=_doc("KCC_METRICS_HOST", "Address that port binds to (0.0.0.0 in containers)."),
    )
    auth_cache_seconds: float = field(
        default=10.0,
        metadata=_doc(
            "KCC_AUTH_CACHE_SECONDS",
            "How long a checked API token is trusted without asking the database again; a "
            "token revoked elsewhere stops working within this time. 0 turns the cache off.",
        ),
    )
    secret_key: str | None = field(
        default=None,
        metadata=_doc("KCC_SECRET_KEY", "Signs session cookies of the web pages; required there."),
    )
    session_cookie_secure: bool = field(
        default=True,
        metadata=_doc(
            "KCC_SESSION_COOKIE_SECURE",
            "Send the web pages' session cookie over HTTPS only (true/false). Off only for "
            "plain http://localhost (kcc dev).",
        ),
    )

    sla_public_page: bool = field(
        default=False,
        metadata=_doc(
            "KCC_SLA_PUBLIC_PAGE",
            "Show the SLA monitor's overview page (/sla) without a login, e.g. on a wall "
            "screen (true/false). Off: staff and operators log in with their token "
            "(needs KCC_SECRET_KEY).",
        ),
    )
    metrics_token: str | None = field(
        default=None,
        metadata=_doc(
            "KCC_METRICS_TOKEN",
            "When set, /metrics answers only with `Authorization: Bearer <token>` (Prometheus: "
            "authorization.credentials_file). Unset: /metrics is open; keep it off the public "
            "network.",
        ),
    )

    streams_per_process: int = field(
        default=24,
        metadata=_doc(
            "KCC_STREAMS_PER_PROCESS",
            "Live update streams (SSE) one intake or back-office process serves at once; each "
            "holds a server thread, so keep it under KCC_HTTP_THREADS. More: 503.",
        ),
    )
    retention_days: int = field(
        default=30,
        metadata=_doc(
            "KCC_RETENTION_DAYS",
            "Days `kcc <service> prune` keeps processed-event ids, sent outbox rows and the "
            "agents' update feed (at least 7).",
        ),
    )
    streams_per_user: int = field(
        default=4,
        metadata=_doc(
            "KCC_STREAMS_PER_USER",
            "Live update streams one person may hold open in one intake or back-office "
            "process (tabs with the desk or inbox); more: 429, so one person cannot take "
            "every slot.",
        ),
    )

    @property
    def auth_url(self) -> str:
        return self.auth_database_url or self.database_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read every KCC_* variable, cast and validate it; report all problems at once."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            name = f.metadata["env"]
            if name not in env or env[name] == "":
                continue
            raw = env[name]
            try:
                values[f.name] = _CASTS[f.name](raw)
            except ValueError as exc:
                problems.append(f"{name}={raw!r}: {exc}")
        values.update(overrides)
        config = cls(**values)
        try:
            config.validate()
        except ConfigError as exc:
            # A variable that did not even cast is left at its default here, so the checks
            # report every *other* problem too: one start-up tells the operator everything.
            problems += exc.problems
        if problems:
            raise ConfigError(problems)
        return config

    def with_(self, **changes: Any) -> Config:
        changed = replace(self, **changes)
        changed.validate()
        return changed

    def validate(self) -> None:
        problems: list[str] = []
        for url_field in ("database_url", "auth_database_url"):
            url = getattr(self, url_field)
            if url is not None and urlsplit(url).scheme.split("+")[0] not in (
                "sqlite",
                "postgresql",
            ):
                problems.append(f"{_env(url_field)}: must be a sqlite:// or postgresql:// URL")
        if urlsplit(self.broker_url).scheme not in ("amqp", "amqps", "memory"):
            problems.append("KCC_BROKER_URL: must be an amqp://, amqps:// or memory:// URL")
        if self.organisation_file is not None and not Path(self.organisation_file).is_file():
            problems.append(f"KCC_ORGANISATION_FILE: no such file: {self.organisation_file}")
        if self.routing_model is not None and not Path(self.routing_model).is_file():
            problems.append(f"KCC_ROUTING_MODEL: no such file: {self.routing_model}")
        if self.log_level not in LOG_LEVELS:
            problems.append(f"KCC_LOG_LEVEL: must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            problems.append(f"KCC_LOG_FORMAT: must be one of {', '.join(LOG_FORMATS)}")
        if not 0 < self.publish_timeout <= 20:
            problems.append("KCC_PUBLISH_TIMEOUT: must be between 0 and 20 seconds")
        if not 0 < self.outbox_poll_interval <= 60:
            problems.append("KCC_OUTBOX_POLL_INTERVAL: must be between 0 and 60 seconds")
        if not 1 <= self.outbox_batch_size <= 5000:
            problems.append("KCC_OUTBOX_BATCH_SIZE: must be between 1 and 5000")
        if not 0 <= self.auth_cache_seconds <= 300:
            problems.append("KCC_AUTH_CACHE_SECONDS: must be between 0 and 300 seconds")
        if not 1 <= self.prefetch <= 10000:
            problems.append("KCC_PREFETCH: must be between 1 and 10000")
        if not 1 <= self.consumer_batch_size <= 5000:
            problems.append("KCC_CONSUMER_BATCH_SIZE: must be between 1 and 5000")
        if not 1 <= self.heartbeat <= 300:
            problems.append("KCC_HEARTBEAT: must be between 1 and 300 seconds")
        if not 10 <= self.stall_timeout <= 3600:
            problems.append("KCC_STALL_TIMEOUT: must be between 10 and 3600 seconds")
        if not 0 <= self.metrics_port <= 65535:
            problems.append("KCC_METRICS_PORT: must be a port number")
        if not 7 <= self.retention_days <= 36500:
            problems.append("KCC_RETENTION_DAYS: must be between 7 and 36500 days")
        if not 1 <= self.streams_per_process <= 10000:
            problems.append("KCC_STREAMS_PER_PROCESS: must be between 1 and 10000")
        if not 1 <= self.streams_per_user <= self.streams_per_process:
            problems.append("KCC_STREAMS_PER_USER: must be between 1 and KCC_STREAMS_PER_PROCESS")
        if self.metrics_token is not None and not (
            16 <= len(self.metrics_token) <= 200
            and all("!" <= c <= "~" for c in self.metrics_token)
        ):
            problems.append("KCC_METRICS_TOKEN: must be 16-200 visible ASCII characters")
        if problems:
            raise ConfigError(problems)

    @classmethod
    def describe(cls) -> list[tuple[str, str, str]]:
        """(variable, default, help) for every setting, for docs and `kcc config env`."""
        return [(f.metadata["env"], repr(f.default), f.metadata["help"]) for f in fields(cls)]


def _env(field_name: str) -> str:
    return str(next(f.metadata["env"] for f in fields(Config) if f.name == field_name))


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _number(kind: Callable[[str], T]) -> Callable[[str], T]:
    def cast(raw: str) -> T:
        try:
            return kind(raw.strip())
        except ValueError:
            raise ValueError(f"must be a{'n integer' if kind is int else ' number'}") from None

    return cast


def _upper(raw: str) -> str:
    return raw.strip().upper()


def _lower(raw: str) -> str:
    return raw.strip().lower()


def _plain(raw: str) -> str:
    return raw.strip()


_CASTS: Final[Mapping[str, Callable[[str], Any]]] = {
    "database_url": _plain,
    "auth_database_url": _plain,
    "broker_url": _plain,
    "organisation_file": _plain,
    "routing_model": _plain,
    "log_level": _upper,
    "log_format": _lower,
    "publish_timeout": _number(float),
    "outbox_relay": _bool,
    "outbox_poll_interval": _number(float),
    "outbox_batch_size": _number(int),
    "prefetch": _number(int),
    "consumer_batch_size": _number(int),
    "heartbeat": _number(int),
    "stall_timeout": _number(float),
    "metrics_port": _number(int),
    "auth_cache_seconds": _number(float),
    "metrics_host": _plain,
    "secret_key": _plain,
    "session_cookie_secure": _bool,
    "metrics_token": _plain,
    "sla_public_page": _bool,
    "streams_per_process": _number(int),
    "retention_days": _number(int),
    "streams_per_user": _number(int),
}
