"""Browser tier: a running `kcc dev` and Debian's headless Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conftest import unavailable

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = REPO_ROOT / "var" / "artefacts" / "browser"
# Installed by `make axe-core` (npm package, pinned by checksum).
AXE_SCRIPT = REPO_ROOT / "var" / "axe-core" / "axe.min.js"
# WCAG 2.0/2.1/2.2 A and AA (2.2 AA brings target-size) plus axe's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
# Debian's chromium, never a downloaded one; quiet (no update checks, sync or QUIC probes).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KCC = [sys.executable, "-c", "from kcc_cli.main import main; main()"]
# What `kcc dev` prints per demo user: role, user and token, then the login link below.
LOGIN_LINK = re.compile(
    r"^\s+(?:agent|staff|ops)\s+(\S+)\s+kcc_\S+\n\s+(http://\S+/dev/login/\S+)$", re.M
)


def pytest_configure(config: pytest.Config) -> None:
    # Until the root pyproject lists it: --strict-markers needs every marker registered.
    config.addinivalue_line(
        "markers", "browser: drives the running system in headless Chromium (Playwright)"
    )


def _unavailable(message: str) -> None:
    unavailable(message)


# What `kcc dev` prints per demo user: role, user and its API token.
TOKEN = re.compile(r"^\s+(?:agent|staff|ops)\s+(\S+)\s+(kcc_\S+)$", re.M)


@dataclass
class DevServer:
    base: str
    log: Path
    process: subprocess.Popen[str]
    login_links: dict[str, str] = field(default_factory=dict)

    @property
    def tokens(self) -> dict[str, str]:
        """The API token `kcc dev` printed for each demo user."""
        return dict(TOKEN.findall(self.log.read_text()))


def api(server: DevServer, token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The services' JSON API as a program (a desktop client) calls it: POST with a body,
    else GET."""
    request = urllib.request.Request(
        server.base + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


_TOLD_LINES = 40


@contextmanager
def evidence(
    screenshots: Screenshots, pages: Mapping[str, Page], server: DevServer
) -> Iterator[None]:
    """On a failure: a picture of every open page, and the server's log in the report."""
    try:
        yield
    except Exception as exc:
        for name, page in pages.items():
            if not page.is_closed():
                screenshots.take(page, f"fout-{name}")
        # pytest shows a failed test's captured output: the server's side of the story.
        log = server.log.read_text()
        print(log[-20_000:])
        # CI reports keep the head and the tail of a long output: the services' own lines
        # (not the migrations' chatter) go at the end of the failure message, where they stay.
        told = [line for line in log.splitlines() if "alembic" not in line][-_TOLD_LINES:]
        raise AssertionError(f"{exc}\n-- kcc dev, last lines:\n" + "\n".join(told)) from exc


def tab_to(page: Page, matches: Callable[[dict[str, str]], bool], limit: int = 120) -> None:
    """Press Tab until the focused element matches (a person with only a keyboard)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused: dict[str, str] = page.evaluate(
            "() => { const e = document.activeElement;"
            " return {tag: e.tagName, id: e.id || '', text: (e.textContent || '').trim(),"
            " label: e.getAttribute('aria-label') || ''}; }"
        )
        if matches(focused):
            return
    raise AssertionError(f"no element reached with Tab in {limit} presses")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_dev(
    tmp_path: Path, wait_for: Callable[..., None], *options: str
) -> Iterator[DevServer]:
    """`kcc dev` (with ``options``) on a free port with a fresh data folder, up and with its
    login links read from what it printed at start; stopped with Ctrl-C afterwards."""
    port = _free_port()
    data = tmp_path / "dev"
    log = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KCC_")}
    with log.open("w") as output:
        process = subprocess.Popen(
            [*KCC, "dev", "--port", str(port), "--data", str(data), *options],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = DevServer(f"http://127.0.0.1:{port}", log, process)

    def up() -> bool:
        assert process.poll() is None, f"kcc dev exited:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(f"{server.base}/healthz", timeout=2) as response:
                ready = response.status == 200
        except OSError:
            return False
        server.login_links = dict(LOGIN_LINK.findall(log.read_text()))
        return ready and len(server.login_links) == 7

    try:
        wait_for(up, timeout=90)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def dev_server(tmp_path: Path, wait_for: Callable[..., None]) -> Iterator[DevServer]:
    """A running `kcc dev` (see running_dev)."""
    with running_dev(tmp_path, wait_for) as server:
        yield server


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium and the playwright package, or a clear skip (a failure in CI).
    Ask for it before `dev_server`: no server is started for a test that cannot run."""
    if not CHROMIUM.is_file():
        _unavailable(f"Chromium is not installed at {CHROMIUM} (Debian package chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _unavailable(f"the playwright package is not installed ({exc})")
    return CHROMIUM


@pytest.fixture
def browser(chromium: Path, tmp_path: Path) -> Iterator[BrowserContext]:
    """Headless Debian Chromium with a fresh profile (user-data-dir) for this test alone."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            locale="nl-NL",
            timezone_id="Europe/Amsterdam",
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()


class Screenshots:
    """Numbered full-page screenshots of each step, kept as test artefacts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def take(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


class Axe:
    """axe-core on a page state: no critical or serious violation, or the test fails naming
    each rule, its help text and the elements. Every finding (moderate and minor too) is kept
    in var/artefacts/browser/axe-<name>.json."""

    def __init__(self, script: str, folder: Path) -> None:
        self.script = script
        self.folder = folder
        self.checked: list[str] = []

    def check(self, page: Page, name: str) -> list[dict[str, Any]]:
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            # Evaluated, not added as a <script>: the pages' Content-Security-Policy rightly
            # refuses inline scripts, and the browser tests keep that policy on.
            page.evaluate(self.script)
        result = page.evaluate(
            "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
        )
        violations: list[dict[str, Any]] = result["violations"]
        (self.folder / f"axe-{name}.json").write_text(json.dumps(violations, indent=2))
        self.checked.append(name)
        blocking = [v for v in violations if v.get("impact") in ("critical", "serious")]
        assert not blocking, f"axe-core on {name!r} ({page.url}):\n" + "\n".join(
            f"- {v['impact']} {v['id']}: {v['help']} "
            f"({', '.join(str(n['target']) for n in v['nodes'][:5])})"
            for v in blocking
        )
        return violations


@pytest.fixture
def axe() -> Axe:
    """The accessibility check for every page state a journey shows (see Axe)."""
    if not AXE_SCRIPT.is_file():
        _unavailable(f"axe-core is not installed at {AXE_SCRIPT} (run `make axe-core`)")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return Axe(AXE_SCRIPT.read_text(), ARTEFACTS)


def log_in(page: Page, server: DevServer, user: str) -> None:
    """Log ``page`` in as a demo user with the login link `kcc dev` printed for them."""
    page.goto(server.login_links[user])


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> Screenshots:
    """A folder of pictures per test (var/artefacts/browser/<test>/)."""
    folder = ARTEFACTS / request.node.name.split("[")[0]
    folder.mkdir(parents=True, exist_ok=True)
    # Only this run's pictures: a stale one from an earlier run would mislead.
    for old in folder.glob("*.png"):
        old.unlink()
    return Screenshots(folder)
