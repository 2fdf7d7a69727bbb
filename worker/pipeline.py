"""The story of newswatch, stage by stage: poll feeds (polling.py), process their new entries
(classify, cluster into stories, fan out alerts: here), deliver (delivery.py), and the upkeep
that finds work a dead worker left. Each stage is one call; Celery tasks wrap these functions.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from . import digest, feedback, stories, websub
from .classify import Classifier
from .config import Config
from .delivery import CLAIM_MARGIN, Deliverer, DeliveryOutcome, _claim_kept, deliver_alert
from .errors import NewswatchError
from .logs import alert_fields
from .models import Alert, Entry, Match
from .polling import CLAIM_LEASE, Poller, PollOutcome, due_feeds, poll_feed, poll_feeds
from .store import DigestBucket, Store

__all__ = ["CLAIM_LEASE", "CLAIM_MARGIN", "Deliverer", "DeliveryOutcome", "DueWork",
           "PollOutcome", "Poller", "Processor", "_claim_kept", "alert_id", "assign_story",
           "close_digests", "deliver_alert", "due_feeds", "due_work", "fan_out", "poll_feed",
           "poll_feeds", "process_entries"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Processor:
    """What processing uses, and nothing else: the store, the classifier in force (asked per
    batch: a retrained topic model is picked up between batches) and the config's subscribers
    and settings."""

    store: Store
    config: Config
    classifier: Callable[[], Classifier]


def process_entries(proc: Processor, entry_keys: list[str]) -> list[str]:
    """Classify each new entry; fan matches out to subscribers. Returns alerts to deliver."""
    to_deliver: list[str] = []
    loaded = zip(entry_keys, proc.store.entries.load_many(entry_keys), strict=True)
    entries = [(key, entry) for key, entry in loaded if entry is not None]
    classifier = proc.classifier()
    found = classifier.classify_many([(e.title, e.summary, e.lang) for _, e in entries])
    for (key, entry), matches in zip(entries, found, strict=True):
        for m in matches:
            proc.store.stats.add("matches", m.topic_id)
        if matches:
            to_deliver += fan_out(proc, key, entry, matches)
    proc.store.entries.done(*entry_keys)
    return to_deliver


def fan_out(proc: Processor, entry_key: str, entry: Entry, matches: list[Match]) -> list[str]:
    """One alert per (subscriber, story), naming every topic of theirs that matched."""
    story_id = assign_story(proc, entry_key, entry)
    now = datetime.now(UTC)
    out = []
    for sub in proc.config.subscribers:
        mine = tuple(m for m in matches if m.topic_id in sub.topics)
        if not mine:
            continue
        alert = Alert(alert_id(sub.id, story_id), sub.id, story_id, entry, mine, now)
        if sub.digest != "none":      # held for the digest of the period it arrives in
            period = digest.period_of(now, sub.digest, sub.timezone)
            created = proc.store.records.create_alert(alert, origin=entry_key, hold=DigestBucket(
                sub.id, period.kind, int(period.start.timestamp()), period.end.timestamp()))
        else:
            created = proc.store.records.create_alert(alert, origin=entry_key)
            if created:
                out.append(alert.id)
            elif sub.updates:
                out += _update(proc, alert, entry_key)
        if created == 1:
            proc.store.stats.add("created", sub.id)
            log.debug("alert %s for %s (%s): %s", alert.id, sub.id, sub.channel, entry.title,
                     extra=alert_fields(alert.id, sub.id, sub.channel, story=story_id,
                                        feed=entry.feed_id, outcome="created",
                                        topics=[m.topic_id for m in mine]))
    return out


def _update(proc: Processor, alert: Alert, entry_key: str) -> list[str]:
    """An update alert for a subscriber who opted in, when this copy is material news."""
    first = proc.store.records.load_alert(alert.id)
    if first is None or not stories.material_update(
            first.alert.entry, {m.topic_id for m in first.alert.matches},
            alert.entry, {m.topic_id for m in alert.matches}):
        return []
    if not proc.store.records.take_update_slot(alert.subscriber_id, alert.story_id,
                                             stories.MAX_UPDATES):
        return []
    update = replace(alert, id=alert_id(alert.subscriber_id, f"{alert.story_id}\n{entry_key}"),
                     update=True)
    return [update.id] if proc.store.records.create_alert(update, origin=entry_key) else []


def alert_id(subscriber_id: str, story_id: str) -> str:
    return hashlib.sha256(f"{subscriber_id}\n{story_id}".encode()).hexdigest()[:24]


def assign_story(proc: Processor, entry_key: str, entry: Entry) -> str:
    """The story this entry belongs to: same URL, else the story it resembles (stories.py),
    else a new story. Decided optimistically: what the decision read is watched, and if another
    worker recorded a copy under the same words meanwhile, it is decided again with that copy
    in view (so two copies arriving at once cannot start two stories)."""
    classifier = proc.classifier()
    embedder = classifier.embedder
    vector = None
    if embedder is not None:
        vector = stories.embedder_of(embedder)([stories.embedding_text(entry)])[0]
    fp = stories.fingerprint(entry, vector, stories.Vocabulary(*classifier.vocabulary))
    words = sorted(fp.words)
    for _ in range(STORY_ATTEMPTS):
        story_id, seen, counts = proc.store.stories.lookup(entry.link, fp.words)
        if story_id is not None:            # a copy of a page already seen
            proc.store.stories.add_copy(story_id, entry, entry_key=entry_key, words=words)
            return story_id
        df = stories.DocFreq(seen, counts)
        df.add(fp.words)
        scorer = stories.Scorer(fp, df, proc.config.settings.story_window_hours)
        index = scorer.lookup_words()
        with proc.store.stories.claim(entry.link, index) as claim:
            known, found = claim.read(stories.candidates,
                                      per_word=stories.STORIES_READ_PER_WORD)
            story_id = known or scorer.best(
                (sid, [stories.Member.loads(raw) for raw in sigs]) for sid, sigs in found)
            story_id = story_id or "s" + hashlib.sha1(entry_key.encode()).hexdigest()[:16]
            if claim.commit(story_id, entry, entry_key=entry_key, words=words,
                            signature=None if known else scorer.member.dumps(),
                            index=() if known else index, max_members=stories.MAX_MEMBERS):
                return story_id
    raise NewswatchError(f"entry {entry_key}: no story decided in {STORY_ATTEMPTS} attempts "
                         "(other workers kept changing its words' stories)")


STORY_ATTEMPTS = 50       # each failed attempt means another worker's copy was recorded


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
            zone = config.subscriber(subscriber_id).timezone
        except KeyError:
            zone = "UTC"              # delivery dead-letters it with the reason
        period = digest.period_of(datetime.fromtimestamp(bucket.start, UTC), bucket.kind, zone)
        items = []
        for alert_id in alert_ids:
            record = store.records.load_alert(alert_id)
            if record is not None:
                copies = list(store.stories.entries(record.alert.story_id).values())
                items.append((record.alert, copies))
        if items:
            body = digest.digest_body(subscriber_id, period, items,
                                      partial(feedback.links, config.settings))
            store.records.create_digest(body["id"], body, subscriber_id)
            out.append(body["id"])
        store.records.close_digest_bucket(bucket, alert_ids)
    return out
