"""Email over STARTTLS and implicit TLS (smtps://) to aiosmtpd, certificates verified."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from tests.servers import _Collect, free_port
from worker.deliver.email import send_email
from worker.errors import DeliveryError


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))   # what create_default_context() trusts
    return authority


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


def message() -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = "alert", "nw@example.org", "desk@example.org"
    msg.set_content("body")
    return msg


@pytest.fixture
def starttls_server(ca: trustme.CA) -> Iterator[tuple[int, list[EmailMessage]]]:
    sink: list[EmailMessage] = []
    port = free_port()
    controller = Controller(_Collect(sink), hostname="127.0.0.1", port=port,
                            tls_context=server_context(ca), require_starttls=True)
    controller.start()
    yield port, sink
    controller.stop()


@pytest.fixture
def smtps_server(ca: trustme.CA) -> Iterator[tuple[int, list[EmailMessage]]]:
    sink: list[EmailMessage] = []
    port = free_port()
    controller = Controller(_Collect(sink), hostname="127.0.0.1", port=port,
                            ssl_context=server_context(ca), server_hostname="localhost")
    controller.start()
    yield port, sink
    controller.stop()


def test_starttls(starttls_server: tuple[int, list[EmailMessage]]) -> None:
    port, sink = starttls_server
    send_email(f"smtp://localhost:{port}?starttls=1", message())
    assert [m["Subject"] for m in sink] == ["alert"]


def test_starttls_required_but_not_asked(starttls_server: tuple[int, list[EmailMessage]]) -> None:
    port, sink = starttls_server
    with pytest.raises(DeliveryError) as info:
        send_email(f"smtp://localhost:{port}", message())
    assert f"smtp://localhost:{port}" in str(info.value) and sink == []
    assert not info.value.retryable            # 5xx: a config problem, not a passing fault


def test_implicit_tls(smtps_server: tuple[int, list[EmailMessage]]) -> None:
    port, sink = smtps_server
    send_email(f"smtps://localhost:{port}", message())
    assert [m["To"] for m in sink] == ["desk@example.org"]


def test_untrusted_certificate_is_refused(smtps_server: tuple[int, list[EmailMessage]],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent")
    port, sink = smtps_server
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        send_email(f"smtps://localhost:{port}", message())
    assert sink == []
