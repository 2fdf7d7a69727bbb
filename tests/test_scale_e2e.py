"""Several schedulers and workers on one Redis: 200 feeds, several cycles, no feed polled twice
at once, no alert twice."""

from __future__ import annotations

import os
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis

from tests.conftest import SECRET, celery_beat, celery_worker, stop, write_config
from tests.servers import FeedServer, Served, WebhookReceiver, wait_for

pytestmark = pytest.mark.e2e
FEEDS = 200
WORDS = ("amber birch cedar delta ember fjord garnet harbor indigo juniper kestrel lagoon "
         "marble nectar onyx pebble quartz raven sierra tundra umber violet willow xenon "
         "yarrow zephyr acorn basalt cobalt dune").split()


NAMES = [f"{x}{y}" for x in WORDS for y in WORDS]      # 900 made-up place names


def story(n: int, rng: random.Random) -> bytes:
    """Feed n's own story: its words are its own, so no two stories look alike."""
    a, b, c = NAMES[3 * n], NAMES[3 * n + 1], NAMES[3 * n + 2]
    return (f"<rss version='2.0'><channel><title>Outlet {n}</title><item>"
            f"<title>{a.title()} {b} hostages freed</title>"
            f"<link>https://outlet{n}.example/{a}</link><guid>x{n}</guid>"
            f"<description>{c.title()} {a} {b}.</description></item>"
            "</channel></rss>").encode()


def test_two_schedulers_two_workers_200_feeds(tmp_path: Path, feed_server: FeedServer,
                                              receiver: WebhookReceiver,
                                              redis_url: str) -> None:
    rng = random.Random(3)
    for n in range(FEEDS):
        feed_server.files[f"/f{n}.xml"] = Served(story(n, rng))
    feeds = "".join(f"          - url: {feed_server.url(f'/f{n}.xml')}\n" for n in range(FEEDS))
    config = write_config(tmp_path, f"""\
        feeds:
{feeds}
        subscribers:
          - id: ops
            webhook: {receiver.url}
            secret: {SECRET}
            topics: [hostage-releases]
        settings:
          poll_interval: 10
          min_interval: 10
          max_interval: 10
        """)
    env = dict(os.environ, NEWSWATCH_REDIS_URL=redis_url, NEWSWATCH_CONFIG=str(config))
    procs = [celery_worker(env, f"w{i}", concurrency=8) for i in range(2)]
    procs += [celery_beat(env, tmp_path / f"beat{i}") for i in range(2)]
    start = time.time()
    try:
        state = redis.Redis.from_url(redis_url, decode_responses=True)
        # Three cycles at a 10 s interval: every feed polled at least three times.
        assert wait_for(lambda: min(_polls(feed_server).get(f"/f{n}.xml", 0)
                                    for n in range(FEEDS)) >= 3, 90)
        assert wait_for(lambda: state.scard("nw:pending:alerts") == 0
                        and len(receiver.received) >= FEEDS, 30)
    finally:
        for p in procs:
            stop(p)

    # Invariants, not this machine's speed: one feed is never polled twice at once; every
    # feed is polled in every cycle (at least three each, above) and never twice in one (no
    # more polls than the window holds cycles, plus the first); each story alerted once.
    assert feed_server.max_path_in_flight == 1
    window = time.time() - start
    most = max(_polls(feed_server).values())
    assert most <= window / 10 + 2, (most, window)
    ids = [h.headers["webhook-id"] for h in receiver.received]
    assert len(ids) == len(set(ids)) == FEEDS        # one alert per story, none twice


def _polls(server: FeedServer) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for path, _ in server.request_times:
        counts[path] += 1
    return counts
