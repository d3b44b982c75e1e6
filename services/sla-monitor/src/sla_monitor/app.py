"""The SLA monitor Flask application factory: summary API, overview page, /metrics, health."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import Flask
from kcc_shared.api import TOKENS_EXTENSION, make_api
from kcc_shared.auth import token_store_for
from kcc_shared.config import Config
from kcc_shared.db import make_engine
from kcc_shared.health import dependency_checks, health_blueprint
from kcc_shared.metrics import instrument, multiprocess_dir
from kcc_shared.organisation import Organisation, load_organisation
from kcc_shared.outbox import backlog_gauges
from kcc_shared.problems import register_problem_handlers
from kcc_shared.web import init_web

from sla_monitor.api import summary_blp
from sla_monitor.metrics import (
    OpenRequestsCollector,
    initialise_outcomes,
    install_open_collector,
)
from sla_monitor.pages import LIST_ACCESS, PAGE_ACCESS, PAGE_ROLES, pages_blp
from sla_monitor.store import SlaStore
from sla_monitor.summary import CONTEXT_EXTENSION, DEFAULT_BACKOFFICE_URL, SlaContext
from sla_monitor.tables import outbox
from sla_monitor.worker import SERVICE, utcnow

DESCRIPTION = """\
SLA figures of the KCC's back-office departments: clocks in business time per department,
compliance (a question open past its deadline counts as breached), at-risk and late questions,
percentiles, open work, time before each handoff, per KCC team, and satisfaction. Authenticate with
`Authorization: Bearer <token>` of role ops or admin. Errors are `application/problem+json`.
"""


def create_app(
    config: Config | None = None,
    clock: Callable[[], datetime] = utcnow,
    organisation: Organisation | None = None,
    backoffice_url: str = DEFAULT_BACKOFFICE_URL,
) -> Flask:
    """Build the app; `kcc sla serve` runs it under gunicorn, `kcc dev` next to the monitor.

    backoffice_url: where the drill-down links a question to (`<backoffice_url>/items/<id>`).
    """
    config = config or Config.from_env()
    organisation = organisation or load_organisation(config.organisation_file)

    engine = make_engine(config.database_url)
    store = SlaStore(engine, organisation)
    store.create_schema()
    tokens = token_store_for(config, engine)

    app = Flask(__name__)
    app.extensions[CONTEXT_EXTENSION] = SlaContext(
        store, organisation, clock, backoffice_url.rstrip("/")
    )
    app.extensions[TOKENS_EXTENSION] = tokens

    api = make_api(app, title="KCC SLA monitor", version="1.0.0", description=DESCRIPTION)
    register_problem_handlers(app)
    api.register_blueprint(summary_blp)
    # The overview shows how departments perform: only for people who log in (staff, ops,
    # admin), unless the operator chose a public view (KCC_SLA_PUBLIC_PAGE). The drill-down
    # names questions and staff: only ever after a login.
    if config.secret_key:
        init_web(
            app,
            service=SERVICE,
            roles=PAGE_ROLES,
            secret_key=config.secret_key,
            secure_cookie=config.session_cookie_secure,
            home="/sla",
        )
    app.config[LIST_ACCESS] = "login" if config.secret_key else "off"
    if config.sla_public_page:
        app.config[PAGE_ACCESS] = "public"
    else:
        app.config[PAGE_ACCESS] = "login" if config.secret_key else "off"
    app.register_blueprint(pages_blp)
    checks = dependency_checks(engine, config.broker_url, config.publish_timeout)
    app.register_blueprint(health_blueprint(checks))

    # Under gunicorn (`kcc sla serve`, PROMETHEUS_MULTIPROC_DIR set) this /metrics is the web
    # side's own: its HTTP latency. The SLA figures are exported once, by the process that
    # computes them (`kcc sla run`); in one process (`kcc dev`, tests) here as well.
    hooks = [] if multiprocess_dir() else [monitor_metrics(store, organisation, clock)]
    instrument(app, SERVICE, before_scrape=hooks, token=config.metrics_token)
    return app


def monitor_metrics(
    store: SlaStore, organisation: Organisation, clock: Callable[[], datetime]
) -> Callable[[], None]:
    """Export the figures read from the store: the open work at scrape time (a collector in the
    default registry, hence one process, never gunicorn's multiprocess files) and every
    outcome from 0. Returns the hook that refreshes the outbox gauges before a scrape."""
    install_open_collector(OpenRequestsCollector(lambda: store.open_figures(clock())))
    initialise_outcomes(organisation)

    return backlog_gauges(store.engine, outbox, SERVICE, clock)


def store_of(app: Flask) -> SlaStore:
    context: SlaContext = app.extensions[CONTEXT_EXTENSION]
    return context.store
