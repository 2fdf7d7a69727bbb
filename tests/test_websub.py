"""WebSub: discovery, subscription verified by a local hub, signed pushes taken in at once,
lease renewal, polling as the fallback."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SECRET, SEEDS, runtime_for, spawn, stop, write_config
from tests.servers import FeedServer, Served, WebhookReceiver, WebSubHub, free_port, wait_for
from worker import pipeline, websub
from worker.runtime import Runtime
from worker.store import WebSubState

STORIES = [
    ("Truce talks resume in Doha", "Mediators said negotiations on a ceasefire went on."),
    ("Sudan ceasefire negotiations move to Jeddah",
     "Envoys of both armies agreed to meet again next week."),
    ("Yemen truce deal stalls over prisoner lists",
     "The talks in Muscat broke off without a date for the next round."),
    ("Colombia and rebels sign ceasefire protocol",
     "Negotiators in Havana said monitoring would begin in March."),
    ("Ceasefire proposal for Donbas front discussed in Istanbul",
     "Diplomats described the talks as difficult but useful."),
    ("Mali junta accepts truce talks with northern groups",
     "Algeria offered to host the mediation."),
]


def feed_body(hub: str, self_url: str, items: int = 1) -> bytes:
    entries = "".join(f"<item><title>{STORIES[n][0]}</title>"
                      f"<description>{STORIES[n][1]}</description><guid>round-{n}</guid>"
                      "</item>" for n in range(items))
    return (f'<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
            f"<title>Wire</title><atom:link rel='hub' href='{hub}'/>"
            f'<atom:link rel="self" href="{self_url}" type="application/rss+xml"/>'
            f"{entries}</channel></rss>").encode()


def test_discovery() -> None:
    body = feed_body("https://hub.example/", "https://wire.example/rss")
    assert websub.discover({}, body, "https://wire.example/x") == websub.Hub(
        "https://hub.example/", "https://wire.example/rss")
    header = {"Link": '<https://h.example/hub>; rel="hub", </feed.xml>; rel="self"'}
    assert websub.discover(header, b"<rss/>", "https://w.example/a") == websub.Hub(
        "https://h.example/hub", "https://w.example/feed.xml")
    atom = (b'<feed xmlns="http://www.w3.org/2005/Atom"><link href="/hub" rel="hub"/>'
            b"</feed>")
    assert websub.discover({}, atom, "https://w.example/atom") == websub.Hub(
        "https://w.example/hub", "https://w.example/atom")     # no self: the feed URL
    assert websub.discover({}, (SEEDS / "levant-wire.xml").read_bytes(), "u") is None


@pytest.mark.parametrize("method", ["sha1", "sha256", "sha512"])
def test_signatures(method: str) -> None:
    body = b"<rss/>"
    good = hmac.new(b"s3cret", body, getattr(hashlib, method)).hexdigest()
    assert websub.verify_signature("s3cret", f"{method}={good}", body)
    assert not websub.verify_signature("s3cret", f"{method}={good}", body + b" ")
    assert not websub.verify_signature("other", f"{method}={good}", body)
    assert not websub.verify_signature("s3cret", None, body)
    assert not websub.verify_signature("s3cret", f"md5={good}", body)


@pytest.fixture
def hub() -> Iterator[WebSubHub]:
    server = WebSubHub()
    yield server
    server.close()


@pytest.fixture
def pushed(tmp_path: Path, feed_server: FeedServer, hub: WebSubHub,
           redis_url: str) -> Iterator[tuple[Runtime, list[list[str]], str]]:
    """A feed declaring the hub, a runtime with its callback served on a free port."""
    topic = feed_server.url("/wire.xml")
    feed_server.files["/wire.xml"] = Served(feed_body(hub.url, topic))
    port = free_port()
    rt = runtime_for(tmp_path, f"""\
        feeds:
          - url: {topic}
        subscribers:
          - id: desk
            outbox: out
            topics: [ceasefire-talks]
        settings:
          websub_callback: http://127.0.0.1:{port}
          websub_lease_seconds: 3600
          max_interval: 7200
        """, redis_url)
    received: list[list[str]] = []
    server = websub.CallbackServer(rt.store, rt.config, rt.parser, received.append,
                                   "127.0.0.1", port).start()
    yield rt, received, topic
    server.stop()


def state(rt: Runtime) -> WebSubState:
    feed_id = rt.config.feeds[0].id
    return rt.store.feeds.websub([feed_id])[feed_id]


def test_subscribe_verify_push_and_fall_back(pushed: tuple[Runtime, list[list[str]], str],
                                             hub: WebSubHub) -> None:
    rt, received, topic = pushed
    feed = rt.config.feeds[0]
    rt.store.feeds.sync_schedule([(feed.id, feed.interval)])
    (outcome,) = pipeline.poll_feeds(rt.poller, [feed.id])
    assert outcome.status == "ok" and outcome.subscribe == websub.Hub(hub.url, topic)
    assert websub.subscribe(rt.store, rt.http, rt.config.settings, feed.id, outcome.subscribe)
    assert hub.requests[0]["hub.callback"].endswith(f"/websub/{feed.id}")
    # The hub records its verification after our answer has set the state: wait for both.
    assert wait_for(lambda: state(rt).state == "active" and len(hub.subscriptions) == 1, 10), \
        hub.subscriptions
    assert hub.subscriptions[0].verified
    assert 3500 < state(rt).until - time.time() <= 3600

    # Active: the next poll asks nothing more and waits max_interval (pushes bring the news).
    (again,) = pipeline.poll_feeds(rt.poller, [feed.id])
    assert again.subscribe is None
    assert 7100 < (rt.store.feeds.next_poll_at(feed.id) or 0) - time.time() <= 7200

    # A signed push is taken in at once; a forged one is acknowledged and dropped.
    assert hub.publish(topic, feed_body(hub.url, topic, items=3)) == [202]
    assert len(received) == 1 and len(received[0]) == 2          # rounds 1 and 2 are new
    alerts = pipeline.process_entries(rt.processor, received[0])
    assert len(alerts) == 2                                      # two more stories
    assert hub.publish(topic, feed_body(hub.url, topic, items=5), tamper=True) == [202]
    assert len(received) == 1 and rt.store.stats.totals().counts["push_rejected"] == 1

    # Near the lease's end: renewed by `maintain`.
    rt.store.feeds.set_websub(feed.id, until=time.time() + 60)
    assert pipeline.due_work(rt.store, rt.config).renewals == (feed.id,)
    # Lapsed: polling takes its normal interval again, and asks the hub again.
    rt.store.feeds.set_websub(feed.id, until=time.time() - 1)
    (lapsed,) = pipeline.poll_feeds(rt.poller, [feed.id])
    assert lapsed.status == "not_modified" and lapsed.subscribe == websub.Hub(hub.url, topic)
    assert (rt.store.feeds.next_poll_at(feed.id) or 0) - time.time() <= 600


def test_push_status_column_and_removed_feeds() -> None:
    from worker.commands.state import _push

    assert _push(WebSubState()) == "-" and _push(WebSubState(state="pending")) == "pending"
    assert _push(WebSubState(state="active", until=time.time() - 5)) == "lapsed"
    assert _push(WebSubState(state="active", until=time.time() + 86400)).startswith("until ")


def test_a_push_for_a_feed_no_longer_configured_is_gone(
        pushed: tuple[Runtime, list[list[str]], str]) -> None:
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    rt, received, _ = pushed
    base = rt.config.settings.websub_callback or ""
    with pytest.raises(HTTPError) as info:
        urlopen(Request(websub.callback_url(base, "fremoved"), data=b"<rss/>"), timeout=5)
    assert info.value.code == 410 and received == []


def test_verification_of_an_unknown_subscription_is_refused(
        pushed: tuple[Runtime, list[list[str]], str], hub: WebSubHub) -> None:
    rt, _, topic = pushed
    feed = rt.config.feeds[0]
    other = websub.Hub(hub.url, topic + "?other")
    hub.verify(hub_subscription(rt, feed.id, other.topic))
    assert not hub.subscriptions[-1].verified                   # we never asked for it
    assert state(rt).state == ""


def hub_subscription(rt: Runtime, feed_id: str, topic: str):  # type: ignore[no-untyped-def]
    from tests.servers import Subscription

    return Subscription(websub.callback_url(rt.config.settings.websub_callback or "", feed_id),
                        topic, "x", 60)


def test_a_refusing_hub_leaves_polling_alone(pushed: tuple[Runtime, list[list[str]], str],
                                             hub: WebSubHub) -> None:
    rt, _, topic = pushed
    hub.refuse = 503
    feed = rt.config.feeds[0]
    assert not websub.subscribe(rt.store, rt.http, rt.config.settings, feed.id,
                                websub.Hub(hub.url, topic))
    assert state(rt).state == "failed"
    assert websub.wants_subscription(rt.store.feeds.state(feed.id).websub,
                                     websub.Hub(hub.url, topic), time.time())


@pytest.mark.e2e
def test_newswatch_run_takes_pushes_to_alerts_in_a_second(
        tmp_path: Path, feed_server: FeedServer, hub: WebSubHub,
        receiver: WebhookReceiver) -> None:
    """`newswatch run` (embedded Redis, Celery worker and beat in one process) subscribes, and
    a publication pushed by the hub reaches the webhook at once, with no poll in between."""
    topic = feed_server.url("/wire.xml")
    feed_server.files["/wire.xml"] = Served(feed_body(hub.url, topic, items=1))
    port = free_port()
    config = write_config(tmp_path, f"""\
        feeds:
          - url: {topic}
        subscribers:
          - id: ops
            webhook: {receiver.url}
            secret: {SECRET}
            topics: [ceasefire-talks]
        settings:
          websub_callback: http://127.0.0.1:{port}
          websub_listen: 127.0.0.1:{port}
          data_dir: {tmp_path / "var"}
        """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env["NEWSWATCH_ALLOW_PRIVATE_NETWORKS"] = "true"
    run = spawn([sys.executable, "-m", "worker.cli", "run", "--config", str(config)], env,
                tmp_path / "run.log", tmp_path)
    try:
        assert wait_for(lambda: any(s.verified for s in hub.subscriptions), 60), \
            (tmp_path / "run.log").read_text()[-2000:]
        assert wait_for(lambda: len(receiver.received) == 1, 30)      # round 0, polled
        polls = len(feed_server.requests)
        published = time.time()
        assert hub.publish(topic, feed_body(hub.url, topic, items=2)) == [202]
        assert wait_for(lambda: len(receiver.received) == 2, 10)
        assert receiver.received[1].at - published < 2.0
        assert len(feed_server.requests) == polls                  # pushed, not polled
        assert receiver.received[1].body["story"]["title"] == STORIES[1][0]
    finally:
        assert stop(run, signal.SIGINT) in (0, 130)
