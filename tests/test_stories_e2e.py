"""One alert per story under concurrency: three outlets, two workers polling at the same time."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from tests.conftest import SECRET, celery_worker, stop, track, write_config
from tests.servers import FeedServer, Served, WebhookReceiver, wait_for
from worker import pipeline
from worker.config import load_config
from worker.runtime import Runtime

pytestmark = pytest.mark.e2e

COPIES = [
    ("Hamas says indirect talks with Israel resume in Qatari capital",
     "https://wire.example/world/doha-talks-resume"),
    ("Hamas: indirect talks with Israel resume in Qatari capital Doha",          # rewrite
     "https://gulf.example/news/doha-talks"),
    ("Hamas says indirect talks with Israel resume in Qatari capital",          # syndicated
     "https://WIRE.example:443/world/doha-talks-resume/amp?utm_source=rss&fbclid=x"),
]


def rss(title: str, link: str, n: int) -> bytes:
    return (f"<rss version='2.0'><channel><title>Outlet {n}</title><item><title>{title}"
            f"</title><link>{link.replace('&', '&amp;')}</link><guid>o{n}-1</guid>"
            "<description>Negotiators met for ceasefire talks; hostages could be released."
            "</description></item></channel></rss>").encode()


def test_three_outlets_two_workers_one_alert(tmp_path: Path, feed_server: FeedServer,
                                             receiver: WebhookReceiver, redis_url: str) -> None:
    for n, (title, link) in enumerate(COPIES):
        feed_server.files[f"/o{n}.xml"] = Served(rss(title, link, n))
    feeds = "".join(f"          - url: {feed_server.url(f'/o{n}.xml')}\n" for n in range(3))
    config = write_config(tmp_path, f"""\
        feeds:
{feeds}
        subscribers:
          - id: ops
            webhook: {receiver.url}
            secret: {SECRET}
            topics: [ceasefire-talks, hostage-releases]
          - id: desk
            outbox: out
            topics: [ceasefire-talks]
          - id: briefing
            outbox: digests
            topics: [ceasefire-talks]
            digest: daily
            timezone: Europe/Paris
        """)
    env = dict(os.environ, NEWSWATCH_REDIS_URL=redis_url, NEWSWATCH_CONFIG=str(config))
    workers = [celery_worker(env, f"w{i}") for i in range(2)]
    try:
        from celery import Celery

        producer = Celery(broker=redis_url)
        for feed in load_config(config).feeds:          # all three at the same moment
            producer.send_task("newswatch.poll_feed", args=[feed.id], queue="poll")
        state = redis.Redis.from_url(redis_url, decode_responses=True)
        assert wait_for(lambda: state.hget("nw:stats:polls", "ok") == "3"
                        and state.zcard("nw:pending:entries") == 0
                        and state.scard("nw:pending:alerts") == 0
                        and len(receiver.received) >= 1, 60)
        # The day is over (as beat's `maintain` would find it tomorrow): one digest, delivered
        # by the workers.
        rt = track(Runtime.create(replace(load_config(config), settings=load_config(
            config).settings.model_copy(update={"redis_url": redis_url}))))
        [digest_id] = pipeline.due_work(rt.store, rt.config, now=time.time() + 2 * 86400).alerts
        producer.send_task("newswatch.deliver", args=[digest_id], queue="deliver")
        assert wait_for(lambda: len(list((tmp_path / "digests").glob("*.json"))) == 1, 30)
    finally:
        for w in workers:
            stop(w)
    assert len(receiver.received) == 1                       # one alert for ops
    assert len(list((tmp_path / "out").glob("*.json"))) == 1  # one for desk
    story_id = receiver.received[0].body["story"]["id"]
    copies = state.hkeys(f"nw:story:{story_id}")
    assert len(copies) == 3                                  # the three copies, one story
    assert Counter(k.split(":")[0] for k in copies).most_common(1)[0][1] == 1
    [digest_file] = (tmp_path / "digests").glob("*.json")
    [topic] = json.loads(digest_file.read_text())["topics"]
    [story] = topic["stories"]
    assert story["id"] == story_id and len(story["sources"]) == 3   # one entry, three outlets
