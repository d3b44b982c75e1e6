"""`kcc dev`: every service that exists in one process, on one port, with demo users."""

from __future__ import annotations

import hmac
import html
import json
import logging
import os
import re
import secrets
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final

import click
from backoffice.app import create_app as create_backoffice
from backoffice.commands import prune_targets as backoffice_prune_targets
from backoffice.worker import InboxWorker
from click.core import ParameterSource
from intake.app import create_app as create_intake
from intake.commands import prune_targets as intake_prune_targets
from intake.worker import ViewConsumer
from kcc_shared.auth import open_token_store
from kcc_shared.config import Config
from kcc_shared.db import make_engine
from kcc_shared.headers import SECURITY_HEADERS
from kcc_shared.logging import configure_logging
from kcc_shared.organisation import OrganisationError, load_organisation
from kcc_shared.retention import PruneTimer
from router.errors import ModelError
from router.model import configured_model
from router.worker import RouterWorker
from sla_monitor.app import create_app as create_sla
from sla_monitor.app import store_of
from sla_monitor.commands import prune_targets as sla_prune_targets
from sla_monitor.worker import SlaMonitor
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server
from werkzeug.test import Client
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from kcc_cli.demo_traffic import DEFAULT_PACE, DemoTraffic, publish_backlog
from kcc_cli.migrate import migrate_dev

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
# The agents whose questions --demo-traffic files and follows up; agent-anna is left to you.
TRAFFIC_AGENTS: Final = ("agent-bram", "agent-chris")

LOGIN_PREFIX: Final = "/dev/login/"
# Every mounted app with a login page, and where a person lands after logging in there.
LOGIN_PAGES: Final = (
    ("", "/balie"),
    ("/backoffice", "/backoffice/inbox"),
    ("/sla-monitor", "/sla-monitor/sla"),
)
# Where a role lands when its pages are in more than one app: the team lead on the overview.
ROLE_LANDING: Final = {"ops": "/sla-monitor/sla"}
_CSRF_INPUT: Final = re.compile(r'name="csrf_token" value="([^"]+)"')

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def demo_tokens(config: Config, data: Path) -> dict[str, str]:
    """Create the demo users once; keep their tokens in the data folder so a restart shows
    the same ones (a demo convenience: real tokens are only ever printed once)."""
    path = data / "demo-tokens.json"
    if path.is_file():
        saved: dict[str, str] = json.loads(path.read_text())
        return saved
    store = open_token_store(make_engine(config.auth_url))
    tokens = {}
    for user, role, team, departments in DEMO_USERS:
        token, _ = store.create(
            role=role, user_id=user, team=team, departments=departments, label="kcc dev demo"
        )
        tokens[user] = token
    path.write_text(json.dumps(tokens, indent=2))
    path.chmod(0o600)
    return tokens


class LoginLinks:
    """One link per demo user that logs them in on every page their role may use.

    Why this shape: the link carries a random secret made at start and known only to this
    process (printed in the terminal beside the token), never the API token itself, so no
    token ends up in browser history. A link works until the process stops, and only here:
    the services' own apps have no such route, so production never serves one. The login
    itself goes through each service's real login form (CSRF, role check, a fresh session),
    so nothing about sessions is copied or loosened for the demo.
    """

    def __init__(self, users: Iterable[str]) -> None:
        self._secrets = {user: secrets.token_urlsafe(24) for user in users}

    def path(self, user: str) -> str:
        return LOGIN_PREFIX + self._secrets[user]

    def user_for(self, secret: str) -> str | None:
        found = None
        for user, expected in self._secrets.items():
            # Compare with every secret in constant time: timing says nothing about a guess.
            if hmac.compare_digest(secret.encode(), expected.encode()):
                found = user
        return found


def log_in(site: WsgiApp, token: str) -> tuple[list[str], str | None]:
    """Log in with `token` on every page app that accepts its role, through each app's own
    login form; return the session cookies to hand to the browser and where to go first."""
    client = Client(site)
    cookies: list[str] = []
    home: str | None = None
    for prefix, landing in LOGIN_PAGES:
        form = client.get(f"{prefix}/login")
        csrf = _CSRF_INPUT.search(form.get_data(as_text=True))
        if form.status_code != 200 or csrf is None:
            continue  # this app serves no pages (e.g. intake without a secret key)
        done = client.post(f"{prefix}/login", data={"token": token, "csrf_token": csrf[1]})
        # 302 is a login; 401/403 mean an unknown token or a role these pages are not for.
        if done.status_code in (302, 303):
            cookies += done.headers.getlist("Set-Cookie")
            home = home or landing
    return cookies, home


def start_page(
    tokens: Mapping[str, str], base: str, links: LoginLinks, *, traffic: bool = False
) -> bytes:
    anna = tokens["agent-anna"]
    rows = "\n".join(
        f"<tr><td>{html.escape(user)}</td><td>{html.escape(role)}</td>"
        f"<td>{html.escape(team or '')}</td>"
        f'<td><a href="{html.escape(links.path(user))}">inloggen als {html.escape(user)}</a></td>'
        f"<td><code>{html.escape(tokens[user])}</code></td></tr>"
        for user, role, team, _ in DEMO_USERS
    )
    curl = (
        f"curl -s -X POST {base}/api/v1/requests -H 'Authorization: Bearer {anna}' \\\n"
        f"  -H 'Content-Type: application/json' -H 'Idempotency-Key: demo-1' \\\n"
        '  -d \'{"question": "Paspoort verlopen, vertrekt over 10 dagen. Spoedaanvraag?"}\''
    )
    demo = (
        "<p><strong>Demoverkeer staat aan:</strong> agent-bram en agent-chris stellen steeds "
        "nieuwe vragen, de medewerkers pakken ze op, beantwoorden ze (soms na een wedervraag) "
        "en de agenten beoordelen de antwoorden. Vragen van agent-anna blijven voor jou.</p>"
        if traffic
        else ""
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
{demo}
<h2>Pagina's</h2>
<ul>
<li><a href="/balie">Balie van de KCC-medewerker</a> — vraag uitzetten, volgen, beoordelen
(log in als agent)</li>
<li><a href="/backoffice/inbox">Werkvoorraad van de afdeling</a> — oppakken, beantwoorden,
doorsturen (log in als medewerker)</li>
<li><a href="/sla-monitor/sla">SLA-overzicht</a> — normen, overschrijdingen, doorlooptijden
(log in als medewerker of beheerder)</li>
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
<p>Een inloglink logt je meteen in op de pagina's voor die rol; hij werkt zolang deze
<code>kcc dev</code> draait. Met het token log je in via het inlogformulier of de API.</p>
<table><tr><th>gebruiker</th><th>rol</th><th>team</th><th>inloggen</th><th>token</th></tr>
{rows}</table>
<h2>Een vraag uitzetten</h2>
<pre>{html.escape(curl)}</pre>
<p>Volg de vraag daarna op <code>GET /api/v1/requests/&lt;id&gt;</code>; de routering staat in
het log (<code>request_routed</code>) en in <code>kcc_requests_routed_total</code> op
<a href="/metrics">/metrics</a>.</p>
</body></html>"""
    return page.encode()


_LINK_UNKNOWN = """<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>Inloglink onbekend - KCC</title></head>
<body><h1>Deze inloglink werkt niet (meer)</h1>
<p>Inloglinks gelden zolang de <code>kcc dev</code> draait die ze maakte. Na een herstart staan
nieuwe links in de terminal en op de <a href="/">startpagina</a>.</p></body></html>"""

_LINK_REFUSED = """<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>Inloggen mislukt - KCC</title></head>
<body><h1>Inloggen is niet gelukt</h1>
<p>Het token van deze demogebruiker wordt nergens geaccepteerd; misschien is het ingetrokken
(<code>kcc token list</code>). Zie de <a href="/">startpagina</a>.</p></body></html>"""


_NOT_LOCAL = """<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><title>Alleen lokaal - KCC</title></head>
<body><h1>Alleen op deze computer</h1>
<p>De startpagina en de inloglinks van <code>kcc dev</code> geven demotokens weg en zijn
daarom alleen bereikbaar als <a href="http://127.0.0.1/">127.0.0.1</a>, localhost of [::1].</p>
</body></html>"""

# The host names the start page answers for (any port): a page handing out every demo token
# must not be readable by a web page that rebinds its own DNS name to 127.0.0.1.
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "[::1]"})
_HOST_HEADER: Final = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(\d{1,5}))?$")


def is_loopback_host(host_header: str | None) -> bool:
    """Whether a Host header names this machine's loopback (127.0.0.1, localhost, [::1],
    with any port); anything else, a DNS-rebinding name included, is not."""
    match = _HOST_HEADER.fullmatch((host_header or "").strip())
    return match is not None and match.group(1).lower() in LOOPBACK_HOSTS


def dev_site(app: WsgiApp, page: bytes, links: LoginLinks, tokens: Mapping[str, str]) -> WsgiApp:
    """`app` plus what only `kcc dev` serves: the start page and the login links (both only
    for a loopback Host header)."""

    def html_response(body: str | bytes, status: int) -> Response:
        response = Response(body, status, content_type="text/html; charset=utf-8")
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"  # keeps the secret out of Referer
        return response

    def login(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response("Method Not Allowed", 405, {"Allow": "GET, HEAD"})
        user = links.user_for(request.path.removeprefix(LOGIN_PREFIX))
        if user is None:
            return html_response(_LINK_UNKNOWN, 404)
        cookies, home = log_in(app, tokens[user])
        if home is None:
            log.warning("dev_login_link_refused", extra={"user_id": user})
            return html_response(_LINK_REFUSED, 403)
        role = {u: r for u, r, _, _ in DEMO_USERS}.get(user, "")
        response = redirect(ROLE_LANDING.get(role, home), 303)
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if (path == "/" or path.startswith(LOGIN_PREFIX)) and not is_loopback_host(
            environ.get("HTTP_HOST")
        ):
            response = html_response(_NOT_LOCAL, 403)
        elif path == "/":
            response = html_response(page, 200)
        elif path.startswith(LOGIN_PREFIX):
            response = login(Request(environ))
        else:
            return app(environ, start_response)
        return response(environ, start_response)

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
@click.option(
    "--demo-traffic",
    is_flag=True,
    help="Keep demo agents filing questions and demo staff answering them, through the API.",
)
@click.option(
    "--demo-pace",
    type=click.FloatRange(min=0.05),
    default=DEFAULT_PACE,
    show_default=True,
    help="Seconds between two rounds of demo traffic (each round: a few actions at most).",
)
@click.pass_context
def dev(
    ctx: click.Context,
    host: str,
    port: int,
    data: Path,
    demo_traffic: bool,
    demo_pace: float,
) -> None:
    """Run the system in one process: memory:// broker, SQLite, demo organisation and users."""
    config: Config = ctx.obj
    if not demo_traffic and ctx.get_parameter_source("demo_pace") is ParameterSource.COMMANDLINE:
        raise click.UsageError("--demo-pace sets the pace of --demo-traffic; add --demo-traffic")
    data = data.resolve()
    private_folder(data)
    # Its own stores: a folder from an earlier release (or before migrations) just works.
    migrate_dev(data)
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
    try:
        model, model_file = configured_model(
            config.routing_model, config.organisation_file, organisation.departments
        )
    except ModelError as exc:
        raise click.ClickException(f"the routing model cannot be used: {exc}") from exc
    router = RouterWorker(shared, organisation, model=model, model_file=model_file)
    router.start()
    stops.append(router.stop)

    intake = create_intake(store("intake"))
    intake_context = intake.extensions["kcc.intake"]
    stops += [intake_context.relay.stop, intake_context.feed.stop]
    view = ViewConsumer(shared, intake_context.store)
    view.start()
    stops.append(view.stop)

    backoffice = create_backoffice(store("backoffice"))
    backoffice_context = backoffice.extensions["kcc.backoffice"]
    stops.append(backoffice_context.relay.stop)
    inbox = InboxWorker(shared, backoffice_context.store)
    inbox.start()
    stops.append(inbox.stop)

    sla_config = store("sla-monitor")
    sla = create_sla(sla_config, organisation=organisation)
    monitor = SlaMonitor(sla_config, store_of(sla))
    monitor.start()
    stops.append(monitor.stop)

    # Retention, as the CronJobs do in Kubernetes: at start, then every 6 hours. Started once
    # the demo users are printed: a log line in the middle of that list broke its login links.
    prune_timers = [
        PruneTimer(name, engine, targets, days=config.retention_days)
        for name, engine, targets in (
            ("intake", intake_context.store.engine, intake_prune_targets()),
            ("backoffice", backoffice_context.store.engine, backoffice_prune_targets()),
            ("sla", store_of(sla).engine, sla_prune_targets()),
        )
    ]
    stops.extend(timer.stop for timer in prune_timers)

    # Links people can open (and the traffic can call) even when listening on all interfaces.
    base = f"http://{_url_host(_loopback(host))}:{port}"
    links = LoginLinks(tokens)
    services = DispatcherMiddleware(intake, {"/backoffice": backoffice, "/sla-monitor": sla})
    page = start_page(tokens, base, links, traffic=demo_traffic)
    site = dev_site(services, page, links, tokens)
    try:
        server = make_server(host, port, site, threaded=True)
    except (OSError, SystemExit) as exc:
        # Note: werkzeug prints its own advice and calls sys.exit when the port is taken.
        _stop_all(stops)
        raise click.ClickException(f"cannot listen on {host}:{port}") from exc

    traffic: DemoTraffic | None = None
    if demo_traffic:
        traffic = DemoTraffic(
            base,
            tokens,
            agents=TRAFFIC_AGENTS,
            staff={user: deps for user, role, _, deps in DEMO_USERS if role == "staff"},
            pace=demo_pace,
        )

    stopping = threading.Event()

    def stop_serving() -> None:
        # The traffic first, while the server still answers its last call.
        if traffic is not None:
            traffic.stop()
        server.shutdown()

    def shutdown(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=stop_serving, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    click.echo(f"KCC dev: {base}/  (data in {data}; Ctrl-C stops)")
    click.echo("Demo users: token, then a login link that works while this process runs")
    for user, role, _, _ in DEMO_USERS:
        click.echo(f"  {role:<5} {user:<12} {tokens[user]}")
        click.echo(f"  {'':<18} {base}{links.path(user)}")
    if traffic is not None:
        click.echo(
            f"Demo traffic: every {demo_pace:g}s {' and '.join(TRAFFIC_AGENTS)} file questions "
            "and staff answer them (agent-anna's questions are left to you)"
        )
        # A few questions already at risk or late, so the SLA overview shows what it is for.
        publish_backlog(shared.broker_url, organisation, datetime.now(UTC))
        traffic.start()
    for timer in prune_timers:
        timer.start()
    try:
        server.serve_forever()
    finally:
        click.echo("stopping…")
        if traffic is not None:
            traffic.stop()
        server.server_close()
        _stop_all(stops)


def _stop_all(stops: list[Callable[[], None]]) -> None:
    for stop in reversed(stops):
        try:
            stop()
        except Exception:  # stopping the rest matters more than one component's complaint
            log.exception("dev_component_stop_failed")


def _loopback(host: str) -> str:
    """The address to reach our own server on: the wildcard addresses are not destinations."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


STORES: Final = ("auth", "intake", "backoffice", "sla-monitor")


def private_folder(data: Path) -> None:
    """The data folder and its SQLite files for the owner only (0700, 0600): they hold the
    demo tokens' hashes and everything filed. SQLite gives a database's -wal and -shm files
    the database file's mode, so creating the files first is enough."""
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    data.chmod(0o700)
    for name in STORES:
        database = data / f"{name}.db"
        if not database.exists():
            os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))
        for path in (database, data / f"{name}.db-wal", data / f"{name}.db-shm"):
            if path.exists():
                path.chmod(0o600)


def _secret_key(data: Path) -> str:
    """A session key kept in the data folder, so a restart keeps people logged in."""
    path = data / "secret-key"
    if not path.is_file():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
