"""Material updates alert again, marked as updates, only for subscribers who opted in."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from tests.conftest import runtime_for
from tests.servers import FeedServer, Served
from worker import pipeline

URL = "https://wire.example/world/gaza-talks"


def item(guid: str, title: str, link: str = URL) -> bytes:
    return (f"<item><title>{title}</title><link>{link}</link><guid>{guid}</guid>"
            "<description>Mediators met the delegations.</description></item>").encode()


def feed(*items: bytes) -> bytes:
    return b"<rss version='2.0'><channel><title>Wire</title>" + b"".join(items) + \
        b"</channel></rss>"


def test_updates_are_opt_in_material_and_capped(tmp_path: Path, feed_server: FeedServer,
                                                redis_url: str) -> None:
    first = item("1", "Gaza ceasefire talks resume in Cairo")
    feed_server.files["/wire.xml"] = Served(feed(first))
    rt = runtime_for(tmp_path, f"""\
        feeds:
          - url: {feed_server.url('/wire.xml')}
        subscribers:
          - id: watcher
            outbox: a
            topics: [ceasefire-talks, hostage-releases]
            updates: true
          - id: quiet
            outbox: b
            topics: [ceasefire-talks, hostage-releases]
        """, redis_url)

    def cycle(*items: bytes) -> list[tuple[str, bool, str]]:
        feed_server.files["/wire.xml"] = Served(feed(*items))
        outcome = pipeline.poll_feed(rt.poller, rt.config.feeds[0].id)
        out = []
        for alert_id in pipeline.process_entries(rt.processor, list(outcome.new_entries)):
            record = rt.store.records.load_alert(alert_id)
            assert record is not None
            out.append((record.alert.subscriber_id, record.alert.update,
                        record.alert.entry.title))
        return out

    assert sorted(cycle(first)) == [("quiet", False, "Gaza ceasefire talks resume in Cairo"),
                                    ("watcher", False, "Gaza ceasefire talks resume in Cairo")]
    # The same page, republished with the same headline: nothing new for anyone.
    assert cycle(first, item("2", "Gaza ceasefire talks resume in Cairo")) == []
    # The page's headline moved on: an update, for the subscriber who asked for them.
    deal = item("3", "Israel and Hamas agree Gaza ceasefire deal, hostages to be freed")
    assert cycle(first, deal) == [("watcher", True, "Israel and Hamas agree Gaza ceasefire "
                                                    "deal, hostages to be freed")]
    # At most three updates per story.
    more = [item(str(n), f"Ceasefire latest {n}: mediators report progress on phase {n}")
            for n in range(4, 9)]
    updates = cycle(first, deal, *more)
    assert len(updates) == 2 and all(u[:2] == ("watcher", True) for u in updates)
    records = [rt.store.records.load_alert(a) for a in rt.store.records.alerts_since(0)]
    update_id = next(r.alert.id for r in records if r is not None and r.alert.update)
    assert pipeline.deliver_alert(rt.deliverer, update_id).status == "delivered"
    [eml] = (tmp_path / "a").glob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["Subject"].startswith("[newswatch] Update · Ceasefire talks")
    # In the story's thread: a reply to the alert that told of it.
    told = next(r.alert for r in records if r is not None and not r.alert.update
                and r.alert.subscriber_id == "watcher")
    assert message["In-Reply-To"] == f"<{told.id}@newswatch>"
