"""SSRF guard: feeds and webhooks never reach loopback, private, link-local or other
non-public addresses, however the address is spelled, unless allow_private_networks is on."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import FeedServer, Served, WebhookReceiver
from worker.deliver.webhook import send_webhook
from worker.errors import DeliveryError, FetchError
from worker.fetch import Validators, fetch, make_client
from worker.netguard import address_problem

BODY = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


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
    ("2130706433", "is loopback"),          # decimal 127.0.0.1
    ("0177.0.0.1", "invalid URL"),          # octal: httpx refuses the URL itself
    ("0x7f.0.0.1", "is loopback"),          # hex
    ("127.1", "is loopback"),               # short form
    ("localhost", "is loopback"),           # a name resolving to loopback
    ("[::1]", "is loopback"),               # IPv6 loopback
    ("[::ffff:127.0.0.1]", "is loopback"),  # IPv4-mapped IPv6
])
def test_feed_urls_to_loopback_are_refused(feed_server: FeedServer, guarded: httpx.Client,
                                           host: str, reason: str) -> None:
    if host.startswith("[::") and not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    feed_server.files["/f.xml"] = Served(BODY)
    port = feed_server.httpd.server_address[1]
    url = f"http://{host}:{port}/f.xml"
    with pytest.raises(FetchError) as info:
        fetch(guarded, url, Validators(), max_bytes=10_000)
    assert str(info.value).startswith(url + ": ")
    assert reason in info.value.reason
    assert feed_server.requests == []          # nothing reached the server


def test_redirect_to_a_private_address_is_refused(feed_server: FeedServer,
                                                  guarded: httpx.Client) -> None:
    # A public-looking first hop cannot be served here (no internet), so check the redirect
    # hop with the guard alone: a client allowed to reach the redirector, then guarded.
    transport = make_client(user_agent="t", timeout=2.0)._transport
    feed_server.files["/f.xml"] = Served(BODY)
    target = feed_server.url("/f.xml")
    handler_calls = []

    def redirector(request: httpx.Request) -> httpx.Response:
        if request.url.host == "public.example":
            handler_calls.append(request.url)
            return httpx.Response(302, headers={"Location": target})
        return transport.handle_request(request)

    with httpx.Client(transport=httpx.MockTransport(redirector), follow_redirects=True) as c, \
            pytest.raises(FetchError) as info:
        fetch(c, "http://public.example/feed", Validators(), max_bytes=10_000)
    assert handler_calls and "127.0.0.1 is loopback" in info.value.reason
    assert feed_server.requests == []


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
    with make_client(user_agent="t", timeout=2.0, allow_private=True) as client:
        assert fetch(client, feed_server.url("/f.xml"), Validators(), max_bytes=10_000).body \
            == BODY
