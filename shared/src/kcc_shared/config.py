"""Typed configuration, read once from the environment at the edge of each process."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

__all__ = ["EXIT_CONFIG", "Config", "ConfigError"]

T = TypeVar("T")

# The exit status of a process or command that refused to start on its configuration or the
# organisation file (a crash exits otherwise): one number for every `kcc` command.
EXIT_CONFIG: Final = 2

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS: Final = ("json", "text")


class ConfigError(ValueError):
    """One or more environment variables are wrong; `problems` lists each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def _setting(default: Any, help_: str, parse: Callable[[str], Any] | None = None) -> Any:
    """A setting: its variable is KCC_ and the field's name in capitals; `parse` casts the
    variable's text (default: by the field's type)."""
    return field(default=default, metadata={"help": help_, "parse": parse})


@dataclass(frozen=True)
class Config:
    """Every setting of every service: each field is one variable (KCC_<FIELD>) and says what
    it does; `validate` holds the checks that span fields or need more than a cast."""

    database_url: str = _setting(
        "sqlite:///var/kcc.db",
        "SQLAlchemy URL of this service's own store: sqlite:///path or "
        "postgresql+psycopg://user@host/db.",
    )
    auth_database_url: str | None = _setting(
        None, "Where the API tokens live (shared by all services); defaults to KCC_DATABASE_URL."
    )
    broker_url: str = _setting(
        "amqp://guest:guest@127.0.0.1:5672//",
        "AMQP URL of RabbitMQ, or memory:// (one process only).",
    )
    organisation_file: str | None = _setting(
        None, "The organisation YAML (departments, calendars, rules); default: the shipped example."
    )
    routing_model: str | None = _setting(
        None,
        "The router's model file (kcc router train); reloaded when it changes. Unset: the "
        "shipped demo organisation uses its shipped model, any other organisation file its "
        "rules alone.",
    )
    log_level: str = _setting("INFO", "DEBUG/INFO/WARNING/ERROR.", str.upper)
    log_format: str = _setting("json", "json (one object a line) or text.", str.lower)
    publish_timeout: float = _setting(
        5.0,
        "Seconds to wait for a broker connection and publisher confirms; keep it well under "
        "the gunicorn worker timeout.",
    )
    outbox_relay: bool = _setting(
        True,
        "Run the outbox relay inside this process (true/false). Off only when a separate "
        "relay process publishes.",
    )
    outbox_poll_interval: float = _setting(
        1.0, "Seconds between outbox sweeps; a commit also wakes the relay at once."
    )
    outbox_batch_size: int = _setting(200, "Rows published per confirm batch.")
    prefetch: int = _setting(
        200, "Unacked messages a consumer may hold per queue (router, intake, SLA monitor)."
    )
    backoffice_prefetch: int = _setting(
        50,
        "Unacked messages the back office's consumer may hold per queue. It consumes one queue "
        "per department plus backoffice.events, so it holds up to this many times "
        "(departments + 1); hence its own, lower default than KCC_PREFETCH.",
    )
    consumer_batch_size: int = _setting(
        100,
        "Messages an event consumer applies in one transaction; capped at the consumer's "
        "prefetch, since a batch is gathered from unacked messages.",
    )
    heartbeat: int = _setting(
        20,
        "AMQP heartbeat interval (seconds, 1-300) of every consuming connection: a "
        "connection that went silent (a dropped NAT entry, a dead broker host) is noticed "
        "after two missed intervals and the consumer reconnects.",
    )
    stall_timeout: float = _setting(
        120.0,
        "Liveness: a consumer that holds messages and settled none for this many seconds "
        "(10-3600) makes /healthz answer 503, so the supervisor restarts the process.",
    )
    metrics_port: int = _setting(9100, "HTTP port for /metrics, /healthz, /readyz of a consumer.")
    metrics_host: str = _setting("127.0.0.1", "Address that port binds to (0.0.0.0 in containers).")
    http_bind: str | None = _setting(
        None,
        "host:port (or unix:PATH) gunicorn listens on; unset: 127.0.0.1 and the service's own "
        "port (intake 8001, back office 8002, SLA monitor 8003).",
    )
    http_workers: int = _setting(
        2, "gunicorn worker processes (1-64); each opens its own database pool after the fork."
    )
    http_threads: int = _setting(
        32,
        "Threads per gunicorn worker (gthread, 2-1000): every open live stream holds one, so "
        "it must exceed KCC_STREAMS_PER_PROCESS; the rest serve the API and health checks.",
    )
    auth_cache_seconds: float = _setting(
        10.0,
        "How long a checked API token is trusted without asking the database again; a "
        "token revoked elsewhere stops working within this time. 0 turns the cache off.",
    )
    secret_key: str | None = _setting(
        None, "Signs session cookies of the web pages; required there."
    )
    session_cookie_secure: bool = _setting(
        True,
        "Send the web pages' session cookie over HTTPS only (true/false). Off only for "
        "plain http://localhost (kcc dev).",
    )

    sla_public_page: bool = _setting(
        False,
        "Show the SLA monitor's overview page (/sla) without a login, e.g. on a wall "
        "screen (true/false). Off: staff and operators log in with their token "
        "(needs KCC_SECRET_KEY).",
    )
    metrics_token: str | None = _setting(
        None,
        "When set, /metrics answers only with `Authorization: Bearer <token>` (Prometheus: "
        "authorization.credentials_file). Unset: /metrics is open; keep it off the public "
        "network.",
    )

    streams_per_process: int = _setting(
        24,
        "Live update streams (SSE) one intake or back-office process serves at once; each "
        "holds a server thread, so it must be below KCC_HTTP_THREADS. More: 503.",
    )
    retention_days: int = _setting(
        30,
        "Days `kcc <service> prune` keeps processed-event ids, sent outbox rows and the "
        "agents' update feed (at least 7).",
    )
    streams_per_user: int = _setting(
        4,
        "Live update streams one person may hold open in one intake or back-office "
        "process (tabs with the desk or inbox); more: 429, so one person cannot take "
        "every slot.",
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
            name = _env(f.name)
            if not env.get(name):
                continue
            raw = env[name]
            parse = f.metadata["parse"] or _PARSERS.get(str(f.type), str)
            try:
                values[f.name] = parse(raw.strip())
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
        if not 1 <= self.backoffice_prefetch <= 10000:
            problems.append("KCC_BACKOFFICE_PREFETCH: must be between 1 and 10000")
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
        if self.http_bind is not None and not _is_bind(self.http_bind):
            problems.append("KCC_HTTP_BIND: must be host:port or unix:PATH")
        if not 1 <= self.http_workers <= 64:
            problems.append("KCC_HTTP_WORKERS: must be between 1 and 64")
        if not 2 <= self.http_threads <= 1000:
            problems.append("KCC_HTTP_THREADS: must be between 2 and 1000")
        elif self.streams_per_process >= self.http_threads:
            # Streams beyond that would hold every thread: the API and /readyz would hang.
            problems.append(
                f"KCC_STREAMS_PER_PROCESS: must be below KCC_HTTP_THREADS ({self.http_threads}): "
                "each live stream holds a thread, and the API needs at least one"
            )
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
        return [(_env(f.name), repr(f.default), f.metadata["help"]) for f in fields(cls)]


def _env(field_name: str) -> str:
    return "KCC_" + field_name.upper()


def _is_bind(bind: str) -> bool:
    if bind.startswith("unix:"):
        return len(bind) > len("unix:")
    host, _, port = bind.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) <= 65535


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _number(kind: Callable[[str], T]) -> Callable[[str], T]:
    def cast(raw: str) -> T:
        try:
            return kind(raw)
        except ValueError:
            raise ValueError(f"must be a{'n integer' if kind is int else ' number'}") from None

    return cast


# How a variable's text becomes the field's type, by the type as the field declares it.
_PARSERS: Final[Mapping[str, Callable[[str], Any]]] = {
    "int": _number(int),
    "float": _number(float),
    "bool": _bool,
}
