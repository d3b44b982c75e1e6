"""Fixtures of the fault-injection suite: a private RabbitMQ node and PostgreSQL cluster for
the whole session, and per test a fresh stack of every service as real processes on them."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kcc_shared.organisation import load_organisation
from router.decision import Decider, Query
from router.model import DEMO_MODEL, RoutingModel
from router.rules import RuleSet

from conftest import DEV_DATA, _unavailable, harness

# traffic, ledger and servers are plain modules of this suite (see tests/e2e for why the
# package name `tests` cannot be relied on in a full run).
sys.path.insert(0, str(Path(__file__).parent))

from cluster import (
    REPLICATED,
    PrivateRabbitCluster,
    Replica,
    Replicated,
    organisation_with_a_fast_department,
)
from servers import PrivatePostgres, PrivateRabbitMQ, postgres_bin, rabbitmq_available


@pytest.fixture(scope="session")
def private_rabbitmq() -> Iterator[PrivateRabbitMQ]:
    if not rabbitmq_available():
        _unavailable("a RabbitMQ server to run privately", FileNotFoundError("rabbitmq-server"))
    broker = PrivateRabbitMQ(Path(tempfile.mkdtemp(prefix="kcc-faults-rabbitmq-")))
    try:
        broker.start()
        yield broker
    finally:
        broker.close()
        shutil.rmtree(broker.base, ignore_errors=True)


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    if postgres_bin() is None:
        _unavailable("a PostgreSQL server to run privately", FileNotFoundError("pg_ctl"))
    # Not under pytest's tmp folder: the server runs as `postgres`, which may not enter it.
    database = PrivatePostgres(Path(tempfile.mkdtemp(prefix="kcc-faults-postgres-")))
    try:
        database.init()
        database.start()
        yield database
    finally:
        database.close()
        shutil.rmtree(database.base, ignore_errors=True)


@pytest.fixture(scope="session")
def questions() -> list[tuple[str, str, str]]:
    """Dev-set questions with the department the shipped rules and model send them to."""
    decider = Decider(RuleSet.from_organisation(load_organisation()), RoutingModel.load(DEMO_MODEL))
    rows = [json.loads(line) for line in DEV_DATA.read_text().splitlines() if line.strip()]
    decisions = decider.decide_many([Query(row["question"]) for row in rows])
    return [
        (row["question"], row.get("channel", "phone"), decision.department)
        for row, decision in zip(rows, decisions, strict=True)
    ]


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    private_rabbitmq: PrivateRabbitMQ,
    private_postgres: PrivatePostgres,
) -> Iterator[Any]:
    """Every service as a real process, shared by the faults of a module: each fault accounts
    for its own requests, and a stack takes ~20 s to start on this machine kind."""
    vhost = f"faults-{uuid.uuid4().hex[:8]}"
    url = private_rabbitmq.add_vhost(vhost)
    with harness().Stack(
        tmp_path_factory.mktemp("stack"),
        url,
        private_postgres.admin_dsn,
        name="faults",
        # Outages here last seconds; the services give up on a broker call quickly and retry.
        env={"KCC_PUBLISH_TIMEOUT": "3", "KCC_LOG_LEVEL": "INFO"},
    ) as running:
        running.start_all()
        private_rabbitmq.persist_queue_registry()
        yield running
    private_rabbitmq.ctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def rabbit_cluster() -> Iterator[PrivateRabbitCluster]:
    if not rabbitmq_available():
        _unavailable("a RabbitMQ server to run privately", FileNotFoundError("rabbitmq-server"))
    cluster = PrivateRabbitCluster(Path(tempfile.mkdtemp(prefix="kcc-faults-cluster-")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()
        shutil.rmtree(cluster.base, ignore_errors=True)


@pytest.fixture(scope="module")
def replicated(
    tmp_path_factory: pytest.TempPathFactory,
    rabbit_cluster: PrivateRabbitCluster,
    private_postgres: PrivatePostgres,
) -> Iterator[Replicated]:
    folder = tmp_path_factory.mktemp("cluster-stack")
    vhost = f"cluster-{uuid.uuid4().hex[:8]}"
    url = rabbit_cluster.add_vhost(vhost)
    env = {
        # Outages here last seconds; the services give up on a broker call quickly and retry.
        "KCC_PUBLISH_TIMEOUT": "3",
        "KCC_LOG_LEVEL": "INFO",
        "KCC_ORGANISATION_FILE": str(organisation_with_a_fast_department(folder)),
        # Another organisation file means "rules alone" unless a model is named.
        "KCC_ROUTING_MODEL": str(DEMO_MODEL),
    }
    with harness().Stack(
        folder / "stack", url, private_postgres.admin_dsn, name="cluster", env=env
    ) as stack:
        stack.start_all()
        replicas = {
            name: Replica(
                stack,
                name,
                {**env, "KCC_LOG_FORMAT": "text", "KCC_SECRET_KEY": uuid.uuid4().hex * 2},
                folder / f"{name}-2.log",
            )
            for name in REPLICATED
        }
        try:
            for replica in replicas.values():
                replica.start()
            for replica in replicas.values():
                replica.wait_ready()
            yield Replicated(stack, replicas, vhost)
        finally:
            for replica in replicas.values():
                replica.stop()
