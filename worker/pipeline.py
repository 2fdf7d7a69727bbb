"""The story of newswatch, stage by stage: poll feeds (polling.py), process their new entries
(classify, cluster into stories, fan out alerts: here), deliver (delivery.py), and the upkeep
that finds work a dead worker left. Each stage is one call; Celery tasks wrap these functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from . import digest, feedback, stories, websub
from .bodies import DigestMaybe
from .classify import Classifier
from .classify.scoring import Miss
from .config import Config, SubscriberConfig
from .delivery import CLAIM_MARGIN, Deliverer, DeliveryOutcome, _claim_kept, deliver_alert
from .logs import alert_fields
from .models import Alert, Entry, Match, Related, iso
from .polling import CLAIM_LEASE, Poller, PollOutcome, due_feeds, poll_feed, poll_feeds
from .store import DigestBucket, Near, Store, Writes

__all__ = ["CLAIM_LEASE", "CLAIM_MARGIN", "Deliverer", "DeliveryOutcome", "DueWork",
           "PollOutcome", "Poller", "Processor", "_claim_kept", "alert_id", "assign_story",
           "batches", "close_digests", "deliver_alert", "due_feeds", "due_work", "fan_out",
           "offer_maybe", "poll_feed", "poll_feeds", "process_entries"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processor:
    """What processing uses, and nothing else: the store, the classifier in force (asked per
    batch: a retrained topic model is picked up between batches) and the config's subscribers
    and settings."""

    store: Store
    config: Config
    classifier: Callable[[], Classifier]


BATCH = 50       # entries one processing task takes at most: one claim, one write round trip
SPREAD = 4       # a smaller burst is shared by this many tasks (a worker's default threads) ...
MIN_BATCH = 4    # ... of at least this many entries each


def batches(entry_keys: list[str]) -> list[list[str]]:
    """New entries cut into processing tasks. A large intake goes in tasks of BATCH; a small
    burst is spread over SPREAD tasks, so that the worker's threads classify it side by side
    (the model embeds outside the GIL) instead of one thread taking it all: on the seeds,
    `run --once` cold 1.66-1.78 -> 1.55-1.58 s median (17 entries: one task, or four of 4-5)."""
    size = min(BATCH, max(MIN_BATCH, math.ceil(len(entry_keys) / SPREAD)))
    return [entry_keys[i:i + size] for i in range(0, len(entry_keys), size)]


def process_entries(proc: Processor, entry_keys: list[str]) -> list[str]:
    """Classify each new entry; fan matches out to subscribers. Returns alerts to deliver."""
    to_deliver: list[str] = []
    # Only what no other worker is processing: a sweep re-enqueues a slow batch's entries.
    claimed = proc.store.entries.claim(entry_keys, proc.config.settings.redeliver_after)
    entry_keys = [key for key, _ in claimed]
    # The batch's counters go with its entries' release, in one round trip (and, when it
    # fails, the counts of what it did: the alerts it created stay created).
    batch = Writes(proc.store.db)
    try:
        entries = [(key, entry) for key, entry in claimed if entry is not None]
        classifier = proc.classifier()
        found = classifier.decide_many([(e.title, e.summary, e.lang) for _, e in entries])
        for (key, entry), decided in zip(entries, found, strict=True):
            for m in decided.matches:
                proc.store.stats.add("matches", m.topic_id, writes=batch)
            if decided.matches:
                to_deliver += fan_out(proc, key, entry, decided.matches, batch)
            if decided.missed:
                offer_maybe(proc, key, entry, decided.missed, batch)
        proc.store.entries.done(*entry_keys, writes=batch)
        batch.send()
    except BaseException:
        with contextlib.suppress(Exception):       # a retry takes them up at once
            proc.store.entries.release(*entry_keys)
        with contextlib.suppress(Exception):
            batch.send()
        raise
    return to_deliver


def fan_out(proc: Processor, entry_key: str, entry: Entry, matches: list[Match],
            writes: Writes | None = None) -> list[str]:
    """One alert per (subscriber, story), naming every topic of theirs that matched; a story
    related to an earlier one is alerted in that story's thread. Counters go in `writes`
    (sent by the caller), else at once."""
    placed = assign_story(proc, entry_key, entry)
    story_id = placed.story
    related = _related(proc, placed.related_to) if placed.related_to else None
    now = datetime.now(UTC)
    out = []
    told: set[str] = set()              # topics this report was alerted for, to anyone
    for sub in proc.config.subscribers:
        mine = tuple(m for m in matches if m.topic_id in sub.topics)
        if not mine:
            continue
        alert = Alert(alert_id(sub.id, story_id), sub.id, story_id, entry, mine, now,
                      thread=placed.thread if placed.thread != story_id else None,
                      related=related)
        if placed.thread != story_id:
            first = proc.store.records.first_in_thread(placed.thread, sub.id, alert.id)
            alert = replace(alert, reply_to=first if first != alert.id else None)
        if sub.digest != "none":      # held for the digest of the period it arrives in
            created = proc.store.records.create_alert(alert, origin=entry_key,
                                                      hold=_bucket(sub, now))
        else:
            created = proc.store.records.create_alert(alert, origin=entry_key)
            if created:
                out.append(alert.id)
            elif sub.updates:
                out += _update(proc, alert, entry_key)
        if created == 1:
            told.update(m.topic_id for m in mine)
            if placed.thread == story_id:       # it starts its thread: later ones reply to it
                proc.store.records.first_in_thread(story_id, sub.id, alert.id)
            proc.store.stats.add("created", sub.id, writes=writes)
            log.debug("alert %s for %s (%s): %s", alert.id, sub.id, sub.channel, entry.title,
                      extra=alert_fields(alert.id, sub.id, sub.channel, story=story_id,
                                         feed=entry.feed_id, outcome="created",
                                         topics=[m.topic_id for m in mine],
                                         story_thread=placed.thread))
    for topic_id in sorted(told):
        proc.store.stats.add("stories", topic_id, writes=writes)
    return out


def offer_maybe(proc: Processor, entry_key: str, entry: Entry, missed: dict[str, Miss],
                writes: Writes | None = None) -> None:
    """An entry some topics scored under their thresholds, offered to the subscribers
    of those topics who asked for "maybe" lines (the nearest are kept): in their digest, or
    for a subscriber alerted at once, in a daily message of them."""
    now = datetime.now(UTC)
    for sub in proc.config.subscribers:
        if not sub.maybe:
            continue
        mine = [miss for topic_id, miss in missed.items() if topic_id in sub.topics]
        if not mine:
            continue
        bucket = _bucket(sub, now)
        for miss in mine:           # twice as many kept: the digest leaves some out
            proc.store.maybes.offer(bucket, miss.topic_id, Near(
                entry_key, entry, miss.score, miss.threshold, miss.by), 2 * sub.maybe, writes)


def _bucket(sub: SubscriberConfig, now: datetime) -> DigestBucket:
    """The digest bucket of the period `now` is in: the subscriber's digest, or for one
    alerted at once, the day's message of "maybe" lines."""
    period = digest.period_of(now, sub.digest if sub.digest != "none" else "daily",
                              sub.timezone)
    return DigestBucket(sub.id, period.kind, int(period.start.timestamp()),
                        period.end.timestamp())


def _related(proc: Processor, story_id: str) -> Related:
    """The story a report resembles, as its alert names it: its first copy's headline."""
    first = min(proc.store.stories.entries(story_id).values(), default=None,
                key=lambda e: e.published.timestamp() if e.published else math.inf)
    return Related(story_id, first.title if first else "", first.link if first else None)


def _update(proc: Processor, alert: Alert, entry_key: str) -> list[str]:
    """An update alert for a subscriber who opted in, when this copy is material news: in the
    story's thread, a reply to the alert that told of it."""
    first = proc.store.records.load_alert(alert.id)
    if first is None or not stories.material_update(
            first.alert.entry, {m.topic_id for m in first.alert.matches},
            alert.entry, {m.topic_id for m in alert.matches}):
        return []
    if not proc.store.records.take_update_slot(alert.subscriber_id, alert.story_id,
                                               stories.MAX_UPDATES):
        return []
    update = replace(alert, id=alert_id(alert.subscriber_id, f"{alert.story_id}\n{entry_key}"),
                     update=True, thread=first.alert.thread, related=first.alert.related,
                     reply_to=first.alert.reply_to or first.alert.id)
    return [update.id] if proc.store.records.create_alert(update, origin=entry_key) else []


def alert_id(subscriber_id: str, story_id: str) -> str:
    return hashlib.sha256(f"{subscriber_id}\n{story_id}".encode()).hexdigest()[:24]


def assign_story(proc: Processor, entry_key: str, entry: Entry) -> stories.Assignment:
    """The story this entry belongs to, and the thread it is in (stories.assign, on the Redis
    index every worker shares). The embedding is the one classification computed (cached)."""
    classifier = proc.classifier()
    embedder = classifier.embedder
    vector = None
    if embedder is not None:
        vector = stories.embedder_of(embedder)([stories.embedding_text(entry)])[0]
    # An undated report is dated, for its story, when it is placed (seconds after it was
    # seen): it is today's news, and is weighed as such. Offline (`newswatch stories`) an
    # undated item stays undated, and needs more (decide.RULE.undated).
    dated = entry if entry.published else replace(entry, published=datetime.now(UTC))
    fp = stories.fingerprint(dated, vector, stories.Vocabulary(*classifier.vocabulary))
    return stories.assign(proc.store.stories, entry_key, entry, fp,
                          window_hours=proc.config.settings.story_window_hours,
                          new_id=stories.new_story_id(entry_key))


@dataclass(frozen=True)
class DueWork:
    alerts: tuple[str, ...]          # to deliver now: due retries and lost tasks
    entries: tuple[str, ...]         # to process again: their task was lost
    renewals: tuple[str, ...] = ()   # feeds whose WebSub lease ends soon


def due_work(store: Store, config: Config, now: float | None = None, *,
             idle: float | None = None) -> DueWork:
    """What `maintain` re-enqueues: retries whose time has come, and work a dead worker left
    (idle longer than `idle`, by default settings.redeliver_after; a claimed alert is never
    taken). Processing and delivery are idempotent, so an extra enqueue costs a no-op at
    worst."""
    now = now or time.time()
    store.entries.trim_recent(now)
    cutoff = now - (config.settings.redeliver_after if idle is None else idle)
    alerts = close_digests(store, config, now) + store.records.claim_due_retries(now) + \
        store.records.stale(cutoff)
    renewals = (websub.due_renewals(store, config, now)
                if config.settings.websub_callback else [])
    return DueWork(tuple(dict.fromkeys(alerts)), tuple(store.entries.stale(cutoff)),
                   tuple(renewals))


def close_digests(store: Store, config: Config, now: float) -> list[str]:
    """Turn each digest period that is over into one digest record, to deliver. Safe to
    repeat after a crash at any point: the record's id comes from the period, it is created
    once, and the bucket is removed only after it exists."""
    out = []
    for bucket, alert_ids in store.records.due_digest_buckets(now):
        subscriber_id = bucket.subscriber_id
        try:
            sub: SubscriberConfig | None = config.subscriber(subscriber_id)
        except KeyError:
            sub = None                # delivery dead-letters it with the reason
        period = digest.period_of(datetime.fromtimestamp(bucket.start, UTC), bucket.kind,
                                  sub.timezone if sub else "UTC")
        items = []
        for alert_id in alert_ids:
            record = store.records.load_alert(alert_id)
            if record is not None:
                copies = list(store.stories.entries(record.alert.story_id).values())
                items.append((record.alert, copies))
        near = maybe_lines(store, config, sub, bucket, period, items) if sub else []
        if items or near:
            body = digest.digest_body(subscriber_id, period, items,
                                      partial(feedback.links, config.settings), near)
            if store.records.create_digest(body["id"], body, subscriber_id) == 1:
                for topic_id, _, lines in near:
                    store.stats.add("maybe", topic_id, len(lines))
            out.append(body["id"])
        store.records.close_digest_bucket(bucket, alert_ids)
        if sub is not None:
            store.maybes.forget(bucket, list(sub.topics))
    return out


def maybe_lines(store: Store, config: Config, sub: SubscriberConfig, bucket: DigestBucket,
                period: digest.Period, items: list[tuple[Alert, list[Entry]]]
                ) -> list[tuple[str, str, list[DigestMaybe]]]:
    """A digest's "maybe" lines, (topic id, name, lines) per topic of the subscriber: the
    period's nearest misses, `sub.maybe` at most, leaving out what the digest alerts (an
    entry or a headline of its stories), what the subscriber was alerted of at the same URL,
    and repeated headlines. Each line is kept for as long as its feedback links work."""
    if not sub.maybe:
        return []
    alerted = {e.key for alert, copies in items for e in (alert.entry, *copies)}
    headlines = {_headline(e.title) for alert, copies in items
                 for e in (alert.entry, *copies)}
    ttl = (config.settings.feedback_days + 1) * 86400
    out = []
    for topic_id in sub.topics:
        lines: list[DigestMaybe] = []
        shown = set(headlines)
        for near in store.maybes.nearest(bucket, topic_id):
            if len(lines) == sub.maybe:
                break
            e, headline = near.entry, _headline(near.entry.title)
            if e.key in alerted or headline in shown or _told(store, sub.id, e):
                continue
            shown.add(headline)
            line_id = "m" + hashlib.sha256(
                f"{sub.id}\n{topic_id}\n{near.entry_key}".encode()).hexdigest()[:23]
            store.maybes.show(line_id, {
                "subscriber": sub.id, "topic": topic_id, "entry": e.to_dict(),
                "story": stories.new_story_id(near.entry_key),
                "score": near.score, "threshold": near.threshold, "by": near.by}, ttl)
            line: DigestMaybe = {
                "id": line_id, "title": e.title, "url": e.link, "published": iso(e.published),
                "summary": e.summary, "source": e.source_title, "lang": e.lang,
                "score": near.score, "threshold": near.threshold, "by": near.by}
            if (said := feedback.record_links(config.settings, line_id, [topic_id],
                                              period.end)) is not None:
                line["feedback"] = said
            lines.append(line)
        if lines and topic_id in config.topics:
            out.append((topic_id, config.topics[topic_id].name, lines))
    return out


def _told(store: Store, subscriber_id: str, entry: Entry) -> bool:
    """Whether the subscriber was alerted of the story at this entry's URL (another copy of
    an article, in another feed of its outlet, that the topic did match)."""
    story = store.stories.at_url(entry.link)
    return story is not None and \
        store.records.record_data(alert_id(subscriber_id, story)) is not None


def _headline(title: str) -> str:
    return " ".join(title.casefold().split())
