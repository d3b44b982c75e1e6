"""amqps:// verifies the broker's host name, not only its certificate chain: against a real TLS
server, a certificate for another name is refused with the options every KCC connection gets,
where kombu's own amqps:// default (no server name) would have accepted it."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from amqp.transport import SSLTransport
from kcc_shared.publisher import broker_connection, broker_ssl_options, connection_factory

from conftest import require_tool

URL = "amqps://kcc:secret@broker.example:5671/kcc"


def test_amqps_options_verify_the_certificate_and_the_host_name() -> None:
    options = broker_ssl_options(URL)

    assert options == {"server_hostname": "broker.example", "cert_reqs": ssl.CERT_REQUIRED}


@pytest.mark.parametrize("url", ["amqp://guest:guest@127.0.0.1:5672//", "memory://"])
def test_plain_urls_get_no_tls_options(url: str) -> None:
    assert broker_ssl_options(url) is None
    assert broker_connection(url).ssl is False


def test_every_connection_factory_passes_them_to_kombu() -> None:
    expected = broker_ssl_options(URL)
    assert broker_connection(URL, connect_timeout=1).ssl == expected
    assert connection_factory(URL, timeout=1)().ssl == expected


def test_an_amqps_url_without_a_host_is_refused() -> None:
    with pytest.raises(ValueError, match="host name"):
        broker_ssl_options("amqps:///kcc")


# -- against a real TLS server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for broker.example only (and its key)."""
    openssl = require_tool("openssl", "Debian package openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "broker.pem", folder / "broker.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=broker.example", "-addext", "subjectAltName=DNS:broker.example",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[int]:
    """Accepts TLS handshakes on 127.0.0.1 with the broker.example certificate."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            with raw:
                raw.settimeout(5)
                try:
                    with context.wrap_socket(raw, server_side=True) as tls:
                        tls.recv(8)  # the client's AMQP protocol header, then goodbye
                except (ssl.SSLError, OSError):
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def _handshake(port: int, options: dict[str, Any]) -> None:
    transport = SSLTransport(f"127.0.0.1:{port}", connect_timeout=5, ssl=options)
    try:
        transport.connect()
    finally:
        transport.close()


def test_a_certificate_for_another_name_is_refused(
    tls_server: int, certificate: tuple[Path, Path]
) -> None:
    cert, _ = certificate
    # The broker URL names 127.0.0.1; the server shows a (trusted) certificate for another name.
    options = broker_ssl_options(f"amqps://kcc:secret@127.0.0.1:{tls_server}/kcc")
    assert options is not None

    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(tls_server, {**options, "ca_certs": str(cert)})


def test_the_right_name_is_accepted(tls_server: int, certificate: tuple[Path, Path]) -> None:
    cert, _ = certificate
    options = broker_ssl_options(URL)
    assert options is not None

    _handshake(tls_server, {**options, "ca_certs": str(cert)})


def test_without_a_server_name_any_trusted_certificate_passes(
    tls_server: int, certificate: tuple[Path, Path]
) -> None:
    """Why the options exist: kombu's amqps:// (ssl=True, no server name) checks the chain
    only, so the wrong name above would have been accepted."""
    cert, _ = certificate
    _handshake(tls_server, {"ca_certs": str(cert)})
