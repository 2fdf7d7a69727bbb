"""SSRF guard: feeds and webhooks never reach loopback, private, link-local or other
non-public addresses, however the address is spelled, unless allow_private_networks is on."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import FeedServer, Served, WebhookReceiver
from worker import aio
from worker.deliver.webhook import make_client, send_webhook
from worker.errors import DeliveryError, FetchError
from worker.fetch import FetchResult, Limits, Validators, fetch
from worker.netguard import address_problem

BODY = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


def guarded_get(url: str, *, allow_private: bool = False) -> FetchResult:
    return fetch(url, Validators(), Limits(timeout=2.0, allow_private=allow_private))


@pytest.fixture
def guarded() -> Iterator[httpx.Client]:
    with make_client(user_agent="t", timeout=2.0) as client:
        yield client


@pytest.mark.parametrize(("address", "rule"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"),
    ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"),
    ("::ffff:127.0.0.1", "loopback (inside IPv6"), ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "loopback (inside IPv6"), ("100.64.0.1", "not a public address"),
])
def test_non_public_addresses_are_named(address: str, rule: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and problem.startswith(rule)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::248", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("host", "reason"), [
    ("127.0.0.1", "is loopback"),           # plain
    # yarl refuses the URL itself for non-canonical dotted forms
    ("2130706433", "not a canonical IPv4"),   # decimal 127.0.0.1
    ("0177.0.0.1", "not a canonical IPv4"),   # octal
    ("0x7f.0.0.1", "is loopback"),          # hex
    ("127.1", "not a canonical IPv4"),        # short form
    ("localhost", "is loopback"),           # a name resolving to loopback
    ("[::1]", "is loopback"),               # IPv6 loopback
    ("[::ffff:127.0.0.1]", "is loopback"),  # IPv4-mapped IPv6
])
def test_feed_urls_to_loopback_are_refused(feed_server: FeedServer, host: str,
                                           reason: str) -> None:
    if host.startswith("[::") and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    feed_server.files["/f.xml"] = Served(BODY)
    port = feed_server.httpd.server_address[1]
    url = f"http://{host}:{port}/f.xml"
    with pytest.raises(FetchError) as info:
        guarded_get(url)
    assert str(info.value).startswith(url + ": ")
    assert reason in info.value.reason
    assert feed_server.requests == []          # nothing reached the server


@pytest.mark.parametrize("target_host", ["127.0.0.1", "localhost"])
def test_redirect_to_a_private_address_is_refused(feed_server: FeedServer,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  target_host: str) -> None:
    # No public server can be reached here: the redirector stands on 127.0.0.2, which this
    # test alone lets through the guard. Its redirect to loopback (spelled as an address or
    # as a name) must be refused before any connection is made.
    real = aio.address_problem
    monkeypatch.setattr(aio, "address_problem",
                        lambda ip: None if str(ip) == "127.0.0.2" else real(ip))
    redirector = FeedServer(host="127.0.0.2")
    try:
        target = feed_server.url("/f.xml").replace("127.0.0.1", target_host)
        feed_server.files["/f.xml"] = Served(BODY)
        redirector.files["/feed"] = Served(b"", status=302, location=target)
        with pytest.raises(FetchError) as info:
            guarded_get(redirector.url("/feed"))
        assert redirector.requests and "127.0.0.1 is loopback" in info.value.reason
        assert feed_server.requests == []
    finally:
        redirector.close()


def test_webhooks_to_private_addresses_are_refused(receiver: WebhookReceiver,
                                                   guarded: httpx.Client) -> None:
    body = {"id": "a1", "type": "alert"}
    with pytest.raises(DeliveryError) as info:
        send_webhook(guarded, receiver.url, receiver.secret, body)
    assert info.value.target == receiver.url and "is loopback" in info.value.reason
    assert not info.value.retryable            # the guard's verdict will not change
    assert receiver.received == [] and receiver.refused == 0


def test_allow_private_networks_opt_in(feed_server: FeedServer) -> None:
    feed_server.files["/f.xml"] = Served(BODY)
    assert guarded_get(feed_server.url("/f.xml"), allow_private=True).body == BODY
