"""Polite polling: adaptive intervals, server hints, backoff, Retry-After, 410, 301."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.conftest import SEEDS, runtime_for
from tests.servers import FeedServer, Served
from worker import parsepool, pipeline, websub
from worker.runtime import Runtime
from worker.schedule import (
    Bounds,
    Failed,
    FeedNow,
    Fetched,
    decide_poll,
    error_delay,
    moved,
    next_interval,
    server_hint,
)
from worker.store import WebSubState

B = Bounds(60, 3600)


def test_intervals_adapt_within_bounds() -> None:
    assert next_interval(300, B, new_entries=3, hint=None) == 225        # busier: sooner
    assert next_interval(300, B, new_entries=0, hint=None) == 375        # quiet: later
    assert next_interval(70, B, new_entries=5, hint=None) == 60          # never under min
    assert next_interval(3500, B, new_entries=0, hint=None) == 3600      # never over max
    assert next_interval(300, B, new_entries=3, hint=900) == 900         # server asks more
    assert next_interval(300, B, new_entries=3, hint=99_999) == 3600     # ... within bounds


def test_server_hints() -> None:
    now = datetime(2025, 1, 4, 12, tzinfo=UTC)
    assert server_hint({"Cache-Control": "public, max-age=600"}) == 600
    assert server_hint({"cache-control": "s-maxage=120, max-age=60"}) == 120
    later = format_datetime(now + timedelta(minutes=15), usegmt=True)
    assert server_hint({"Expires": later}, now=now) == 900
    assert server_hint({}, b"<rss><channel><ttl>30</ttl></channel></rss>") == 1800
    assert server_hint({"Expires": "garbage"}) is None
    assert server_hint({}) is None


def test_errors_back_off_and_honour_retry_after() -> None:
    assert [error_delay(300, n, B) for n in (1, 2, 3, 4, 5)] == [300, 600, 1200, 2400, 3600]
    assert error_delay(300, 1, B, retry_after=7200) == 7200


def test_a_permanent_redirect_must_repeat() -> None:
    assert moved(None, 0, "https://new.example/rss") == (1, False)
    assert moved("https://new.example/rss", 1, "https://new.example/rss") == (2, True)
    assert moved("https://new.example/rss", 1, "https://other.example/rss") == (1, False)


def runtime(tmp_path: Path, server: FeedServer, redis_url: str, *paths: str) -> Runtime:
    feeds = "".join(f"          - url: {server.url(p)}\n" for p in paths)
    return runtime_for(tmp_path, f"""\
        feeds:
{feeds}
        settings:
          poll_interval: 300
        """, redis_url)


def next_poll_in(rt: Runtime, feed_id: str) -> float:
    return float(rt.store.r.zscore(rt.store.k("schedule"), feed_id) or 0) - time.time()


def test_unchanged_body_is_not_parsed(tmp_path: Path, feed_server: FeedServer,
                                      redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    feed_server.files["/f.xml"] = Served((SEEDS / "levant-wire.xml").read_bytes(),
                                         validators=False,        # a server without ETags
                                         headers={"Cache-Control": "max-age=900"})
    rt = runtime(tmp_path, feed_server, redis_url, "/f.xml")
    feed = rt.config.feeds[0]
    rt.store.feeds.sync_schedule([(feed.id, feed.interval)])
    assert pipeline.poll_feed(rt.poller, feed.id).status == "ok"
    assert 890 < next_poll_in(rt, feed.id) <= 900          # the server's max-age, in bounds
    parsed = []
    real = parsepool.read_feed
    monkeypatch.setattr(parsepool, "read_feed", lambda *a, **k: parsed.append(1) or real(*a, **k))
    assert pipeline.poll_feed(rt.poller, feed.id).status == "unchanged" and parsed == []


def test_gone_feeds_stop_and_others_go_on(tmp_path: Path, feed_server: FeedServer,
                                          redis_url: str) -> None:
    feed_server.files["/gone.xml"] = Served(b"", status=410)
    feed_server.files["/ok.xml"] = Served((SEEDS / "levant-wire.xml").read_bytes())
    rt = runtime(tmp_path, feed_server, redis_url, "/gone.xml", "/ok.xml")
    gone, ok = rt.config.feeds
    rt.store.feeds.sync_schedule((f.id, f.interval) for f in rt.config.feeds)
    assert pipeline.poll_feed(rt.poller, gone.id).status == "gone"
    assert pipeline.poll_feed(rt.poller, ok.id).status == "ok"
    requests = len(feed_server.requests)
    assert pipeline.poll_feed(rt.poller, gone.id).status == "gone"
    assert len(feed_server.requests) == requests             # not asked again
    assert rt.store.feeds.claim_due(time.time() + 10**6, lease=60) == [ok.id]


def test_repeated_301_moves_the_feed(tmp_path: Path, feed_server: FeedServer,
                                     redis_url: str) -> None:
    feed_server.files["/new.xml"] = Served((SEEDS / "levant-wire.xml").read_bytes())
    feed_server.files["/old.xml"] = Served(b"", status=301, location=feed_server.url("/new.xml"))
    rt = runtime(tmp_path, feed_server, redis_url, "/old.xml")
    feed = rt.config.feeds[0]
    pipeline.poll_feed(rt.poller, feed.id)
    assert rt.store.feeds.state(feed.id).url is None           # once may be a mistake
    pipeline.poll_feed(rt.poller, feed.id)
    assert rt.store.feeds.state(feed.id).url == feed_server.url("/new.xml")
    before = [p for p, _ in feed_server.requests]
    pipeline.poll_feed(rt.poller, feed.id)
    assert [p for p, _ in feed_server.requests][len(before):] == ["/new.xml"]


def test_retry_after_pauses_the_host_and_errors_back_off(tmp_path: Path,
                                                         feed_server: FeedServer,
                                                         redis_url: str) -> None:
    feed_server.files["/busy.xml"] = Served(b"", status=429, headers={"Retry-After": "1200"})
    feed_server.files["/other.xml"] = Served((SEEDS / "levant-wire.xml").read_bytes())
    rt = runtime(tmp_path, feed_server, redis_url, "/busy.xml", "/other.xml")
    busy, other = rt.config.feeds
    rt.store.feeds.sync_schedule((f.id, f.interval) for f in rt.config.feeds)
    assert pipeline.poll_feed(rt.poller, busy.id).status == "error"
    assert 1190 < next_poll_in(rt, busy.id) <= 1200
    requests = len(feed_server.requests)
    # The same host (127.0.0.1) asked us to wait: its other feed waits too, without a request.
    assert pipeline.poll_feed(rt.poller, other.id).status == "deferred"
    assert len(feed_server.requests) == requests
    rt.store.r.delete(rt.store.k("hostpause", "127.0.0.1"))
    feed_server.files["/busy.xml"] = Served(b"", status=500)
    delays = []
    for _ in range(3):
        pipeline.poll_feed(rt.poller, busy.id)
        delays.append(round(next_poll_in(rt, busy.id) / 60))
    assert delays == [10, 20, 40]                     # 2nd, 3rd, 4th failure in a row


def test_feeds_status_command(tmp_path: Path, feed_server: FeedServer, redis_url: str,
                              capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.cli import main

    feed_server.files["/gone.xml"] = Served(b"", status=410)
    feed_server.files["/ok.xml"] = Served((SEEDS / "levant-wire.xml").read_bytes())
    feed_server.files["/bad.xml"] = Served(b"<html>not a feed</html>", "text/html")
    rt = runtime(tmp_path, feed_server, redis_url, "/gone.xml", "/ok.xml", "/bad.xml")
    rt.store.feeds.sync_schedule((f.id, f.interval) for f in rt.config.feeds)
    for feed in rt.config.feeds:
        pipeline.poll_feed(rt.poller, feed.id)
    monkeypatch.setenv("NEWSWATCH_REDIS_URL", redis_url)
    monkeypatch.setenv("NEWSWATCH_KEY_PREFIX", rt.config.settings.key_prefix)
    assert main(["feeds", "status", "--config", str(rt.config.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["FEED", "LAST", "POLL"]
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    gone, ok, bad = lines[1:]
    assert re.search(rf"{stamp} +error +1 +- +5 min +- +gone \(410\): not polled", gone)
    # the seed declares <ttl>15</ttl>: the interval follows it; the next poll is scheduled
    assert re.search(rf"{stamp} +ok +0 +{stamp} +15 min", ok)
    assert re.search(rf"{stamp} +error +1 +{stamp} +5 min +- +http\S+: not a readable feed",
                     bad)


def test_operators_hear_of_gone_and_failing_feeds(tmp_path: Path, feed_server: FeedServer,
                                                  redis_url: str) -> None:
    import email
    import email.policy
    import json

    feed_server.files["/down.xml"] = Served(b"", status=500)
    feed_server.files["/gone.xml"] = Served(b"", status=410)
    rt = runtime_for(tmp_path, f"""\
        feeds:
          - url: {feed_server.url('/down.xml')}
            name: Down
          - url: {feed_server.url('/gone.xml')}
            name: Gone
        subscribers:
          - id: oncall
            outbox: ops
            topics: [hostage-releases]
        settings:
          operators: [oncall]
          operator_alert_after: 3
        """, redis_url)
    down, gone = rt.config.feeds
    notices = [pipeline.poll_feed(rt.poller, down.id).notices for _ in range(4)]
    assert [len(n) for n in notices] == [0, 0, 1, 0]          # once, at the 3rd failure
    gone_notices = pipeline.poll_feed(rt.poller, gone.id).notices
    assert len(gone_notices) == 1
    for notice_id in (*notices[2], *gone_notices):
        assert pipeline.deliver_alert(rt.deliverer, notice_id).status == "delivered"
    bodies = sorted((json.loads(p.read_text()) for p in (tmp_path / "ops").glob("*.json")),
                    key=lambda b: b["problem"])
    assert [(b["type"], b["problem"], b["feed"]["name"], b["error_class"],
             b["errors_in_a_row"]) for b in bodies] == [
        ("feed_problem", "failing", "Down", "HTTP 500", 3),
        ("feed_problem", "gone", "Gone", "HTTP 410", 1)]
    subjects = sorted(str(email.message_from_bytes(p.read_bytes(),
                                                   policy=email.policy.default)["Subject"])
                      for p in (tmp_path / "ops").glob("*.eml"))
    assert subjects == ["[newswatch] Feed problem: Down failed 3 times in a row",
                        "[newswatch] Feed problem: Gone is gone (HTTP 410): no longer polled"]


def test_unknown_operator_is_a_config_error(tmp_path: Path) -> None:
    from tests.conftest import write_config
    from worker.config import load_config
    from worker.errors import ConfigError

    path = write_config(tmp_path, """\
        settings:
          operators: [nobody]
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(":2: settings.operators[0]: unknown subscriber 'nobody'" in p
               for p in info.value.problems)


# The poll rule as a table: no Redis, no HTTP (schedule.decide_poll is pure).
T0 = 1_000_000.0
FEED = FeedNow(interval=600, error_count=0)


@pytest.mark.parametrize(("feed", "got", "expect"), [
    # new entries: polled sooner; the body's hash kept so the same bytes are not parsed again
    (FEED, Fetched("ok", 3, None, None, "h1"),
     dict(status="ok", fields={"interval": 450, "body_hash": "h1"}, next=T0 + 450)),
    # nothing new: later; the server's max-age wins over a shorter interval
    (FEED, Fetched("not_modified", 0, None, None), dict(status="not_modified",
                                                        fields={"interval": 750},
                                                        next=T0 + 750)),
    (FEED, Fetched("unchanged", 0, 1800, None), dict(fields={"interval": 1800},
                                                     next=T0 + 1800)),
    # an active WebSub subscription brings the news: polling waits the maximum
    (FeedNow(600, 0, pushed=True), Fetched("ok", 1, None, None),
     dict(fields={"interval": 450}, next=T0 + 3600)),
    # a 301 is counted, and adopted when it repeats; a stray one is forgotten
    (FEED, Fetched("ok", 0, None, "https://new.example/rss"),
     dict(fields={"interval": 750, "moved_target": "https://new.example/rss",
                  "moved_count": 1}, adopted=None)),
    (FeedNow(600, 0, "https://new.example/rss", 1), Fetched("ok", 0, None,
                                                            "https://new.example/rss"),
     dict(fields={"interval": 750, "url": "https://new.example/rss", "moved_target": "",
                  "moved_count": 0}, adopted="https://new.example/rss")),
    (FeedNow(600, 0, "https://new.example/rss", 1), Fetched("ok", 0, None, None),
     dict(fields={"interval": 750, "moved_target": "", "moved_count": 0})),
    # 410: gone, not polled again, the operators told
    (FEED, Failed("HTTP 410", 410), dict(status="gone", fields={"gone": 1}, next=None,
                                         notify="gone")),
    # 429 with Retry-After: the host pauses, the feed waits at least that long
    (FEED, Failed("HTTP 429", 429, 2000), dict(status="error", next=T0 + 2000,
                                                pause=2000, notify=None)),
    # a Retry-After on another status pauses nobody else
    (FEED, Failed("HTTP 500", 500, 2000), dict(next=T0 + 2000, pause=None)),
    # failures back off exponentially, up to the maximum
    (FeedNow(600, 2), Failed("timed out"), dict(next=T0 + 2400)),
    (FeedNow(600, 9), Failed("timed out"), dict(next=T0 + 3600)),
    # the operators hear once per streak, when it reaches operator_alert_after (5)
    (FeedNow(600, 3), Failed("x"), dict(notify=None)),
    (FeedNow(600, 4), Failed("x"), dict(notify="failing")),
    (FeedNow(600, 5), Failed("x"), dict(notify=None)),
])
def test_what_a_poll_means_for_the_feed(feed: FeedNow, got: Fetched | Failed,
                                        expect: dict[str, object]) -> None:
    d = decide_poll(feed, got, bounds=B, started=T0, operator_alert_after=5)
    seen = {"status": d.status, "fields": d.fields, "next": d.next_poll_at,
            "pause": d.pause_host_for, "notify": d.notify, "adopted": d.adopted}
    assert {k: seen[k] for k in expect} == expect


@pytest.mark.parametrize(("ws", "query", "expect"), [
    # we asked (pending) for this topic: confirmed, active for the hub's lease
    (WebSubState(topic="t", state="pending"), {"hub.mode": "subscribe", "hub.topic": "t",
                                               "hub.challenge": "c", "hub.lease_seconds": "60"},
     (200, "c", {"state": "active", "until": T0 + 60, "error": ""})),
    # a renewal of an active one; the default lease when the hub names none
    (WebSubState(topic="t", state="active"), {"hub.mode": "subscribe", "hub.topic": "t",
                                              "hub.challenge": "c"},
     (200, "c", {"state": "active", "until": T0 + 86400, "error": ""})),
    # never asked, another topic, failed, no challenge: refused, nothing changes
    (WebSubState(), {"hub.mode": "subscribe", "hub.topic": "t", "hub.challenge": "c"},
     (404, "no such subscription", {})),
    (WebSubState(topic="t", state="pending"), {"hub.mode": "subscribe", "hub.topic": "u",
                                               "hub.challenge": "c"},
     (404, "no such subscription", {})),
    (WebSubState(topic="t", state="failed"), {"hub.mode": "subscribe", "hub.topic": "t",
                                              "hub.challenge": "c"},
     (404, "no such subscription", {})),
    (WebSubState(topic="t", state="pending"), {"hub.mode": "subscribe", "hub.topic": "t"},
     (404, "no such subscription", {})),
    (WebSubState(topic="t", state="pending"), {"hub.mode": "unsubscribe", "hub.topic": "t",
                                               "hub.challenge": "c"},
     (404, "no such subscription", {})),
    # a bad lease is refused
    (WebSubState(topic="t", state="pending"), {"hub.mode": "subscribe", "hub.topic": "t",
                                               "hub.challenge": "c",
                                               "hub.lease_seconds": "soon"},
     (400, "bad hub.lease_seconds", {})),
    (WebSubState(topic="t", state="pending"), {"hub.mode": "subscribe", "hub.topic": "t",
                                               "hub.challenge": "c",
                                               "hub.lease_seconds": "-5"},
     (400, "bad hub.lease_seconds", {})),
    # a denial of our topic is recorded with the hub's reason; of another, ignored
    (WebSubState(topic="t", state="pending"), {"hub.mode": "denied", "hub.topic": "t",
                                               "hub.reason": "no"},
     (200, "", {"state": "denied", "error": "no"})),
    (WebSubState(topic="t", state="active"), {"hub.mode": "denied", "hub.topic": "u"},
     (200, "", {})),
])
def test_a_hubs_verification_as_a_table(ws: WebSubState, query: dict[str, str],
                                        expect: tuple[int, str, dict[str, object]]) -> None:
    v = websub.verification(ws, query, T0, 86400)
    assert (v.status, v.text, v.update) == expect
