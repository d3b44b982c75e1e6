"""`kcc dev`: every service that exists in one process, on one port, with demo users."""

from __future__ import annotations

import html
import json
import logging
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

import click
from intake.app import create_app as create_intake
from kcc_shared.auth import TokenStore, tokens_table
from kcc_shared.config import Config
from kcc_shared.db import make_engine
from kcc_shared.logging import configure_logging
from kcc_shared.organisation import OrganisationError, load_organisation
from router.worker import RouterWorker
from sqlalchemy import MetaData
from werkzeug.serving import make_server

log = logging.getLogger(__name__)

# (user id, role, team, departments): enough people to try every side of the product.
DEMO_USERS: tuple[tuple[str, str, str | None, tuple[str, ...]], ...] = (
    ("agent-anna", "agent", "kcc-noord", ()),
    ("agent-bram", "agent", "kcc-noord", ()),
    ("agent-chris", "agent", "kcc-zuid", ()),
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
    metadata.create_all(engine)
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
<p>Vragen van het klantcontactcentrum naar de juiste vakafdeling, zichtbaar en op tijd.
Deze ontwikkelomgeving draait intake en router in één proces, met een interne broker.</p>
<h2>Links</h2>
<ul>
<li><a href="/api/openapi.json">API-beschrijving (OpenAPI)</a></li>
<li><a href="/metrics">Metrics (Prometheus)</a></li>
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
    data.mkdir(parents=True, exist_ok=True)
    config = config.with_(
        database_url=f"sqlite:///{data.resolve() / 'kcc.db'}",
        auth_database_url=None,
        broker_url="memory://localhost/",
        outbox_poll_interval=0.5,
    )
    configure_logging(config.log_level, "text")
    try:
        organisation = load_organisation(config.organisation_file)
    except OrganisationError as exc:
        raise click.ClickException(f"the organisation file is invalid:\n{exc}") from exc
    tokens = demo_tokens(config, data)
    intake = create_intake(config)
    base = f"http://{host}:{port}"
    try:
        server = make_server(
            host, port, with_start_page(intake, start_page(tokens, base)), threaded=True
        )
    except (OSError, SystemExit) as exc:
        # Note: werkzeug prints its own advice and calls sys.exit when the port is taken.
        intake.extensions["kcc.intake"].relay.stop()
        raise click.ClickException(f"cannot listen on {host}:{port}") from exc
    router = RouterWorker(
        config.broker_url,
        organisation,
        organisation_file=config.organisation_file,
        prefetch=config.prefetch,
        publish_timeout=config.publish_timeout,
    )
    router.start()

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
        router.stop()
        intake.extensions["kcc.intake"].relay.stop()
        server.server_close()
