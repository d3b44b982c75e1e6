"""Configuration from the environment: documented defaults, and every mistake reported at once."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from kcc_shared.config import Config, ConfigError

# The defaults as docs/configuration.md documents them.
DEFAULTS: dict[str, Any] = {
    "database_url": "sqlite:///var/kcc.db",
    "auth_database_url": None,
    "broker_url": "amqp://guest:guest@127.0.0.1:5672//",
    "organisation_file": None,
    "routing_model": None,
    "log_level": "INFO",
    "log_format": "json",
    "publish_timeout": 5.0,
    "outbox_relay": True,
    "outbox_poll_interval": 1.0,
    "outbox_batch_size": 200,
    "prefetch": 200,
    "backoffice_prefetch": 50,
    "consumer_batch_size": 100,
    "heartbeat": 20,
    "stall_timeout": 120.0,
    "metrics_port": 9100,
    "metrics_host": "127.0.0.1",
    "http_bind": None,
    "http_workers": 2,
    "http_threads": 32,
    "auth_cache_seconds": 10.0,
    "secret_key": None,
    "session_cookie_secure": True,
    "sla_public_page": False,
    "metrics_token": None,
    "streams_per_process": 24,
    "retention_days": 30,
    "streams_per_user": 4,
}


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    config = Config.from_env({})

    assert dataclasses.asdict(config) == DEFAULTS
    assert config.auth_url == "sqlite:///var/kcc.db"


def test_unrelated_and_empty_variables_are_ignored() -> None:
    config = Config.from_env({"HOME": "/root", "KCC_LOG_LEVEL": "", "KCC_SECRET_KEY": ""})

    assert config == Config.from_env({})


def test_from_env_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KCC_PREFETCH", "17")

    assert Config.from_env().prefetch == 17


# Every variable, set to a valid value, and what the service then uses.
VALID: list[Any] = [
    ("KCC_DATABASE_URL", "postgresql+psycopg://kcc@db/intake", "database_url", None),
    ("KCC_AUTH_DATABASE_URL", "postgresql://kcc@db/auth", "auth_database_url", None),
    ("KCC_BROKER_URL", "memory://", "broker_url", None),
    ("KCC_ORGANISATION_FILE", "<file>", "organisation_file", None),
    ("KCC_ROUTING_MODEL", "<file>", "routing_model", None),
    ("KCC_LOG_LEVEL", " debug ", "log_level", "DEBUG"),
    ("KCC_LOG_FORMAT", "TEXT", "log_format", "text"),
    ("KCC_PUBLISH_TIMEOUT", "2.5", "publish_timeout", 2.5),
    ("KCC_OUTBOX_RELAY", "off", "outbox_relay", False),
    ("KCC_OUTBOX_POLL_INTERVAL", "0.2", "outbox_poll_interval", 0.2),
    ("KCC_OUTBOX_BATCH_SIZE", "50", "outbox_batch_size", 50),
    ("KCC_PREFETCH", " 10 ", "prefetch", 10),
    ("KCC_BACKOFFICE_PREFETCH", "20", "backoffice_prefetch", 20),
    ("KCC_CONSUMER_BATCH_SIZE", "25", "consumer_batch_size", 25),
    ("KCC_HEARTBEAT", "5", "heartbeat", 5),
    ("KCC_STALL_TIMEOUT", "300", "stall_timeout", 300.0),
    ("KCC_METRICS_PORT", "9200", "metrics_port", 9200),
    ("KCC_METRICS_HOST", "0.0.0.0", "metrics_host", "0.0.0.0"),
    ("KCC_HTTP_BIND", "0.0.0.0:8001", "http_bind", None),
    ("KCC_HTTP_WORKERS", "4", "http_workers", 4),
    ("KCC_HTTP_THREADS", "64", "http_threads", 64),
    ("KCC_AUTH_CACHE_SECONDS", "0", "auth_cache_seconds", 0.0),
    ("KCC_SECRET_KEY", "s3cret-for-cookies", "secret_key", None),
    ("KCC_SESSION_COOKIE_SECURE", "false", "session_cookie_secure", False),
    ("KCC_METRICS_TOKEN", "a-long-metrics-token-123", "metrics_token", None),
    ("KCC_SLA_PUBLIC_PAGE", "true", "sla_public_page", True),
    ("KCC_STREAMS_PER_PROCESS", "30", "streams_per_process", 30),
    ("KCC_RETENTION_DAYS", "90", "retention_days", 90),
    ("KCC_STREAMS_PER_USER", "2", "streams_per_user", 2),
]


def test_every_described_variable_has_a_valid_case_here() -> None:
    assert {variable for variable, *_ in VALID} == {v for v, _, _ in Config.describe()}


@pytest.mark.parametrize(("variable", "raw", "field", "expected"), VALID)
def test_each_variable_sets_its_field(
    tmp_path: Path, variable: str, raw: str, field: str, expected: Any
) -> None:
    if raw == "<file>":
        raw = str(tmp_path / "organisation.yaml")
        Path(raw).write_text("departments: []\n")

    config = Config.from_env({variable: raw})

    assert getattr(config, field) == (raw if expected is None else expected)
    assert getattr(config, field) != DEFAULTS[field]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("Yes", True),
        ("ON", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("Off", False),
    ],
)
def test_booleans_are_read_the_usual_ways(raw: str, expected: bool) -> None:
    assert Config.from_env({"KCC_OUTBOX_RELAY": raw}).outbox_relay is expected


def test_the_auth_store_defaults_to_the_service_store_and_can_be_separate() -> None:
    own = Config.from_env({"KCC_DATABASE_URL": "postgresql://kcc@db/intake"})
    separate = Config.from_env(
        {"KCC_DATABASE_URL": "postgresql://kcc@db/intake", "KCC_AUTH_DATABASE_URL": "sqlite:///a"}
    )

    assert own.auth_url == "postgresql://kcc@db/intake"
    assert separate.auth_url == "sqlite:///a"


BAD: list[Any] = [
    pytest.param("KCC_PUBLISH_TIMEOUT", "soon", id="timeout not a number"),
    pytest.param("KCC_METRICS_TOKEN", "short", id="metrics token too short"),
    pytest.param("KCC_STREAMS_PER_USER", "0", id="no streams per user"),
    pytest.param("KCC_STREAMS_PER_USER", "25", id="more per user than per process"),
    pytest.param("KCC_METRICS_TOKEN", "with a space in the token", id="metrics token spaces"),
    pytest.param("KCC_PUBLISH_TIMEOUT", "0", id="timeout zero"),
    pytest.param("KCC_PUBLISH_TIMEOUT", "30", id="timeout above the gunicorn budget"),
    pytest.param("KCC_PUBLISH_TIMEOUT", "nan", id="timeout nan"),
    pytest.param("KCC_OUTBOX_POLL_INTERVAL", "-1", id="negative poll interval"),
    pytest.param("KCC_OUTBOX_POLL_INTERVAL", "61", id="poll interval too long"),
    pytest.param("KCC_OUTBOX_BATCH_SIZE", "0", id="batch size zero"),
    pytest.param("KCC_OUTBOX_BATCH_SIZE", "5001", id="batch size too large"),
    pytest.param("KCC_OUTBOX_BATCH_SIZE", "2.5", id="batch size not an integer"),
    pytest.param("KCC_AUTH_CACHE_SECONDS", "-1", id="negative token cache"),
    pytest.param("KCC_AUTH_CACHE_SECONDS", "301", id="token cache too long"),
    pytest.param("KCC_AUTH_CACHE_SECONDS", "ten", id="token cache not a number"),
    pytest.param("KCC_PREFETCH", "0", id="prefetch zero"),
    pytest.param("KCC_PREFETCH", "many", id="prefetch not a number"),
    pytest.param("KCC_BACKOFFICE_PREFETCH", "0", id="back office prefetch zero"),
    pytest.param("KCC_HTTP_BIND", "8001", id="bind without a host"),
    pytest.param("KCC_HTTP_BIND", "0.0.0.0:http", id="bind port not a number"),
    pytest.param("KCC_HTTP_WORKERS", "0", id="no gunicorn workers"),
    pytest.param("KCC_HTTP_WORKERS", "two", id="workers not a number"),
    pytest.param("KCC_HTTP_THREADS", "1", id="one thread: a stream would block the API"),
    pytest.param("KCC_STREAMS_PER_PROCESS", "32", id="as many streams as threads"),
    pytest.param("KCC_CONSUMER_BATCH_SIZE", "0", id="consumer batch size zero"),
    pytest.param("KCC_CONSUMER_BATCH_SIZE", "5001", id="consumer batch size too large"),
    pytest.param("KCC_CONSUMER_BATCH_SIZE", "lots", id="consumer batch size not a number"),
    pytest.param("KCC_HEARTBEAT", "0", id="heartbeats off"),
    pytest.param("KCC_HEARTBEAT", "301", id="heartbeat too slow to notice a dead connection"),
    pytest.param("KCC_HEARTBEAT", "2.5", id="heartbeat not whole seconds"),
    pytest.param("KCC_STALL_TIMEOUT", "5", id="stall timeout shorter than a held batch"),
    pytest.param("KCC_STALL_TIMEOUT", "soon", id="stall timeout not a number"),
    pytest.param("KCC_METRICS_PORT", "70000", id="port out of range"),
    pytest.param("KCC_METRICS_PORT", "http", id="port not a number"),
    pytest.param("KCC_LOG_LEVEL", "LOUD", id="unknown log level"),
    pytest.param("KCC_LOG_LEVEL", "CRITICAL", id="a level python knows but we do not"),
    pytest.param("KCC_LOG_FORMAT", "xml", id="unknown log format"),
    pytest.param("KCC_DATABASE_URL", "mysql://kcc@db/kcc", id="database scheme"),
    pytest.param("KCC_DATABASE_URL", "var/kcc.db", id="database path, not a URL"),
    pytest.param("KCC_AUTH_DATABASE_URL", "redis://cache", id="auth database scheme"),
    pytest.param("KCC_BROKER_URL", "http://127.0.0.1:15672", id="broker scheme"),
    pytest.param("KCC_BROKER_URL", "rabbitmq.local", id="broker not a URL"),
    pytest.param("KCC_ORGANISATION_FILE", "/nonexistent/organisation.yaml", id="no such file"),
    pytest.param("KCC_ORGANISATION_FILE", "/", id="a directory, not a file"),
    pytest.param("KCC_ROUTING_MODEL", "/nonexistent/model.npz", id="no such model file"),
    pytest.param("KCC_OUTBOX_RELAY", "maybe", id="bad bool"),
    pytest.param("KCC_OUTBOX_RELAY", "2", id="bool as a number"),
]


@pytest.mark.parametrize(("variable", "raw"), BAD)
def test_a_bad_variable_is_reported_by_name(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({variable: raw})

    [problem] = caught.value.problems
    assert problem.startswith(variable)
    assert variable in str(caught.value)


def test_live_streams_must_leave_a_thread_for_the_api() -> None:
    # Each open stream holds a gunicorn thread; as many streams as threads and the pages,
    # the API and /readyz would wait behind the streams.
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"KCC_HTTP_THREADS": "8"})

    assert caught.value.problems == [
        "KCC_STREAMS_PER_PROCESS: must be below KCC_HTTP_THREADS (8): each live stream holds "
        "a thread, and the API needs at least one"
    ]
    assert Config.from_env({"KCC_HTTP_THREADS": "8", "KCC_STREAMS_PER_PROCESS": "6"})


def test_all_bad_variables_are_reported_at_once() -> None:
    # Cast errors (not a number, not a bool) and range/choice errors together: an operator
    # fixing a deployment sees every mistake in one start, not one per restart.
    env = {
        "KCC_PUBLISH_TIMEOUT": "soon",
        "KCC_OUTBOX_BATCH_SIZE": "0",
        "KCC_LOG_LEVEL": "LOUD",
        "KCC_BROKER_URL": "http://127.0.0.1:15672",
        "KCC_ORGANISATION_FILE": "/nonexistent/organisation.yaml",
        "KCC_OUTBOX_RELAY": "maybe",
        "KCC_METRICS_PORT": "http",
    }

    with pytest.raises(ConfigError) as caught:
        Config.from_env(env)

    named = sorted(problem.split("=")[0].split(":")[0] for problem in caught.value.problems)
    assert named == sorted(env)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("KCC_DATABASE_URL", "mysql://kcc:geheim-wachtwoord@db/kcc"),
        ("KCC_AUTH_DATABASE_URL", "mssql://kcc:geheim-wachtwoord@db/kcc"),
        ("KCC_BROKER_URL", "http://guest:geheim-wachtwoord@rabbit:15672/"),
    ],
)
def test_a_rejected_url_is_not_echoed_with_its_password(variable: str, raw: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({variable: raw})

    assert variable in str(caught.value)
    assert "geheim-wachtwoord" not in str(caught.value)


def test_overrides_are_validated_like_the_environment() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({}, publish_timeout=60.0)

    assert caught.value.problems == ["KCC_PUBLISH_TIMEOUT: must be between 0 and 20 seconds"]


def test_with_validates_the_changed_config() -> None:
    config = Config.from_env({})

    assert config.with_(prefetch=5).prefetch == 5
    with pytest.raises(ConfigError, match="KCC_PREFETCH"):
        config.with_(prefetch=0)


def test_describe_lists_every_field_with_its_variable_default_and_help() -> None:
    described = Config.describe()
    defaults = Config.from_env({})

    assert len(described) == len(dataclasses.fields(Config))
    for field, (variable, default, help_) in zip(
        dataclasses.fields(Config), described, strict=True
    ):
        assert variable == "KCC_" + field.name.upper()
        assert default == repr(getattr(defaults, field.name))
        assert len(help_) > 10
