"""The Redis state, against a real Redis: once-only steps hold under concurrency."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from worker.models import Alert, Entry, Match
from worker.store import Store


def entry(n: int, feed: str = "f1") -> Entry:
    return Entry(feed, f"guid-{n}", f"Title {n}", "Summary", f"https://x.example/{n}",
                 datetime(2025, 1, 4, tzinfo=UTC), "Feed")


def test_entries_are_taken_in_once(store: Store) -> None:
    first = store.entries.add_new([entry(1), entry(2)])
    assert len(first) == 2
    assert store.entries.add_new([entry(1), entry(2), entry(3)]) == [store.entries.key(entry(3))]
    assert store.entries.load(first[0]) == entry(1)
    assert store.entries.pending() == set(first) | {store.entries.key(entry(3))}
    store.entries.done(first[0])
    assert first[0] not in store.entries.pending()


def test_alert_is_created_once_per_id(store: Store) -> None:
    alert = Alert("a1", "desk", "s1", entry(1), (Match("t", "T", 1.0, ("*x*",)),),
                  datetime.now(UTC).replace(microsecond=0))
    assert store.records.create_alert(alert, origin="f1:e1") == 1
    assert store.records.create_alert(alert, origin="f1:e1") == 2     # redelivered: enqueue again
    assert store.records.create_alert(alert, origin="f2:e9") == 0     # another copy: nothing
    record = store.records.load_alert("a1")
    assert record is not None and record.status == "pending" and record.alert == alert
    store.records.mark_delivered("a1", "webhook")
    assert store.records.create_alert(alert, origin="f1:e1") == 0
    assert store.records.pending() == set()


def test_concurrent_claims_of_due_feeds_never_overlap(store: Store) -> None:
    store.feeds.sync_schedule((f"feed{i}", 60) for i in range(200))
    claimed: list[list[str]] = []

    def claim() -> None:
        claimed.append(store.feeds.claim_due(time.time() + 1, lease=600, limit=50))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [f for batch in claimed for f in batch]
    assert len(flat) == len(set(flat)) == 200
    assert store.feeds.claim_due(time.time() + 1, lease=600) == []


def test_schedule_sync_drops_removed_feeds(store: Store) -> None:
    store.feeds.sync_schedule([("a", 60), ("b", 60)])
    store.feeds.sync_schedule([("b", 60)])
    assert store.feeds.claim_due(time.time() + 1, lease=60) == ["b"]


def test_delivery_claim_is_exclusive(store: Store) -> None:
    token = store.records.claim("a1")
    assert token and not store.records.claim("a1")
    store.records.release_claim("a1", "not-the-token")      # only its holder releases a claim
    assert not store.records.claim("a1")
    store.records.release_claim("a1", token)
    assert store.records.claim("a1")


def test_a_claim_lapses_unless_its_holder_extends_it(store: Store) -> None:
    token = store.records.claim("a2", ttl=0.3)
    assert token and not store.records.extend_claim("a2", "another", 0.3)
    time.sleep(0.45)
    mine = store.records.claim("a2", ttl=0.3)          # lapsed: a worker died holding it
    assert mine and not store.records.extend_claim("a2", token, 5)   # the dead one's is gone
    assert store.records.extend_claim("a2", mine, 5)
    time.sleep(0.45)
    assert not store.records.claim("a2")               # extended: still held


def test_a_claim_is_kept_while_its_attempt_lives(store: Store) -> None:
    """An attempt the deadline cannot cut (a DNS lookup that hangs) outlives the claim's own
    life: the claim is extended meanwhile, so no other worker sends the alert at once."""
    from worker.pipeline import _claim_kept

    token = store.records.claim("a3", ttl=0.6)
    assert token
    taken_meanwhile = []
    with _claim_kept(store.records, "a3", token, 0.6):
        for _ in range(6):                              # 1.8 s: three lives of the claim
            time.sleep(0.3)
            taken_meanwhile.append(store.records.claim("a3", ttl=0.6))
    assert taken_meanwhile == [None] * 6
    time.sleep(0.7)
    assert store.records.claim("a3")                   # no longer extended once it ended


def test_a_late_claim_does_not_send_again(tmp_path, redis_url, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Task B reads "pending", then gets the claim only after task A delivered and released
    it (a retry due and a lost-task sweep enqueue the same alert): B must not send again."""
    from tests.conftest import runtime_for
    from worker import pipeline

    rt = runtime_for(tmp_path, """\
        subscribers:
          - id: desk
            outbox: out
            topics: [hostage-releases]
        """, redis_url)
    alert = Alert("race1", "desk", "s1", entry(1), (Match("hostage-releases", "H", 1.0),),
                  datetime.now(UTC))
    assert rt.store.records.create_alert(alert, origin="f1:e1") == 1
    a_done, b_waiting = threading.Event(), threading.Event()
    real_claim = rt.store.records.claim

    def claim(alert_id: str, ttl: float = 300) -> str | None:
        if threading.current_thread().name == "B":
            b_waiting.set()
            a_done.wait(10)                   # A delivers and releases meanwhile
        return real_claim(alert_id, ttl)

    monkeypatch.setattr(rt.store.records, "claim", claim)
    results: dict[str, str] = {}
    b = threading.Thread(name="B", target=lambda: results.update(
        B=pipeline.deliver_alert(rt.deliverer, "race1").status))
    b.start()
    assert b_waiting.wait(10)                 # B has read the state and waits for the claim
    results["A"] = pipeline.deliver_alert(rt.deliverer, "race1").status
    a_done.set()
    b.join(10)
    assert results == {"A": "delivered", "B": "skipped"}
    assert len(list((tmp_path / "out").glob("*.json"))) == 1


def test_counters_are_labelled_by_field_and_old_ones_move_in(store: Store) -> None:
    """A subscriber id with ':' in it, or named like a channel, is a label, never parsed."""
    store.stats.add("created", "team:desk")
    store.stats.add("created", "webhook")
    store.stats.add("polls", "ok", 2)
    store.stats.count("entries_new", 5)
    store.stats.observe("poll_duration", 0.3)
    before = store.stats.totals()
    assert before.created == {"team:desk": 1, "webhook": 1} and before.polls == {"ok": 2}
    assert before.histograms["poll_duration"]["0.5"] == 1
    store.stats.add("polls", "ok")
    assert store.stats.totals().since(before).polls == {"ok": 1}
    # Counters of newswatch <= 0.1, all in one hash, names to split: moved once.
    store.r.hset(store.k("stats"), mapping={"polls:error": 3, "alerts:a:b:created": 2,
                                            "alerts:webhook:dead": 1, "matches:t-1": 4,
                                            "hist:poll_duration:count": 7,
                                            "entries:new": 10, "push:received": 1})
    assert store.stats.upgrade() == 7 and store.stats.upgrade() == 0
    after = store.stats.totals()
    assert after.polls == {"ok": 3, "error": 3} and after.created["a:b"] == 2
    assert after.dead == {"webhook": 1} and after.matches == {"t-1": 4}
    assert after.counts == {"entries_new": 15, "push_received": 1}
    assert after.histograms["poll_duration"]["count"] == 8


def test_a_processed_entry_leaves_only_its_seen_mark_and_stream_record(store: Store) -> None:
    """After processing, an entry's data goes; it stays seen (a compact field of its feed's
    hash), and a seen key written by newswatch <= 0.1 is still honoured."""
    keys = store.entries.add_new([entry(1), entry(2)])
    store.entries.done(*keys)
    assert store.entries.load(keys[0]) is None
    assert store.entries.add_new([entry(1), entry(2)]) == []                # still seen
    [recent] = list(store.entries.recent(0))
    assert recent == [entry(1), entry(2)]                                   # backtests
    legacy = entry(9)
    store.r.set(store.k("seen", store.entries.key(legacy)), "1", ex=60)     # 0.1's mark
    assert store.entries.add_new([legacy]) == []
    assert store.r.ttl(store.k("seenby", "f1")) > 0


def test_old_seen_marks_are_swept_once_a_feed_has_many(store: Store,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.store.entries.SEEN_TRIM", 3)
    store.entries.add_new([entry(n) for n in range(1, 4)])
    seen = store.k("seenby", "f1")
    store.r.hset(seen, mapping={"old1": 1, "old2": 2})          # marks from days long gone
    store.entries.add_new([entry(4)])
    assert set(store.r.hkeys(seen)) == {store.entries.key(entry(n)).rpartition(":")[2]
                                        for n in range(1, 5)}
