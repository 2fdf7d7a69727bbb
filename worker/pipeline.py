"""The story of newswatch, stage by stage: poll feeds (polling.py), process their new entries
(classify, cluster into stories, fan out alerts: here), deliver (delivery.py), and the upkeep
that finds work a dead worker left. Each stage is one call; Celery tasks wrap these functions.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from . import digest, feedback, stories, websub
from .delivery import CLAIM_MARGIN, DeliveryOutcome, _claim_kept, deliver_alert
from .errors import NewswatchError
from .logs import alert_fields
from .models import Alert, Entry, Match
from .polling import CLAIM_LEASE, PollOutcome, due_feeds, poll_feed, poll_feeds
from .runtime import Runtime
from .store import DigestBucket

__all__ = ["CLAIM_LEASE", "CLAIM_MARGIN", "DeliveryOutcome", "DueWork", "PollOutcome",
           "_claim_kept", "alert_id", "assign_story", "close_digests", "deliver_alert",
           "due_feeds", "due_work", "fan_out", "poll_feed", "poll_feeds", "process_entries"]

log = logging.getLogger(__name__)


def process_entries(rt: Runtime, entry_keys: list[str]) -> list[str]:
    """Classify each new entry; fan matches out to subscribers. Returns alerts to deliver."""
    to_deliver: list[str] = []
    loaded = zip(entry_keys, rt.store.entries.load_many(entry_keys), strict=True)
    entries = [(key, entry) for key, entry in loaded if entry is not None]
    classifier = rt.current_classifier()
    found = classifier.classify_many([(e.title, e.summary, e.lang) for _, e in entries])
    for (key, entry), matches in zip(entries, found, strict=True):
        for m in matches:
            rt.store.stats.add("matches", m.topic_id)
        if matches:
            to_deliver += fan_out(rt, key, entry, matches)
    rt.store.entries.done(*entry_keys)
    return to_deliver


def fan_out(rt: Runtime, entry_key: str, entry: Entry, matches: list[Match]) -> list[str]:
    """One alert per (subscriber, story), naming every topic of theirs that matched."""
    story_id = assign_story(rt, entry_key, entry)
    now = datetime.now(UTC)
    out = []
    for sub in rt.config.subscribers:
        mine = tuple(m for m in matches if m.topic_id in sub.topics)
        if not mine:
            continue
        alert = Alert(alert_id(sub.id, story_id), sub.id, story_id, entry, mine, now)
        if sub.digest != "none":      # held for the digest of the period it arrives in
            period = digest.period_of(now, sub.digest, sub.timezone)
            created = rt.store.records.create_alert(alert, origin=entry_key, hold=DigestBucket(
                sub.id, period.kind, int(period.start.timestamp()), period.end.timestamp()))
        else:
            created = rt.store.records.create_alert(alert, origin=entry_key)
            if created:
                out.append(alert.id)
            elif sub.updates:
                out += _update(rt, alert, entry_key)
        if created == 1:
            rt.store.stats.add("created", sub.id)
            log.debug("alert %s for %s (%s): %s", alert.id, sub.id, sub.channel, entry.title,
                     extra=alert_fields(alert.id, sub.id, sub.channel, story=story_id,
                                        feed=entry.feed_id, outcome="created",
                                        topics=[m.topic_id for m in mine]))
    return out


def _update(rt: Runtime, alert: Alert, entry_key: str) -> list[str]:
    """An update alert for a subscriber who opted in, when this copy is material news."""
    first = rt.store.records.load_alert(alert.id)
    if first is None or not stories.material_update(
            first.alert.entry, {m.topic_id for m in first.alert.matches},
            alert.entry, {m.topic_id for m in alert.matches}):
        return []
    if not rt.store.records.take_update_slot(alert.subscriber_id, alert.story_id,
                                             stories.MAX_UPDATES):
        return []
    update = replace(alert, id=alert_id(alert.subscriber_id, f"{alert.story_id}\n{entry_key}"),
                     update=True)
    return [update.id] if rt.store.records.create_alert(update, origin=entry_key) else []


def alert_id(subscriber_id: str, story_id: str) -> str:
    return hashlib.sha256(f"{subscriber_id}\n{story_id}".encode()).hexdigest()[:24]


def assign_story(rt: Runtime, entry_key: str, entry: Entry) -> str:
    """The story this entry belongs to: same URL, else the story it resembles (stories.py),
    else a new story. Decided optimistically: what the decision read is watched, and if another
    worker recorded a copy under the same words meanwhile, it is decided again with that copy
    in view (so two copies arriving at once cannot start two stories)."""
    embedder = rt.classifier.embedder
    vector = None
    if embedder is not None:
        vector = stories.embedder_of(embedder)([stories.embedding_text(entry)])[0]
    fp = stories.fingerprint(entry, vector, stories.Vocabulary(*rt.classifier.vocabulary))
    words = sorted(fp.words)
    for _ in range(STORY_ATTEMPTS):
        story_id, seen, counts = rt.store.stories.lookup(entry.link, fp.words)
        if story_id is not None:            # a copy of a page already seen
            rt.store.stories.add_copy(story_id, entry, entry_key=entry_key, words=words)
            return story_id
        df = stories.DocFreq(seen, counts)
        df.add(fp.words)
        scorer = stories.Scorer(fp, df, rt.config.settings.story_window_hours)
        index = scorer.lookup_words()
        with rt.store.stories.claim(entry.link, index) as claim:
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


def due_work(rt: Runtime, now: float | None = None, *,
             idle: float | None = None) -> DueWork:
    """What `maintain` re-enqueues: retries whose time has come, and work a dead worker left
    (idle longer than `idle`, by default settings.redeliver_after; a claimed alert is never
    taken). Processing and delivery are idempotent, so an extra enqueue costs a no-op at
    worst."""
    now = now or time.time()
    rt.store.entries.trim_recent(now)
    cutoff = now - (rt.config.settings.redeliver_after if idle is None else idle)
    alerts = close_digests(rt, now) + rt.store.records.claim_due_retries(now) + \
        rt.store.records.stale(cutoff)
    renewals = websub.due_renewals(rt, now) if rt.config.settings.websub_callback else []
    return DueWork(tuple(dict.fromkeys(alerts)), tuple(rt.store.entries.stale(cutoff)),
                   tuple(renewals))


def close_digests(rt: Runtime, now: float) -> list[str]:
    """Turn each digest period that is over into one digest record, to deliver. Safe to
    repeat after a crash at any point: the record's id comes from the period, it is created
    once, and the bucket is removed only after it exists."""
    out = []
    for bucket, alert_ids in rt.store.records.due_digest_buckets(now):
        subscriber_id = bucket.subscriber_id
        try:
            zone = rt.config.subscriber(subscriber_id).timezone
        except KeyError:
            zone = "UTC"              # delivery dead-letters it with the reason
        period = digest.period_of(datetime.fromtimestamp(bucket.start, UTC), bucket.kind, zone)
        items = []
        for alert_id in alert_ids:
            record = rt.store.records.load_alert(alert_id)
            if record is not None:
                copies = list(rt.store.stories.entries(record.alert.story_id).values())
                items.append((record.alert, copies))
        if items:
            body = digest.digest_body(subscriber_id, period, items,
                                      partial(feedback.links, rt.config.settings))
            rt.store.records.create_digest(body["id"], body, subscriber_id)
            out.append(body["id"])
        rt.store.records.close_digest_bucket(bucket, alert_ids)
    return out
