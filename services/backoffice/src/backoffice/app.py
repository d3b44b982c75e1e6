"""The back-office Flask application factory: the staff API and the inbox pages."""

from __future__ import annotations

import atexit
from typing import Final

from flask import Flask
from kcc_shared.api import TOKENS_EXTENSION, make_api
from kcc_shared.auth import token_store_for
from kcc_shared.config import Config
from kcc_shared.db import make_engine
from kcc_shared.health import dependency_checks, health_blueprint
from kcc_shared.metrics import instrument
from kcc_shared.organisation import load_organisation
from kcc_shared.outbox import Clock, backlog_gauges, relay_for, utcnow
from kcc_shared.problems import register_problem_handlers
from kcc_shared.web import init_web

from backoffice.api import inbox_blp, items_blp
from backoffice.inbox import LISTABLE_STATES
from backoffice.live import inbox_feed
from backoffice.metrics import INBOX_ITEMS, SERVICE
from backoffice.pages import pages_bp
from backoffice.service import BackofficeContext
from backoffice.store import InboxStore, outbox

CONTEXT_EXTENSION: Final = "kcc.backoffice"
PAGE_ROLES: Final = ("staff", "ops", "admin")

DESCRIPTION = """\
Department staff work their queue of questions from the KCC: claim, answer, ask the agent for
clarification, forward. Authenticate with `Authorization: Bearer <token>`
(`kcc token create --role staff --user <id> --department <d>`); staff see and act only on their
own departments, operators may read. Errors are `application/problem+json`.
"""


def create_app(config: Config | None = None, *, clock: Clock = utcnow) -> Flask:
    """Build the back-office app; under gunicorn this runs in each worker, after the fork."""
    config = config or Config.from_env()
    organisation = load_organisation(config.organisation_file)

    engine = make_engine(config.database_url)
    store = InboxStore(engine, organisation, clock)
    store.create_schema()
    tokens = token_store_for(config, engine)

    relay = relay_for(config, engine, outbox, service=SERVICE, clock=clock)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    feed = inbox_feed(
        store,
        max_subscribers=config.streams_per_process,
        max_per_user=config.streams_per_user,
    )
    context = BackofficeContext(store, organisation, relay, clock, feed)
    # The answered questions' meanings into memory now, not at the first item page opened.
    assert context.earlier is not None
    context.earlier.refresh()
    app.extensions[CONTEXT_EXTENSION] = context
    app.extensions[TOKENS_EXTENSION] = tokens

    api = make_api(app, title="KCC back office", version="1.0.0", description=DESCRIPTION)
    register_problem_handlers(app)
    api.register_blueprint(inbox_blp)
    api.register_blueprint(items_blp)
    init_web(
        app,
        service=SERVICE,
        roles=PAGE_ROLES,
        secret_key=config.secret_key,
        secure_cookie=config.session_cookie_secure,
        home="/inbox",
    )
    app.register_blueprint(pages_bp)
    checks = dependency_checks(engine, config.broker_url, config.publish_timeout)
    app.register_blueprint(health_blueprint(checks))
    outbox_gauges = backlog_gauges(engine, outbox, SERVICE, clock)

    def refresh_gauges() -> None:
        outbox_gauges()
        counts = store.counts()
        # Labels from the organisation file and the fixed state list only: bounded.
        for department in organisation.departments:
            for state in LISTABLE_STATES:
                INBOX_ITEMS.labels(department, state).set(counts.get((department, state), 0))

    instrument(app, SERVICE, before_scrape=[refresh_gauges], token=config.metrics_token)

    # The feed's poller starts with the first stream; stopping it ends the open streams.
    atexit.register(feed.stop)
    if config.outbox_relay:
        relay.start()
        atexit.register(relay.stop)
    return app
