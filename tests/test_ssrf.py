"""SSRF guard: feeds, redirects, webhooks, chat targets and WebSub hubs never reach loopback,
private, link-local or other non-public addresses, however the address is spelled, unless
allow_private_networks is on. Every attempt is counted at a loopback trap: none may reach it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_runtime
from tests.servers import FeedServer, Served
from tests.ssrf_forms import (
    APPRISE_SCHEMES,
    LOOPBACK_FORMS,
    OTHER_FORMS,
    Trap,
    allow_only,
    raw_header,
    url,
    via_apprise,
    via_feed,
    via_webhook,
    via_websub,
    websub_config,
)
from worker import netguard
from worker.config import load_config
from worker.errors import ConfigError
from worker.netguard import address_problem, host_problem
from worker.runtime import Runtime


@pytest.fixture
def trap() -> Iterator[Trap]:
    server = Trap()
    yield server
    server.close()


@pytest.mark.parametrize(("address", "rule"), [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"),
    ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("240.0.0.1", "reserved"),
    ("::ffff:127.0.0.1", "loopback (inside IPv6"), ("::ffff:169.254.169.254", "link-local"),
    ("2002:7f00:1::", "loopback (inside IPv6"), ("100.64.0.1", "not a public address"),
    ("64:ff9b::7f00:1", "loopback (inside IPv6"), ("64:ff9b::a9fe:a9fe", "link-local"),
    ("fec0::1", "site-local"), ("fd12::1", "private"),
])
def test_non_public_addresses_are_named(address: str, rule: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and problem.startswith(rule)


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::248", "1.1.1.1",
                                     "64:ff9b::5db8:d822"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
def test_every_spelling_of_loopback_is_refused_on_every_path(trap: Trap, form: str,
                                                             tmp_path: Path,
                                                             redis_url: str) -> None:
    target = url(form, trap.port)
    outcomes = {"feed": via_feed(target), "webhook": via_webhook(target),
                "apprise json": via_apprise(target.replace("http://", "json://", 1))}
    rt = _websub_runtime(tmp_path, redis_url)
    outcomes["websub hub"] = via_websub(rt, target)
    assert all(o.refused for o in outcomes.values()), outcomes
    assert trap.connections == 0, outcomes


@pytest.mark.parametrize("form", LOOPBACK_FORMS)
def test_redirects_to_any_spelling_of_loopback_are_refused(trap: Trap, form: str,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    # No public server can be reached here: the redirector stands on 127.0.0.2, which this
    # test alone lets through the guard. Its redirect must never open a connection to the trap.
    monkeypatch.setattr(netguard, "address_problem", allow_only("127.0.0.2"))
    redirector = FeedServer(host="127.0.0.2")
    try:
        for path in ("/feed", "/hook"):
            redirector.files[path] = Served(b"", status=307,
                                            location=raw_header(url(form, trap.port)))
        outcomes = {"feed": via_feed(redirector.url("/feed")),
                    "webhook": via_webhook(redirector.url("/hook")),
                    "apprise json": via_apprise(redirector.url("/hook").replace(
                        "http://", "json://", 1))}
        assert all(o.refused for o in outcomes.values()), outcomes
        assert trap.connections == 0, outcomes
        assert redirector.requests                  # the feed's first hop was made
    finally:
        redirector.close()


@pytest.mark.parametrize("scheme", APPRISE_SCHEMES)
@pytest.mark.parametrize("form", ["127.0.0.1", "localhost", "2130706433", "127。0。0。1",
                                  "[::1]", "[::ffff:127.0.0.1]"])
def test_every_apprise_scheme_is_guarded(trap: Trap, scheme: str, form: str) -> None:
    bare = form.strip("[]")
    target = scheme.format(h=f"{form}:{trap.port}", bare=f"{bare}&port={trap.port}")
    outcome = via_apprise(target)
    assert outcome.refused and trap.connections == 0, outcome


def test_the_trap_counts_what_reaches_it(trap: Trap) -> None:
    """Control: with the guard off the same calls do reach it, so a 0 above means refused."""
    target = url("127.0.0.1", trap.port)
    via_feed(target, guard=False)
    via_webhook(target, guard=False)
    via_apprise(target.replace("http://", "json://", 1), guard=False)
    via_apprise(f"ntfy://127.0.0.1:{trap.port}/topic", guard=False)
    assert trap.connections >= 4


@pytest.mark.parametrize(("form", "rule"), OTHER_FORMS)
def test_other_private_targets_are_refused_before_any_connection(form: str, rule: str) -> None:
    target = url(form, 80)
    for outcome in (via_feed(target), via_webhook(target),
                    via_apprise(target.replace("http://", "json://", 1))):
        assert outcome.refused and rule in outcome.reason, outcome


@pytest.mark.parametrize(("host", "refused"), [
    ("127。0。0。1", True), ("１２７.０.０.１", True), ("0x7f.1", True), ("2130706433", True),
    ("[::ffff:7f00:1]", True), ("127.0.0.1.", True), ("LocalHost", True), ("x.localhost", True),
    ("metadata.google.internal", True), ("printer.local", True),
    ("news.example.org", False), ("93.184.216.34", False), ("2606:4700::1111", False),
    ("1.2.3.4.example.org", False),
])
def test_literal_hosts_are_read_as_clients_read_them(host: str, refused: bool) -> None:
    assert (host_problem(host) is not None) is refused


def test_check_refuses_what_every_poll_or_delivery_would_refuse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSWATCH_ALLOW_PRIVATE_NETWORKS", "false")
    config = tmp_path / "c.yaml"
    config.write_text("""\
feeds:
  - url: http://127。0。0。1:8080/feed.xml
  - url: https://news.example.org/rss
topics:
  t:
    name: T
    query: truce
subscribers:
  - id: hook
    webhook: http://2130706433/hook
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    topics: [t]
  - id: chat
    apprise: ntfy://localhost/alerts
    topics: [t]
""")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    problems = info.value.problems
    assert any(p.startswith(f"{config}:2: feeds[0]: refused 127。0。0。1: 127.0.0.1 is "
                            "loopback") and "never be polled" in p for p in problems), problems
    assert any(p.startswith(f"{config}:10: subscribers[0].webhook: refused 2130706433")
               for p in problems), problems
    assert any(p.startswith(f"{config}:14: subscribers[1].apprise: refused localhost")
               for p in problems), problems
    monkeypatch.setenv("NEWSWATCH_ALLOW_PRIVATE_NETWORKS", "true")
    assert len(load_config(config).feeds) == 2


def test_allow_private_networks_opt_in(feed_server: FeedServer) -> None:
    feed_server.files["/f.xml"] = Served(b"<rss version='2.0'><channel><title>t</title>"
                                         b"</channel></rss>")
    assert not via_feed(feed_server.url("/f.xml"), guard=False).refused


def _websub_runtime(folder: Path, redis_url: str) -> Runtime:
    config = load_config(websub_config(folder))
    rt = make_runtime(config, redis_url)
    rt.config = rt.config.__class__(
        rt.config.path, rt.config.feeds, rt.config.topics, rt.config.subscribers,
        rt.config.settings.model_copy(update={"allow_private_networks": False}))
    return rt


@pytest.mark.parametrize("form", ["localhost", "127.0.0.1", "[::1]", "2130706433",
                                  "127。0。0。1"])
def test_the_connect_time_check_alone_refuses_every_path(trap: Trap, form: str, tmp_path: Path,
                                                         redis_url: str,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    """The checks on URLs are for clear early errors; the authority is the check where each
    socket connects. With them off (as for a public name whose DNS answer is loopback: DNS
    rebinding), every path and every Apprise scheme is still refused."""
    monkeypatch.setattr(netguard, "url_problem", lambda url: None)
    monkeypatch.setattr(netguard, "host_problem", lambda host: None)
    target = url(form, trap.port)
    bare = form.strip("[]")
    outcomes = {"feed": via_feed(target), "webhook": via_webhook(target),
                "websub hub": via_websub(_websub_runtime(tmp_path, redis_url), target)}
    for scheme in APPRISE_SCHEMES:
        outcomes[scheme] = via_apprise(scheme.format(h=f"{form}:{trap.port}",
                                                     bare=f"{bare}&port={trap.port}"))
    assert all(o.refused for o in outcomes.values()), outcomes
    assert trap.connections == 0, outcomes
    assert any("is loopback" in o.reason for o in outcomes.values())
