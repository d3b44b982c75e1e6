"""No BSN anywhere, for real: intake, router, back office and SLA monitor as processes
(tests/stack.py) on the real RabbitMQ (a fresh vhost) and PostgreSQL.

Every text field of a whole lifecycle gets citizen service numbers in the formats that used to
slip through (after labels ending in a dot, in URL paths and dossier codes, in e-mail
addresses, with every separator, split by invisible characters and no-break spaces, as eight
digits without the leading zero): the question, the department's clarification question, the
agent's answer to it, the department's answer, the rating comment, a forward reason and a
cancel reason. Fields that must refuse a BSN (citizen_ref, tags, the Idempotency-Key, a field
name, a department name, the desk's form) get one too. Afterwards no planted number may be
found in any table of any service's database, in any process's log, in any message that went
over kcc.events or kcc.dead (a tap queue bound before anything started), on any /metrics page,
or in any HTTP response or live-stream message the test saw.

The detector is written here, independently of kcc_shared.privacy: it strips separators and
invisible characters (also JSON and percent escapes of them) from the raw bytes and slides a
window of 9 and of 8 digits over every digit run, looking for the planted numbers.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import requests
from pika.adapters.blocking_connection import BlockingChannel
from psycopg import sql

from conftest import POSTGRES_ADMIN_DSN, _unavailable, harness, wait_for

if TYPE_CHECKING:
    from tests.stack import Stack
else:
    Stack = harness().Stack

PROCESSES: tuple[str, ...] = harness().PROCESSES
SERVICES: tuple[str, ...] = harness().SERVICES
WEIGHTS = (9, 8, 7, 6, 5, 4, 3, 2, -1)
TAP_QUEUE = "test.bsn-tap"

# -- planted numbers --------------------------------------------------------------------------


def passes_check(digits: str) -> bool:
    return sum(int(d) * w for d, w in zip(digits, WEIGHTS, strict=True)) % 11 == 0


def random_bsn(rng: random.Random, *, leading_zero: bool = False) -> str:
    while True:
        digits = [0 if leading_zero else rng.randint(1, 9)] + [rng.randint(0, 9) for _ in range(7)]
        check = sum(d * w for d, w in zip(digits, WEIGHTS[:8], strict=True)) % 11
        if check < 10:
            bsn = "".join(map(str, digits)) + str(check)
            assert passes_check(bsn)
            return bsn


def random_failing(rng: random.Random, size: int) -> str:
    while True:
        digits = str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(size - 1))
        if not passes_check(digits.zfill(9)):
            return digits


def written_in_every_format(bsn: str, zero_bsn: str, failing9: str, failing8: str) -> str:
    """One text with the BSN in every format that used to get through."""
    a, b, c = bsn[:3], bsn[3:6], bsn[6:]
    return " ; ".join(
        [
            f"BSN.{bsn}",
            f"BSN nr.{bsn}",
            f"klant nr.{bsn}",
            f"https://gemeente.example.nl/personen/{bsn}/1",
            f"dossier-{bsn}",
            f"j.jansen{bsn}@example.nl",
            f"{a}  {b}  {c}",
            f"{a}\u2013{b}\u2013{c}",
            f"{a}/{b}/{c}",
            f"{a}_{b}_{c}",
            f"{a},{b},{c}",
            f"{bsn[:4]}\u200b{bsn[4:]}",
            f"{a}\u2060{b}\ufeff{c}",
            f"{a}\u00a0{b}\u00a0{c}",
            f"{a}\u202f{b}\u202f{c}",
            f"{zero_bsn[1:]}",  # eight digits: the leading zero dropped
            f"BSN {zero_bsn[1:5]} {zero_bsn[5:]}",
            f"sofinummer: {failing9}",  # labelled: redacted even though it fails the check
            f"BSN {failing8}",
        ]
    )


@dataclass
class Planted:
    """Every number put in; per field one BSN of its own, so a finding names its field."""

    rng: random.Random = field(default_factory=lambda: random.Random(uuid.uuid4().int))
    by_field: dict[str, str] = field(default_factory=dict)
    zero_bsn: str = ""
    failing9: str = ""
    failing8: str = ""

    def __post_init__(self) -> None:
        self.zero_bsn = random_bsn(self.rng, leading_zero=True)
        self.failing9 = random_failing(self.rng, 9)
        self.failing8 = random_failing(self.rng, 8)

    def text(self, field_name: str) -> str:
        bsn = self.by_field.setdefault(field_name, random_bsn(self.rng))
        return written_in_every_format(bsn, self.zero_bsn, self.failing9, self.failing8)

    def one(self, field_name: str, render: Callable[[str], str]) -> str:
        return render(self.by_field.setdefault(field_name, random_bsn(self.rng)))

    def targets(self) -> dict[str, str]:
        """Digit strings to look for, with what they are."""
        found = {bsn: name for name, bsn in self.by_field.items()}
        found[self.zero_bsn[1:]] = "the zero-led BSN as 8 digits"
        found[self.failing9] = "the labelled 9 digits failing the check"
        found[self.failing8] = "the labelled 8 digits failing the check"
        return found


# -- the detector ------------------------------------------------------------------------------

_JSON_ESCAPE = re.compile(r"\\+u([0-9a-fA-F]{4})")
_SEPARATORS = re.compile(
    r"[\s.,/_\-\u2010-\u2015\u2212\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064"
    r"\u2066-\u206f\ufeff]+"
)
_DIGIT_RUN = re.compile(r"[0-9]{8,}")


def digit_runs(raw: bytes | str) -> list[str]:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    text = _JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
    text = urllib.parse.unquote(text)  # %E2%80%8B in a URL is a zero-width space too
    return _DIGIT_RUN.findall(_SEPARATORS.sub("", text))


def scan(raw: bytes | str, targets: dict[str, str]) -> set[str]:
    """Every planted number that stands in the raw text, separators and escapes ignored."""
    found: set[str] = set()
    for run in digit_runs(raw):
        for size in (8, 9):
            for start in range(len(run) - size + 1):
                window = run[start : start + size]
                if window in targets:
                    found.add(window)
    return found


# -- what the test saw -------------------------------------------------------------------------


class Seen:
    """Every HTTP response and stream message, as raw bytes."""

    def __init__(self) -> None:
        self.responses: list[bytes] = []
        self.requests: list[bytes] = []  # what was sent: the control for the detector
        self.session = requests.Session()
        self.session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        sent = response.request.body
        self.requests.append(sent.encode() if isinstance(sent, str) else sent or b"")
        self.requests.append(str(response.request.headers).encode())
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.responses.append(
            f"{response.status_code} {response.url}\n{headers}\n\n".encode() + response.content
        )


class StreamTap:
    """The agent's live stream, every line kept."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.lines: list[str] = []
        self._response = requests.get(url, headers=headers, stream=True, timeout=(5, 300))
        assert self._response.status_code == 200, self._response.text
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._response.iter_lines(decode_unicode=True):
                self.lines.append(line)
        except (requests.RequestException, AttributeError, ValueError):
            return

    def close(self) -> None:
        self._response.close()


@pytest.fixture
def tap(amqp_channel: BlockingChannel) -> BlockingChannel:
    """A queue that gets a copy of every event and every parked message, bound before any
    process runs (declared as the services declare the exchanges)."""
    amqp_channel.exchange_declare("kcc.events", exchange_type="topic", durable=True)
    amqp_channel.exchange_declare("kcc.dead", exchange_type="fanout", durable=True)
    amqp_channel.queue_declare(TAP_QUEUE, durable=False, auto_delete=False)
    amqp_channel.queue_bind(TAP_QUEUE, "kcc.events", routing_key="#")
    amqp_channel.queue_bind(TAP_QUEUE, "kcc.dead", routing_key="")
    return amqp_channel


@pytest.fixture
def stack(tmp_path: Path, broker_url: str, tap: BlockingChannel) -> Iterator[Stack]:
    try:
        s = Stack(
            tmp_path,
            broker_url,
            POSTGRES_ADMIN_DSN,
            name="nobsn",
            env={
                "KCC_OUTBOX_POLL_INTERVAL": "0.2",
                "KCC_AUTH_CACHE_SECONDS": "0",
                "KCC_LOG_LEVEL": "DEBUG",
                "KCC_SESSION_COOKIE_SECURE": "false",
            },
        )
    except psycopg.OperationalError as exc:
        _unavailable("PostgreSQL", exc)
    with s:
        s.start_all()
        yield s


def tapped(channel: BlockingChannel) -> list[bytes]:
    messages: list[bytes] = []
    while True:
        method, properties, body = channel.basic_get(TAP_QUEUE, auto_ack=True)
        if method is None:
            return messages
        messages.append(repr(properties.headers).encode() + b"\n" + body)


def database_rows(stack: Stack) -> dict[str, bytes]:
    """Every row of every table of every service's database, as PostgreSQL writes it as text."""
    dumps: dict[str, bytes] = {}
    for service in SERVICES:
        with psycopg.connect(stack.database_dsn(service)) as connection:
            tables = connection.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            ).fetchall()
            for (table,) in tables:
                rows = connection.execute(
                    sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))
                ).fetchall()
                dumps[f"{service}.{table}"] = "\n".join(r[0] for r in rows).encode()
    return dumps


# -- the lifecycle -----------------------------------------------------------------------------


# Starting its processes may take minutes on a busy two-core machine (the readiness bounds).
@pytest.mark.timeout(480)
def test_no_bsn_anywhere_after_a_whole_lifecycle(stack: Stack, tap: BlockingChannel) -> None:
    planted = Planted()
    seen = Seen()
    http = seen.session
    intake, backoffice = stack.intake_url, stack.backoffice_url
    agent = {"Authorization": f"Bearer {stack.agent_token}"}
    staff = {"Authorization": f"Bearer {stack.staff_token}"}

    def post(url: str, headers: dict[str, str], body: Any, status: int = 200) -> Any:
        response = http.post(url, headers=headers, json=body, timeout=10)
        assert response.status_code == status, response.text
        return response.json()

    def get(url: str, headers: dict[str, str]) -> Any:
        response = http.get(url, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    stream = StreamTap(f"{intake}/api/v1/stream", agent)
    try:
        # What must be refused is refused, without the value in the answer.
        new = f"{intake}/api/v1/requests"
        question = "Burger vraagt of zijn verhuizing al in de BRP staat."
        for body in (
            {"question": question, "citizen_ref": planted.one("citizen_ref", str)},
            {"question": question, "citizen_ref": planted.one("citizen_ref dot", "BSN.{}".format)},
            {"question": question, "tags": [planted.one("tag", "dossier-{}".format)]},
            {"question": question, "tags": [planted.one("tag grouped", nbsp_grouped)]},
            {"question": question, planted.one("field name", "bsn {}".format): "x"},
        ):
            post(new, agent, body, status=400)
        key = planted.one("Idempotency-Key", "retry-{}".format)
        post(new, {**agent, "Idempotency-Key": key}, {"question": question}, status=400)

        # The desk: a refused form comes back without the BSN.
        desk_login(http, intake, stack.agent_token)
        page = http.get(f"{intake}/balie", timeout=10).text
        refused = http.post(
            f"{intake}/balie/vragen",
            data={
                "csrf_token": csrf_of(page),
                "question": planted.text("desk question"),
                "citizen_ref": planted.one("desk citizen_ref", "BSN {}".format),
            },
            timeout=10,
        )
        assert refused.status_code == 400

        # Request A: filed, routed, claimed, asked, clarified, answered, rated.
        filed = post(
            new,
            {**agent, "Idempotency-Key": str(uuid.uuid4())},
            {
                # A question as agents write one: the topic first, then the numbers.
                "question": "Meneer wil een nieuw paspoort aanvragen; zijn gegevens: "
                + planted.text("question"),
                "category": "documenten",
            },
            status=202,
        )
        rid = filed["id"]
        wait_in_inbox(get, backoffice, staff, rid)
        item = f"{backoffice}/api/v1/items/{rid}"
        post(f"{item}/claim", staff, None)
        post(f"{item}/clarification-request", staff, {"text": planted.text("staff question")})
        wait_for(
            lambda: get(f"{new}/{rid}", agent)["status"] == "awaiting_clarification",
            timeout=30,
            interval=0.2,
        )
        post(f"{new}/{rid}/clarification", agent, {"text": planted.text("clarification")})
        wait_for(lambda: get(item, staff)["state"] == "claimed", timeout=30, interval=0.2)
        post(f"{item}/answer", staff, {"text": planted.text("answer")})
        wait_for(
            lambda: get(f"{new}/{rid}", agent)["status"] == "answered", timeout=30, interval=0.2
        )
        post(
            f"{new}/{rid}/rating",
            agent,
            {"score": 4, "thanks": True, "comment": planted.text("rating comment")},
        )

        # Request B: forwarded with a reason, refused to an unknown department, cancelled.
        other = post(
            new,
            {**agent, "Idempotency-Key": str(uuid.uuid4())},
            {
                "question": "Mevrouw is haar ID-kaart kwijt; kenmerken: "
                + planted.text("second question"),
                "category": "documenten",
            },
            status=202,
        )["id"]
        wait_in_inbox(get, backoffice, staff, other)
        other_item = f"{backoffice}/api/v1/items/{other}"
        post(f"{other_item}/claim", staff, None)
        post(
            f"{other_item}/forward",
            staff,
            {"to_department": planted.one("department", str), "reason": "Niet van ons"},
            status=400,
        )
        post(
            f"{other_item}/forward",
            staff,
            {"to_department": "belastingen", "reason": planted.text("forward reason")},
        )
        wait_for(
            lambda: get(f"{new}/{other}", agent)["department"] == "belastingen",
            timeout=30,
            interval=0.2,
        )
        post(f"{new}/{other}/cancel", agent, {"reason": planted.text("cancel reason")})

        # Everything has arrived everywhere: closed, cancelled, the SLA monitor saw both.
        wait_for(lambda: get(item, staff)["state"] == "closed", timeout=30, interval=0.2)
        wait_for(lambda: get(other_item, staff)["state"] == "cancelled", timeout=30, interval=0.2)
        wait_for(
            lambda: (
                stack.metric("sla-monitor", "kcc_sla_events_ingested_total", type="request.rated")
                == 1
                and stack.metric(
                    "sla-monitor", "kcc_sla_events_ingested_total", type="request.cancelled"
                )
                == 1
            ),
            timeout=30,
            interval=0.2,
        )
        wait_for(lambda: all_sent(stack), timeout=30, interval=0.2)
        get(f"{new}/{rid}", agent)
        get(f"{new}/{other}", agent)
        get(f"{new}?scope=mine", agent)
        get(item, staff)
        get(f"{backoffice}/api/v1/departments/burgerzaken/inbox?state=closed", staff)
        time.sleep(1.0)  # the stream's poller and the last log lines
    finally:
        stream.close()
    stack.assert_alive()

    # The planted numbers went in: the redaction counters say so.
    assert stack.metric("intake-api", "kcc_bsn_redactions_total") > 0
    assert stack.metric("backoffice-api", "kcc_bsn_redactions_total") > 0

    sources: dict[str, bytes] = {
        **database_rows(stack),
        **{f"log {name}": stack.logs(name).encode() for name in PROCESSES},
        **{
            f"/metrics {name}": requests.get(stack.metrics_url(name), timeout=10).content
            for name in PROCESSES
        },
        "the wire (kcc.events, kcc.dead)": b"\n".join(tapped(tap)),
        "HTTP responses": b"\n".join(seen.responses),
        "the live stream": "\n".join(stream.lines).encode(),
    }
    assert sources["the wire (kcc.events, kcc.dead)"], "the tap queue saw no message"
    assert any("[BSN]" in line for line in stream.lines), "the stream showed no redacted text"

    targets = planted.targets()
    # The control: in what the test sent, the detector finds every planted number.
    missed = set(targets) - scan(b"\n".join(seen.requests), targets)
    assert not missed, [targets[d] for d in missed]
    leaks = {
        source: sorted(f"{targets[d]} ({d})" for d in found)
        for source, raw in sources.items()
        if (found := scan(raw, targets))
    }
    assert leaks == {}, json.dumps(leaks, indent=2)


def nbsp_grouped(bsn: str) -> str:
    return f"{bsn[:3]}\u00a0{bsn[3:6]}\u00a0{bsn[6:]}"


def wait_in_inbox(
    get: Callable[[str, dict[str, str]], Any], backoffice: str, staff: dict[str, str], rid: str
) -> None:
    inbox = f"{backoffice}/api/v1/departments/burgerzaken/inbox"
    wait_for(
        lambda: any(i["request_id"] == rid for i in get(inbox, staff)["items"]),
        timeout=30,
        interval=0.2,
    )


def all_sent(stack: Stack) -> bool:
    for service in ("intake", "backoffice", "sla-monitor"):
        with psycopg.connect(stack.database_dsn(service)) as connection:
            [(unsent,)] = connection.execute(
                "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
            ).fetchall()
        if unsent:
            return False
    return True


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def desk_login(http: requests.Session, intake: str, token: str) -> None:
    page = http.get(f"{intake}/login", timeout=10).text
    response = http.post(
        f"{intake}/login",
        data={"token": token, "csrf_token": csrf_of(page), "next": "/balie"},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 302, response.text


# -- the detector finds what it should -------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "x 123456782 x",
        "1234\u200b56782",
        "1234\\u200b56782",  # as JSON writes it
        "1234\\\\u200b56782",  # as PostgreSQL writes that JSON in a row
        "123%E2%80%8B456782",
        "123\u00a0456\u00a0782",
        "(a,123,456,782,b)",
        "991234567829",  # inside a longer run
    ],
)
def test_the_detector_finds_a_planted_number_however_written(raw: str) -> None:
    assert scan(raw, {"123456782": "planted"}) == {"123456782"}


def test_the_detector_ignores_what_is_not_planted() -> None:
    assert scan("[BSN] 1234 x 56782 111222333", {"123456782": "planted"}) == set()
