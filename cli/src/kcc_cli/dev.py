"""`kcc dev`: every service that exists in one process, on one port, with demo users."""

from __future__ import annotations

import html
import json
import logging
import secrets
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

import click
from backoffice.app import create_app as create_backoffice
from backoffice.worker import InboxWorker
from intake.app import create_app as create_intake
from intake.worker import ViewConsumer
from kcc_shared.auth import TokenStore, tokens_table
from kcc_shared.config import Config
from kcc_shared.db import create_schema, make_engine
from kcc_shared.logging import configure_logging
from kcc_shared.organisation import OrganisationError, load_organisation
from router.worker import RouterWorker
from sla_monitor.app import create_app as create_sla
from sla_monitor.app import store_of
from sla_monitor.worker import SlaMonitor
from sqlalchemy import MetaData
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server

log = logging.getLogger(__name__)

# (user id, role, team, departments): enough people to try every side of the product.
DEMO_USERS: tuple[tuple[str, str, str | None, tuple[str, ...]], ...] = (
    ("agent-anna", "agent", "kcc-noord", ()),
    ("agent-bram", "agent", "kcc-noord", ()),
    ("agent-chris", "agent", "kcc-zuid", ()),
    ("staff-eva", "staff", None, ("burgerzaken", "belastingen")),
    ("staff-femke", "staff", None, ("afval", "openbare-ruimte", "kcc-triage")),
    (
        "staff-gijs",
        "staff",
        None,
        ("vergunningen", "wonen", "parkeren", "ondernemers", "sociaal-domein", "juridische-zaken"),
    ),
    ("ops-dana", "ops", None, ()),
)


def demo_tokens(config: Config, data: Path) -> dict[str, str]:
    """Create the demo users once; keep their tokens in the data folder so a restart shows
    the same ones (a demo convenience: real tokens are only ever printed once)."""
    path = data / "demo-tokens.json"
    if path.is_file():
        saved: dict[str, str] = json.loads(path.read_text())
        return saved
    engine = make_engine(config.auth_url)
    metadata = MetaData()
    store = TokenStore(engine, tokens_table(metadata))
    create_schema(engine, metadata)
    tokens = {}
    for user, role, team, departments in DEMO_USERS:
        token, _ = store.create(
            role=role, user_id=user, team=team, departments=departments, label="kcc dev demo"
        )
        tokens[user] = token
    path.write_text(json.dumps(tokens, indent=2))
    path.chmod(0o600)
    return tokens


def start_page(tokens: dict[str, str], base: str) -> bytes:
    anna = tokens["agent-anna"]
    rows = "\n".join(
        f"<tr><td>{html.escape(user)}</td><td>{html.escape(role)}</td>"
        f"<td>{html.escape(team or '')}</td><td><code>{html.escape(tokens[user])}</code></td></tr>"
        for user, role, team, _ in DEMO_USERS
    )
    curl = (
        f"curl -s -X POST {base}/api/v1/requests -H 'Authorization: Bearer {anna}' \\\n"
        f"  -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' \\\n"
        '  -d \'{"question": "Paspoort verlopen, vertrekt over 10 dagen. Spoedaanvraag?"}\''
    )
    page = f"""<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>KCC kennisvragen — ontwikkelomgeving</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
code,pre{{background:#f3f3f3;padding:.1rem .3rem}}td{{padding:.2rem .6rem}}</style></head>
<body>
<h1>KCC kennisvragen</h1>
<p>Vragen van het klantcontactcentrum naar de juiste vakafdeling: zichtbaar, op tijd, met
terugkoppeling. Deze ontwikkelomgeving draait intake, router, backoffice en SLA-monitor in één
proces, met een interne broker en SQLite.</p>
<h2>Pagina's</h2>
<ul>
<li><a href="/balie">Balie van de KCC-medewerker</a> — vraag uitzetten, volgen, beoordelen
(log in met een agent-token)</li>
<li><a href="/backoffice/inbox">Werkvoorraad van de afdeling</a> — oppakken, beantwoorden,
doorsturen (log in met een staff-token)</li>
<li><a href="/sla-monitor/sla">SLA-overzicht</a> — normen, overschrijdingen, doorlooptijden</li>
</ul>
<h2>API en techniek</h2>
<ul>
<li>API-beschrijvingen: <a href="/api/openapi.json">intake</a>,
<a href="/backoffice/api/openapi.json">backoffice</a>,
<a href="/sla-monitor/api/openapi.json">SLA-monitor</a></li>
<li>Metrics: <a href="/metrics">intake en router</a>, <a href="/backoffice/metrics">backoffice</a>,
<a href="/sla-monitor/metrics">SLA-monitor</a> (één proces: dezelfde registry)</li>
<li><a href="/readyz">Gereedheid</a> en <a href="/healthz">levend</a></li>
</ul>
<h2>Demogebruikers</h2>
<table><tr><th>gebruiker</th><th>rol</th><th>team</th><th>token</th></tr>
{rows}</table>
<h2>Een vraag uitzetten</h2>
<pre>{html.escape(curl)}</pre>
<p>Volg de vraag daarna op <code>GET /api/v1/requests/&lt;id&gt;</code>; de routering staat in
het log (<code>request_routed</code>) en in <code>kcc_requests_routed_total</code> op
<a href="/metrics">/metrics</a>.</p>
</body></html>"""
    return page.encode()


def with_start_page(app: Callable[..., Iterable[bytes]], page: bytes) -> Callable[..., Any]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in ("", "/"):
            start_response(
                "200 OK",
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))],
            )
            return [page]
        return app(environ, start_response)

    return wsgi


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/dev"),
    show_default=True,
    help="Folder for the SQLite store and demo tokens (kept across runs).",
)
@click.pass_obj
def dev(config: Config, host: str, port: int, data: Path) -> None:
    """Run the system in one process: memory:// broker, SQLite, demo organisation and users."""
    data = data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    shared = config.with_(
        auth_database_url=f"sqlite:///{data / 'auth.db'}",
        broker_url="memory://localhost/",
        outbox_poll_interval=0.5,
        secret_key=_secret_key(data),
        # Plain http on localhost: a Secure cookie would never be sent back.
        session_cookie_secure=False,
    )
    configure_logging(config.log_level, "text")
    try:
        organisation = load_organisation(config.organisation_file)
    except OrganisationError as exc:
        raise click.ClickException(f"the organisation file is invalid:\n{exc}") from exc
    tokens = demo_tokens(shared, data)
    stops: list[Callable[[], None]] = []

    def store(name: str) -> Config:
        # Each service owns its store, as in production: one SQLite file each.
        return shared.with_(database_url=f"sqlite:///{data / name}.db")

    # The router first: it declares every department queue, and memory:// drops messages
    # published before a queue is bound.
    router = RouterWorker(
        shared.broker_url,
        organisation,
        organisation_file=config.organisation_file,
        prefetch=config.prefetch,
        publish_timeout=config.publish_timeout,
    )
    router.start()
    stops.append(router.stop)

    intake = create_intake(store("intake"))
    intake_context = intake.extensions["kcc.intake"]
    stops += [intake_context.relay.stop, intake_context.feed.stop]
    view = ViewConsumer(
        intake_context.store, shared.broker_url, publish_timeout=config.publish_timeout
    )
    view.start()
    stops.append(view.stop)

    backoffice = create_backoffice(store("backoffice"))
    backoffice_context = backoffice.extensions["kcc.backoffice"]
    stops.append(backoffice_context.relay.stop)
    inbox = InboxWorker(
        shared.broker_url, backoffice_context.store, publish_timeout=config.publish_timeout
    )
    inbox.start()
    stops.append(inbox.stop)

    sla_config = store("sla-monitor")
    sla = create_sla(sla_config, organisation=organisation)
    monitor = SlaMonitor(sla_config, store_of(sla))
    monitor.start()
    stops.append(monitor.stop)

    base = f"http://{host}:{port}"
    site = DispatcherMiddleware(
        with_start_page(intake, start_page(tokens, base)),
        {"/backoffice": backoffice, "/sla-monitor": sla},
    )
    try:
        server = make_server(host, port, site, threaded=True)
    except (OSError, SystemExit) as exc:
        # Note: werkzeug prints its own advice and calls sys.exit when the port is taken.
        _stop_all(stops)
        raise click.ClickException(f"cannot listen on {host}:{port}") from exc

    stopping = threading.Event()

    def shutdown(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    click.echo(f"KCC dev: {base}/  (data in {data}; Ctrl-C stops)")
    for user, role, _, _ in DEMO_USERS:
        click.echo(f"  {role:<5} {user:<12} {tokens[user]}")
    try:
        server.serve_forever()
    finally:
        click.echo("stopping…")
        server.server_close()
        _stop_all(stops)


def _stop_all(stops: list[Callable[[], None]]) -> None:
    for stop in reversed(stops):
        try:
            stop()
        except Exception:  # stopping the rest matters more than one component's complaint
            log.exception("dev_component_stop_failed")


def _secret_key(data: Path) -> str:
    """A session key kept in the data folder, so a restart keeps people logged in."""
    path = data / "secret-key"
    if not path.is_file():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
