"""Polling many feeds at once: concurrency, per-host politeness, parsing over the cores."""

from __future__ import annotations

import uuid
from itertools import pairwise
from pathlib import Path

import pytest

from tests.conftest import SEEDS, runtime_for
from tests.servers import FeedServer, Served
from worker import pipeline
from worker.fetch import Limits, Validators, fetch_many
from worker.parsepool import POOL_FROM_FEEDS, Parser, StoreSpec, Taken
from worker.store.base import short_hash as _h

LEVANT = (SEEDS / "levant-wire.xml").read_bytes()


def rss(n: int) -> bytes:
    items = "".join(f"<item><title>Story {n}-{i}</title><guid>g{n}-{i}</guid></item>"
                    for i in range(3))
    return f"<rss version='2.0'><channel><title>F{n}</title>{items}</channel></rss>".encode()


def test_requests_to_many_hosts_run_at_once() -> None:
    """40 feeds on 8 hosts, each answer taking 0.3 s: in flight together, not one by one
    (each host sees its five at once, within its cap), however fast this machine is."""
    servers = [FeedServer(host=f"127.0.0.{i + 2}") for i in range(8)]
    try:
        urls = []
        for n in range(40):
            server = servers[n % 8]
            server.files[f"/f{n}.xml"] = Served(rss(n), delay=0.3)
            urls.append(server.url(f"/f{n}.xml"))
        results = fetch_many([(u, Validators()) for u in urls],
                             Limits(allow_private=True, per_host=5))
        assert [r.status for r in results] == [200] * 40         # type: ignore[union-attr]
        assert all(1 < s.max_in_flight <= 5 for s in servers), \
            [s.max_in_flight for s in servers]
    finally:
        for server in servers:
            server.close()


def test_per_host_cap_and_gap(feed_server: FeedServer) -> None:
    for n in range(6):
        feed_server.files[f"/f{n}.xml"] = Served(rss(n), delay=0.2)
    requests = [(feed_server.url(f"/f{n}.xml"), Validators()) for n in range(6)]
    fetch_many(requests, Limits(allow_private=True, per_host=2))
    assert feed_server.max_in_flight == 2


def test_the_host_gate_spaces_starts() -> None:
    """Starts to one host at least `gap` apart, measured where the gate lets them go (a
    server's arrival times also carry the network's and the machine's delays)."""
    import asyncio

    from worker.aio import HostGate

    async def run() -> list[float]:
        gate, starts = HostGate(per_host=6, gap=0.15), []
        loop = asyncio.get_running_loop()

        async def one() -> None:
            async with gate.turn("a.example"):
                starts.append(loop.time())

        await asyncio.gather(*(one() for _ in range(6)))
        return sorted(starts)

    gaps = [b - a for a, b in pairwise(asyncio.run(run()))]
    assert len(gaps) == 5 and min(gaps) >= 0.15 - 1e-3, gaps


def test_one_batch_polls_every_feed_and_isolates_failures(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    for n in range(12):
        feed_server.files[f"/f{n}.xml"] = Served(rss(n))
    feed_server.files["/broken.xml"] = Served(b"<html>not a feed</html>", "text/html")
    feeds = "".join(f"  - url: {feed_server.url(f'/f{n}.xml')}\n" for n in range(12))
    rt = runtime_for(tmp_path, f"feeds:\n{feeds}  - url: {feed_server.url('/broken.xml')}\n"
                               "  - url: http://127.0.0.1:9/refused.xml\n", redis_url)
    outcomes = pipeline.poll_feeds(rt.poller, [f.id for f in rt.config.feeds])
    assert [o.status for o in outcomes] == ["ok"] * 12 + ["error", "error"]
    assert all(len(o.new_entries) == 3 for o in outcomes[:12])
    assert "not a readable feed" in (outcomes[12].error or "")
    assert "ConnectError" in (outcomes[13].error or "")
    again = pipeline.poll_feeds(rt.poller, [f.id for f in rt.config.feeds[:12]])
    assert {o.status for o in again} == {"not_modified"}


def test_a_config_of_few_feeds_never_waits_for_the_parser_pool(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    """Starting the pool costs more than parsing a few feeds: a config of fewer than
    POOL_FROM_FEEDS feeds parses its batches in threads; one of as many uses the pool."""
    for n in range(POOL_FROM_FEEDS):
        feed_server.files[f"/f{n}.xml"] = Served(rss(n))

    def polled(feeds: int) -> tuple[list[str], bool]:
        listed = "".join(f"  - url: {feed_server.url(f'/f{n}.xml')}\n" for n in range(feeds))
        (tmp_path / str(feeds)).mkdir()
        rt = runtime_for(tmp_path / str(feeds), f"feeds:\n{listed}", redis_url)
        assert rt.parser.processes > 1                     # a pool, by default
        outcomes = pipeline.poll_feeds(rt.poller, [f.id for f in rt.config.feeds])
        return [o.status for o in outcomes], rt.parser._pool is not None

    assert polled(POOL_FROM_FEEDS - 1) == (["ok"] * (POOL_FROM_FEEDS - 1), False)
    assert polled(POOL_FROM_FEEDS) == (["ok"] * POOL_FROM_FEEDS, True)


def parser(redis_url: str, processes: int) -> Parser:
    spec = StoreSpec(redis_url, f"t{uuid.uuid4().hex[:8]}")
    return Parser(spec.connect(), spec, processes)


def test_intake_in_processes_gives_what_intake_inline_gives(redis_url: str) -> None:
    bodies = [(rss(n), f"http://x.example/{n}", f"f{n}", f"F{n}", {}) for n in range(10)]
    bodies.append((b"<html>no</html>", "http://x.example/bad", "bad", "Bad", {}))
    bodies.append((LEVANT, "http://x.example/levant", "lv", "Levant", {}))
    pooled = parser(redis_url, 2)
    try:
        in_pool = pooled.take_in_all(bodies, max_entries=1000)
        assert pooled._pool is not None                     # the pool did the work
        again = pooled.take_in_all(bodies[:2], max_entries=1000)
    finally:
        pooled.close()
    inline = parser(redis_url, 0).take_in_all(bodies, max_entries=1000)
    assert [x if isinstance(x, Taken) else str(x) for x in in_pool] == \
        [x if isinstance(x, Taken) else str(x) for x in inline]
    assert in_pool[0] == Taken(3, [f"f0:{h}" for h in (
        _h("g0-0"), _h("g0-1"), _h("g0-2"))])               # stored by the pool process
    assert "not a readable feed" in str(in_pool[10])
    assert [t.new for t in again if isinstance(t, Taken)] == [[], []]    # seen: not new


@pytest.mark.parametrize("processes", [0, 2])
def test_pool_size_setting(redis_url: str, processes: int) -> None:
    intake = parser(redis_url, processes)
    try:
        intake.take_in_all([(rss(n), "u", f"f{n}", "F", {}) for n in range(8)], max_entries=10)
        assert (intake._pool is not None) == (processes > 1)
    finally:
        intake.close()


def test_no_child_processes_means_threads(redis_url: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Where processes cannot be started (a daemonic Celery prefork child), intake goes on in
    threads instead of failing every feed."""
    intake = parser(redis_url, 2)

    def refuse() -> None:
        raise AssertionError("daemonic processes are not allowed to have children")

    monkeypatch.setattr(intake, "_get_pool", refuse)
    taken = intake.take_in_all([(rss(n), "u", f"f{n}", "F", {}) for n in range(6)],
                               max_entries=10)
    assert all(isinstance(t, Taken) and len(t.new) == 3 for t in taken)
    assert intake.processes == 0


def test_a_poll_writes_only_what_changed_of_the_feeds_state(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    """A 304 rewrites the poll's time and status, not the eleven fields it read unchanged
    (fields removed behind its back, which read the same absent, stay absent); what did
    change is written: an error and its count, then their clearing."""
    feed_server.files["/f.xml"] = Served(rss(1))
    rt = runtime_for(tmp_path, f"feeds:\n  - url: {feed_server.url('/f.xml')}\n", redis_url)
    [feed] = rt.config.feeds
    feeds, key = rt.store.feeds, rt.store.feeds.k("feed", feed.id)
    assert pipeline.poll_feed(rt.poller, feed.id).status == "ok"
    first = feeds.state(feed.id)
    assert first.validators.etag and first.last_error is None
    feeds.r.hdel(key, "skipped", "last_error", "error_count")
    assert pipeline.poll_feed(rt.poller, feed.id).status == "not_modified"
    second = feeds.state(feed.id)
    assert not any(feeds.r.hexists(key, f) for f in ("skipped", "last_error", "error_count"))
    assert second.validators == first.validators
    assert (second.interval or 0) > (first.interval or 0)      # nothing new: it backs off
    assert second.last_status == "not_modified" and second.error_count == 0
    assert (second.last_poll_at or 0) > (first.last_poll_at or 0)

    feed_server.files["/f.xml"] = Served(b"<html>not a feed</html>", "text/html")
    assert pipeline.poll_feed(rt.poller, feed.id).status == "error"
    failed = feeds.state(feed.id)
    assert failed.error_count == 1 and "not a readable feed" in (failed.last_error or "")
    feed_server.files["/f.xml"] = Served(rss(2))
    assert pipeline.poll_feed(rt.poller, feed.id).status == "ok"
    healed = feeds.state(feed.id)
    assert healed.error_count == 0 and healed.last_error is None
    assert healed.validators.etag != first.validators.etag
