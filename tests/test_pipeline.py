"""The pipeline stage by stage on real parts (Redis, HTTP feed server, receivers), no Celery."""

from __future__ import annotations

import gc
import re
import weakref
from pathlib import Path

import pytest

from tests.conftest import SECRET, SEEDS, runtime_for, serve_seeds
from tests.servers import FeedServer, Served, SMTPServer, WebhookReceiver
from worker import pipeline
from worker.runtime import YOUNG_COLLECTION, Runtime, settle_heap


def seeds_runtime(tmp_path: Path, server: FeedServer, redis_url: str, subscribers: str,
                  extra_feeds: str = "") -> Runtime:
    feeds = serve_seeds(server)
    return runtime_for(tmp_path, f"""\
        feeds:
{feeds}{extra_feeds}
        subscribers:
{subscribers}
        """, redis_url)


OUTBOX_SUB = """\
          - id: desk
            outbox: out
            topics: [ceasefire-talks, hostage-releases]
          - id: hostages-only
            outbox: out2
            topics: [hostage-releases]
"""


def run_cycle(rt: Runtime) -> tuple[list[pipeline.PollOutcome], list[str]]:
    outcomes = [pipeline.poll_feed(rt.poller, f.id) for f in rt.config.feeds]
    alerts = []
    for outcome in outcomes:
        alerts += pipeline.process_entries(rt.processor, list(outcome.new_entries))
    for alert_id in alerts:
        assert pipeline.deliver_alert(rt.deliverer, alert_id).status == "delivered"
    return outcomes, alerts


def alerts_of(rt: Runtime, ids: list[str], subscriber: str) -> dict[str, list[str]]:
    out = {}
    for alert_id in ids:
        record = rt.store.records.load_alert(alert_id)
        assert record is not None
        if record.alert.subscriber_id == subscriber:
            out[record.alert.entry.title] = [m.topic_id for m in record.alert.matches]
    return out


def test_two_cycles_one_alert_per_subscriber_and_story(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    rt = seeds_runtime(tmp_path, feed_server, redis_url, OUTBOX_SUB)
    outcomes, alerts = run_cycle(rt)
    assert [o.status for o in outcomes] == ["ok", "ok", "ok"]
    desk = alerts_of(rt, alerts, "desk")
    assert desk == {
        "Hamas says indirect talks with Israel resumes in Qatari capital":
            ["ceasefire-talks", "hostage-releases"],
        "Four hostages freed in exchange for 200 prisoners as truce holds":
            ["hostage-releases"],
        "Sudan's warring parties agree to resume ceasefire negotiations in Jeddah":
            ["ceasefire-talks"],
        "Kidnapped aid workers released in Mali after three months": ["hostage-releases"],
        "Colombia and ELN rebels resume peace talks on a bilateral ceasefire":
            ["ceasefire-talks"],
    }
    assert set(alerts_of(rt, alerts, "hostages-only")) == {
        "Hamas says indirect talks with Israel resumes in Qatari capital",
        "Four hostages freed in exchange for 200 prisoners as truce holds",
        "Kidnapped aid workers released in Mali after three months",
    }
    assert len(list((tmp_path / "out").glob("*.json"))) == 5
    assert len(list((tmp_path / "out").glob("*.eml"))) == 5
    # Stories alerted, by topic, once each however many subscribers and copies: what readers
    # could judge (the learned threshold weighs their verdicts by it); matches count copies.
    stories: dict[str, set[str]] = {}
    for alert_id in alerts:
        record = rt.store.records.load_alert(alert_id)
        assert record is not None
        for m in record.alert.matches:
            stories.setdefault(m.topic_id, set()).add(record.alert.story_id)
    totals = rt.store.stats.totals()
    assert totals.stories == {t: len(s) for t, s in stories.items()} == {
        "ceasefire-talks": 3, "hostage-releases": 3}
    assert all(totals.matches[t] >= n for t, n in totals.stories.items())
    assert totals.matches != totals.stories                  # the syndicated copies

    requests_before = len(feed_server.requests)
    outcomes, alerts = run_cycle(rt)
    assert [o.status for o in outcomes] == ["not_modified"] * 3      # nothing parsed
    assert feed_server.not_modified == 3
    assert len(feed_server.requests) == requests_before + 3
    assert alerts == []
    assert rt.store.stats.totals().stories == totals.stories


def test_changed_feed_with_old_and_new_items(tmp_path: Path, feed_server: FeedServer,
                                             redis_url: str) -> None:
    rt = seeds_runtime(tmp_path, feed_server, redis_url, OUTBOX_SUB)
    run_cycle(rt)
    body = (SEEDS / "levant-wire.xml").read_text().replace(
        "<item>", """<item><title>Negotiators agree truce proposal for Sudan's El Fasher</title>
      <link>https://levantwire.example/world/2025/01/05/el-fasher-truce</link>
      <guid>levantwire-2025-0105-0001</guid><description>A local truce deal.</description>
    </item><item>""", 1)
    feed_server.files["/levant.xml"] = Served(body.encode())
    outcomes, alerts = run_cycle(rt)
    assert outcomes[0].status == "ok" and len(outcomes[0].new_entries) == 1
    assert list(alerts_of(rt, alerts, "desk")) == [
        "Negotiators agree truce proposal for Sudan's El Fasher"]


def test_same_url_in_another_feed_is_not_alerted_again(tmp_path: Path, feed_server: FeedServer,
                                                       redis_url: str) -> None:
    rt = seeds_runtime(tmp_path, feed_server, redis_url, OUTBOX_SUB)
    feeds = rt.config.feeds
    first = pipeline.poll_feed(rt.poller, feeds[0].id)           # Levant Wire: original URLs
    alerts = pipeline.process_entries(rt.processor, list(first.new_entries))
    second = pipeline.poll_feed(rt.poller, feeds[1].id)          # Gulf Daily: syndicated copy
    later = pipeline.process_entries(rt.processor, list(second.new_entries))
    titles = alerts_of(rt, later, "desk")
    assert "Four hostages freed in exchange for 200 prisoners as truce holds" not in titles
    assert "Hamas: indirect talks with Israel resume in Qatari capital Doha" not in titles
    assert set(titles) == {"Sudan's warring parties agree to resume ceasefire negotiations in "
                           "Jeddah", "Kidnapped aid workers released in Mali after three months"}
    story = rt.store.records.load_alert(alerts[0])
    assert story is not None
    copies = rt.store.stories.entries(story.alert.story_id)
    assert len(copies) == 2          # the second outlet joined the seed story


def test_one_bad_feed_does_not_stop_the_others(tmp_path: Path, feed_server: FeedServer,
                                               redis_url: str) -> None:
    feed_server.files["/html"] = Served(b"<html><body>maintenance</body></html>", "text/html")
    rt = seeds_runtime(tmp_path, feed_server, redis_url, OUTBOX_SUB, extra_feeds=f"""\
          - url: {feed_server.url('/html')}
            name: Broken page
          - url: {feed_server.url('/gone')}
            name: Gone
""")
    outcomes, alerts = run_cycle(rt)
    by_name = {f.name: o for f, o in zip(rt.config.feeds, outcomes, strict=True)}
    assert by_name["Broken page"].status == "error"
    assert by_name["Broken page"].error.startswith(feed_server.url("/html") + ": not a "
                                                   "readable feed")
    assert by_name["Gone"].error == feed_server.url("/gone") + ": HTTP 404 Not Found"
    assert len(alerts_of(rt, alerts, "desk")) == 5
    state = rt.store.feeds.state(rt.config.feeds[3].id)
    assert state.last_status == "error" and state.error_count == 1


def test_webhook_and_email_delivery(tmp_path: Path, feed_server: FeedServer, redis_url: str,
                                    receiver: WebhookReceiver, smtp: SMTPServer) -> None:
    rt = seeds_runtime(tmp_path, feed_server, redis_url, f"""\
          - id: ops
            webhook: {receiver.url}
            secret: {SECRET}
            topics: [hostage-releases]
          - id: desk
            email: desk@example.org
            topics: [ceasefire-talks, hostage-releases]
        settings:
          smtp_url: {smtp.url}
          from_address: alerts@newswatch.example
""")
    run_cycle(rt)
    assert len(receiver.received) == 3 and all(h.verified for h in receiver.received)
    seed = next(h for h in receiver.received if "Qatari" in h.body["story"]["title"])
    assert seed.headers["webhook-id"] == seed.body["id"]
    assert seed.body["subscriber"] == "ops"
    assert [t["id"] for t in seed.body["topics"]] == ["hostage-releases"]
    assert any("*hostages*" in ev for ev in seed.body["topics"][0]["evidence"])
    assert seed.body["story"]["published"] == "2025-01-04T14:05:00Z"
    assert seed.body["story"]["source"] == {"feed": feed_server.url("/levant.xml"),
                                            "title": "Levant Wire", "categories": []}

    assert len(smtp.messages) == 5
    mail = next(m for m in smtp.messages if "Qatari" in m["Subject"])
    assert mail["Subject"] == ("[newswatch] Ceasefire talks, Hostage releases: Hamas says "
                               "indirect talks with Israel resumes in Qatari capital")
    assert mail["To"] == "desk@example.org" and mail["From"] == "alerts@newswatch.example"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "Matched topic: Hostage releases" in text
    assert re.search(r"<mark[^>]*>hostages</mark>", html)
    assert "because: hostage* = hostages; releas* = released" in text
    assert mail["Message-ID"].startswith("<") and mail["List-Unsubscribe"]


@pytest.mark.parametrize(("status", "expected"), [(500, "retrying"), (429, "retrying"),
                                                  (404, "dead"), (410, "dead")])
def test_failed_delivery_is_recorded(tmp_path: Path, feed_server: FeedServer, redis_url: str,
                                     receiver: WebhookReceiver, status: int,
                                     expected: str) -> None:
    receiver.statuses = [status]
    receiver.extra_headers = {"Retry-After": "7"}
    rt = seeds_runtime(tmp_path, feed_server, redis_url, f"""\
          - id: ops
            webhook: {receiver.url}
            secret: {SECRET}
            topics: [hostage-releases]
""")
    outcome = pipeline.poll_feed(rt.poller, rt.config.feeds[1].id)
    alert_id = pipeline.process_entries(rt.processor, list(outcome.new_entries))[0]
    result = pipeline.deliver_alert(rt.deliverer, alert_id)
    assert result.status == expected
    assert result.error == f"{receiver.url}: HTTP {status} " + {
        500: "Internal Server Error", 429: "Too Many Requests", 404: "Not Found",
        410: "Gone"}[status]
    record = rt.store.records.load_alert(alert_id)
    assert record is not None and record.status == expected and record.attempts == 1
    if expected == "retrying":
        assert result.retry_in is not None and result.retry_in >= 7    # Retry-After honoured
        again = pipeline.deliver_alert(rt.deliverer, alert_id)
        assert again.status == "delivered"
        assert len(receiver.received) == 1
        assert receiver.received[0].headers["webhook-id"] == alert_id
    else:
        assert alert_id in rt.store.records.dead()
        assert pipeline.deliver_alert(rt.deliverer, alert_id).status == "skipped"


def test_one_dead_subscriber_does_not_stop_the_others(
        tmp_path: Path, feed_server: FeedServer, redis_url: str,
        receiver: WebhookReceiver) -> None:
    rt = seeds_runtime(tmp_path, feed_server, redis_url, f"""\
          - id: dead
            webhook: http://127.0.0.1:9/nothing-listens
            secret: {SECRET}
            topics: [hostage-releases]
          - id: ops
            webhook: {receiver.url}
            secret: {SECRET}
            topics: [hostage-releases]
""")
    outcome = pipeline.poll_feed(rt.poller, rt.config.feeds[0].id)
    results = [pipeline.deliver_alert(rt.deliverer, a)
               for a in pipeline.process_entries(rt.processor, list(outcome.new_entries))]
    assert sorted(r.status for r in results) == ["delivered", "delivered", "retrying",
                                                 "retrying"]
    assert all("127.0.0.1:9" in (r.error or "") for r in results if r.status == "retrying")
    assert len(receiver.received) == 2


def test_an_entry_another_worker_is_processing_is_left_to_it(
        tmp_path: Path, feed_server: FeedServer, redis_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep re-enqueues entries left pending too long, which is also what a slow batch
    looks like: the second task leaves what the first is processing (its matches were
    counted twice, by `run --once` whenever a batch outlasted its 2 s sweep). A batch that
    fails gives its claims up, so a retry takes the entries at once."""
    rt = seeds_runtime(tmp_path, feed_server, redis_url, OUTBOX_SUB)
    outcome = pipeline.poll_feed(rt.poller, rt.config.feeds[0].id)
    keys = list(outcome.new_entries)
    assert keys
    assert [k for k, _ in rt.store.entries.claim(keys, 60)] == keys     # another worker's
    assert pipeline.process_entries(rt.processor, keys) == []
    assert rt.store.stats.totals().matches == {}
    assert rt.store.entries.pending() == set(keys)

    rt.store.entries.release(*keys)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("model file vanished")
    monkeypatch.setattr(rt.processor.classifier(), "decide_many", broken)
    with pytest.raises(RuntimeError):
        pipeline.process_entries(rt.processor, keys)
    monkeypatch.undo()
    alerts = pipeline.process_entries(rt.processor, keys)     # claims were given up
    assert alerts and rt.store.entries.pending() == set()
    counted = rt.store.stats.totals().matches
    assert pipeline.process_entries(rt.processor, keys) == []      # done: a late repeat
    assert rt.store.stats.totals().matches == counted
    assert not any(rt.store.r.exists(rt.store.k("working", k)) for k in keys)


def test_a_runtime_settles_its_heap_once_its_classifier_is_made(
        tmp_path: Path, redis_url: str) -> None:
    """The classifier lives as long as the process: made, it is put out of the garbage
    collector's sight (each full collection walked it: bench/classify.py unseen items), the
    young are collected less often (bench/poll.py warm cycles), and settling again, as a
    reload does, frees the cycles that died meanwhile."""
    rt = runtime_for(tmp_path, "feeds: []\nsettings:\n  semantic: false\n", redis_url)
    classifier = rt.classifier
    assert not any(o is classifier.index for o in gc.get_objects())     # frozen
    assert gc.get_threshold()[0] == YOUNG_COLLECTION

    class Cycle:
        me: object

    dead = Cycle()
    dead.me = dead
    gone = weakref.ref(dead)
    settle_heap()                      # frozen with the rest, then dropped
    del dead
    gc.collect()
    assert gone() is not None          # out of sight: not collected
    settle_heap()
    assert gone() is None              # seen again and collected
    assert rt.classifier is classifier


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 17, 50, 199, 200, 201, 1234])
def test_new_entries_are_cut_into_tasks_the_threads_share(n: int) -> None:
    """Every entry in exactly one task, in order; none larger than BATCH; a small burst spread
    over up to SPREAD tasks of at least MIN_BATCH (17 entries: four tasks, not one)."""
    keys = [f"e{i}" for i in range(n)]
    cut = pipeline.batches(keys)
    assert [k for batch in cut for k in batch] == keys
    assert all(0 < len(batch) <= pipeline.BATCH for batch in cut)
    if n <= pipeline.SPREAD * pipeline.BATCH:
        assert len(cut) <= pipeline.SPREAD
    if n >= pipeline.SPREAD * pipeline.MIN_BATCH:
        assert len(cut) >= min(pipeline.SPREAD, -(-n // pipeline.BATCH))
    assert len(pipeline.batches([f"e{i}" for i in range(17)])) == 4
