"""Digests: periods in the subscriber's zone, one message per period grouped by topic, and
nothing lost or sent twice when assembly is interrupted."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import runtime_for
from tests.servers import FeedServer, Served
from tests.test_stories_e2e import COPIES, rss
from worker import pipeline
from worker.digest import period_of
from worker.runtime import Runtime


def test_periods_follow_the_local_clock() -> None:
    moment = datetime(2025, 1, 4, 23, 30, tzinfo=UTC)           # 00:30 on the 5th in Paris
    day = period_of(moment, "daily", "Europe/Paris")
    assert day.label == "2025-01-05"
    assert (day.start, day.end) == (datetime(2025, 1, 4, 23, tzinfo=UTC),
                                    datetime(2025, 1, 5, 23, tzinfo=UTC))
    hour = period_of(moment, "hourly", "Asia/Kolkata")          # +05:30
    assert hour.label == "2025-01-05 05:00"
    assert hour.start == datetime(2025, 1, 4, 23, 30, tzinfo=UTC)
    spring = period_of(datetime(2025, 3, 30, 12, tzinfo=UTC), "daily", "Europe/Paris")
    assert (spring.end - spring.start).total_seconds() == 23 * 3600   # DST starts
    autumn = period_of(datetime(2025, 10, 26, 12, tzinfo=UTC), "daily", "Europe/Paris")
    assert (autumn.end - autumn.start).total_seconds() == 25 * 3600   # DST ends
    assert period_of(moment, "daily", "UTC").label == "2025-01-04"


def digest_runtime(tmp_path: Path, server: FeedServer, redis_url: str,
                   subscriber: str = "briefing") -> Runtime:
    for n, (title, link) in enumerate(COPIES):
        server.files[f"/o{n}.xml"] = Served(rss(title, link, n))
    server.files["/other.xml"] = Served(
        b"<rss version='2.0'><channel><title>Other</title><item><title>Kidnapped nurses "
        b"freed in Haiti</title><link>https://other.example/haiti</link><guid>h1</guid>"
        b"<description>The nurses abducted last week were released.</description></item>"
        b"</channel></rss>")
    feeds = "".join(f"          - url: {server.url(p)}\n"
                    for p in ("/o0.xml", "/o1.xml", "/o2.xml", "/other.xml"))
    return runtime_for(tmp_path, f"""\
        feeds:
{feeds}
        subscribers:
          - id: {subscriber}
            outbox: out
            topics: [ceasefire-talks, hostage-releases]
            digest: daily
            timezone: Europe/Paris
        """, redis_url)


def take_in(rt: Runtime) -> None:
    for feed in rt.config.feeds:
        outcome = pipeline.poll_feed(rt.poller, feed.id)
        # held for the digest, not sent
        assert pipeline.process_entries(rt.processor, list(outcome.new_entries)) == []


@pytest.mark.parametrize("subscriber", ["briefing", "desk:paris", "team/desk@example.org"])
def test_one_digest_per_period_with_every_source(tmp_path: Path, feed_server: FeedServer,
                                                 redis_url: str, subscriber: str) -> None:
    """Any valid subscriber id, ':' included (the bucket was found again by splitting its
    key on ':', so `desk:paris` got its digest dead-lettered as not configured)."""
    rt = digest_runtime(tmp_path, feed_server, redis_url, subscriber)
    take_in(rt)
    assert pipeline.due_work(rt.store, rt.config).alerts == ()       # the day is not over yet
    assert not (tmp_path / "out").exists()
    work = pipeline.due_work(rt.store, rt.config, now=time.time() + 2 * 86400)
    [digest_id] = work.alerts
    assert pipeline.deliver_alert(rt.deliverer, digest_id).status == "delivered"
    later = time.time() + 3 * 86400
    assert pipeline.due_work(rt.store, rt.config, now=later).alerts == ()        # once only
    [path] = (tmp_path / "out").glob("*.json")
    body = json.loads(path.read_text())
    assert body["type"] == "digest" and body["subscriber"] == subscriber
    assert body["period"]["timezone"] == "Europe/Paris" and body["stories"] == 2
    topics = {t["id"]: t["stories"] for t in body["topics"]}
    [doha] = topics["ceasefire-talks"]
    assert doha["also_topics"] == ["Hostage releases"]
    assert len(doha["sources"]) == 3                           # three outlets, one entry
    assert [s["title"] for s in topics["hostage-releases"]] == ["Kidnapped nurses freed in Haiti"]
    eml = path.with_suffix(".eml").read_text()
    assert "Daily digest" in eml and "Ceasefire talks" in eml


@pytest.mark.parametrize("crash", ["before the record", "after the record"])
def test_a_crash_during_assembly_loses_and_repeats_nothing(
        tmp_path: Path, feed_server: FeedServer, redis_url: str,
        monkeypatch: pytest.MonkeyPatch, crash: str) -> None:
    rt = digest_runtime(tmp_path, feed_server, redis_url)
    take_in(rt)
    later = time.time() + 2 * 86400
    store = rt.store.records
    target = "create_digest" if crash == "before the record" else "close_digest_bucket"
    real = getattr(store, target)

    def dies(*args: object, **kwargs: object) -> object:
        raise SystemExit("worker killed")                    # the process dies right here

    monkeypatch.setattr(store, target, dies)
    with pytest.raises(SystemExit):
        pipeline.due_work(rt.store, rt.config, now=later)
    monkeypatch.setattr(store, target, real)                 # a new worker takes over
    ids = pipeline.due_work(rt.store, rt.config, now=later).alerts
    assert len(ids) == 1
    assert pipeline.deliver_alert(rt.deliverer, ids[0]).status == "delivered"
    assert pipeline.due_work(rt.store, rt.config, now=later + 86400).alerts == ()
    bodies = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")]
    assert len(bodies) == 1 and bodies[0]["stories"] == 2


def test_a_thread_is_one_heading_in_the_digest() -> None:
    """Related alerts of one thread sit under its first alert; one whose thread began before
    the period heads its own line and names what it is related to. Every renderer shows it."""
    from dataclasses import replace

    from worker.deliver import render
    from worker.deliver.chat import chat_message
    from worker.models import Alert, Entry, Match, Related

    at = datetime(2025, 1, 4, 10, tzinfo=UTC)
    match = (Match("ceasefire-talks", "Ceasefire talks", 1.0),)

    def alert(n: int, title: str, **kw: object) -> Alert:
        e = Entry("f", f"g{n}", title, "", f"https://x.example/{n}", at, f"Outlet {n}", "en")
        return replace(Alert(f"a{n}", "desk", f"s{n}", e, match, at + timedelta(minutes=n)),
                       **kw)

    first = alert(1, "Talks resume in Doha")
    later = alert(2, "Negotiators meet again in Doha", thread="s1", reply_to="a1",
                  related=Related("s1", "Talks resume in Doha", None))
    older = alert(3, "Truce extended in Yemen", thread="s0",
                  related=Related("s0", "Yemen truce talks open", None))
    from worker.digest import digest_body

    body = digest_body("desk", period_of(at, "daily", "UTC"),
                       [(later, []), (older, []), (first, [])])
    [topic] = body["topics"]
    assert [s["title"] for s in topic["stories"]] == ["Talks resume in Doha",
                                                      "Truce extended in Yemen"]
    assert [s["title"] for s in topic["stories"][0]["related"]] == [
        "Negotiators meet again in Doha"]
    assert topic["stories"][1]["related_to"]["title"] == "Yemen truce talks open"
    assert body["stories"] == 3
    msg = render.digest_email(body, to="desk@example.org", from_address="nw@example.org")
    text = msg.get_body(("plain",)).get_content()
    assert "    ↳ Negotiators meet again in Doha" in text and "related to: Yemen truce" in text
    assert "Negotiators meet again in Doha" in msg.get_body(("html",)).get_content()
    assert "  - ↳ [Negotiators meet again in Doha]" in chat_message(body)[1]
