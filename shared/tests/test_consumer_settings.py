"""The event consumer's batch settings: refused when they cannot work, capped where needed."""

from __future__ import annotations

from typing import Any

import pytest
from kcc_shared.config import Config, ConfigError
from kcc_shared.consumer import EventConsumer, processed_events_table
from kcc_shared.db import make_engine
from kcc_shared.events import Event
from kcc_shared.topology import service_queue
from sqlalchemy import Connection, MetaData


def consumer(**kwargs: Any) -> EventConsumer:
    def ignore(connection: Connection, event: Event) -> None:
        del connection, event

    settings: dict[str, Any] = {"handler": ignore, **kwargs}
    return EventConsumer(
        service="test",
        config=Config(broker_url="memory://"),
        queue=service_queue("intake.events"),
        engine=make_engine("sqlite://"),
        processed=processed_events_table(MetaData()),
        **settings,
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("0", "KCC_CONSUMER_BATCH_SIZE: must be between 1 and 5000"),
        ("5001", "KCC_CONSUMER_BATCH_SIZE: must be between 1 and 5000"),
        ("lots", "KCC_CONSUMER_BATCH_SIZE='lots': must be an integer"),
    ],
)
def test_a_batch_size_that_cannot_work_is_refused_by_name(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as failure:
        Config.from_env({"KCC_CONSUMER_BATCH_SIZE": raw})

    assert failure.value.problems == [problem]


def test_the_batch_size_is_read_from_the_environment() -> None:
    assert Config.from_env({"KCC_CONSUMER_BATCH_SIZE": " 25 "}).consumer_batch_size == 25
    assert Config.from_env({}).consumer_batch_size == 100


def test_a_batch_never_waits_for_more_messages_than_the_prefetch_allows() -> None:
    assert consumer(batch_size=500, prefetch=50).batch_size == 50
    assert consumer(batch_size=20, prefetch=50).batch_size == 20


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"idle_timeout": 0}, "must be more than 0 seconds"),
        ({"max_wait": -1}, "must be more than 0 seconds"),
    ],
)
def test_batch_timing_that_cannot_work_is_refused(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        consumer(**kwargs)


def test_a_consumer_takes_exactly_one_kind_of_handler() -> None:
    def each(connection: Connection, event: Event) -> None:
        del connection, event

    def batch(connection: Connection, events: Any) -> None:
        del connection, events

    with pytest.raises(TypeError, match="exactly one of handler= or batch_handler="):
        consumer(handler=each, batch_handler=batch)
    with pytest.raises(TypeError, match="exactly one of handler= or batch_handler="):
        consumer(handler=None)
