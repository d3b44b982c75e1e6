"""The intake Flask application factory."""

from __future__ import annotations

import atexit

from flask import Flask
from kcc_shared.api import TOKENS_EXTENSION, make_api
from kcc_shared.auth import token_store_for
from kcc_shared.config import Config
from kcc_shared.db import make_engine
from kcc_shared.health import dependency_checks, health_blueprint
from kcc_shared.metrics import instrument
from kcc_shared.organisation import load_organisation
from kcc_shared.outbox import backlog_gauges, relay_for
from kcc_shared.problems import register_problem_handlers
from kcc_shared.web import init_web

from intake.api import catalog_blp, requests_blp, stream_blp, suggestions_blp
from intake.metrics import SERVICE
from intake.pages import desk_bp
from intake.service import CONTEXT_EXTENSION, IntakeContext
from intake.store import RequestStore, outbox
from intake.stream import desk_feed
from intake.suggestions import Suggestions

DESCRIPTION = """\
The KCC agents' front door. Agents file a question for a back-office department and follow
it until it is answered. Authenticate with `Authorization: Bearer <token>`
(`kcc token create --role agent --user <id>`). Errors are `application/problem+json`.
"""


def create_app(config: Config | None = None) -> Flask:
    """Build the intake app; under gunicorn this runs in each worker, after the fork."""
    config = config or Config.from_env()
    organisation = load_organisation(config.organisation_file)

    engine = make_engine(config.database_url)
    store = RequestStore(engine)
    store.create_schema()
    tokens = token_store_for(config, engine)

    relay = relay_for(config, engine, outbox, service=SERVICE)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    feed = desk_feed(
        engine,
        max_subscribers=config.streams_per_process,
        max_per_user=config.streams_per_user,
    )
    # The reusable answers' index, loaded now: the first KCC-medewerker typing a question
    # after a start must not wait for it (docs/similar.md has the time it takes).
    suggestions = Suggestions(engine, organisation, store.outbox, store.now)
    suggestions.refresh()
    app.extensions[CONTEXT_EXTENSION] = IntakeContext(store, organisation, relay, feed, suggestions)
    app.extensions[TOKENS_EXTENSION] = tokens

    api = make_api(app, title="KCC intake", version="1.0.0", description=DESCRIPTION)
    register_problem_handlers(app)
    api.register_blueprint(requests_blp)
    api.register_blueprint(stream_blp)
    api.register_blueprint(catalog_blp)
    api.register_blueprint(suggestions_blp)
    if config.secret_key:
        # The agent desk (/balie) needs a key to sign its session cookie; without one the
        # process serves the API only.
        init_web(
            app,
            service=SERVICE,
            roles=("agent",),
            secret_key=config.secret_key,
            secure_cookie=config.session_cookie_secure,
            home="/balie",
        )
        app.register_blueprint(desk_bp)
    checks = dependency_checks(engine, config.broker_url, config.publish_timeout)
    app.register_blueprint(health_blueprint(checks))
    gauges = backlog_gauges(engine, outbox, SERVICE)
    instrument(app, SERVICE, before_scrape=[gauges], token=config.metrics_token)

    if config.outbox_relay:
        relay.start()
        atexit.register(relay.stop)
    # The feed's thread starts with the first stream; stopping it ends open streams.
    atexit.register(feed.stop)
    return app
