"""The story of newswatch, stage by stage: poll a feed, process its new entries, fan out alerts,
deliver them. Each stage is one call into its own module; Celery tasks wrap these functions.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any
from urllib.parse import urlsplit

from . import digest, feedback, schedule, stories, websub
from .config import Feed, SubscriberConfig
from .deliver import render
from .deliver.apprise import send_apprise
from .deliver.attempt import attempt
from .deliver.email import send_email
from .deliver.outbox import write_outbox
from .deliver.retry import decide_failure
from .deliver.webhook import send_webhook
from .errors import DeliveryError, FetchError, NewswatchError, ParseError
from .fetch import FetchResult
from .logs import alert_fields, feed_fields
from .models import Alert, Entry, Match, iso
from .parsepool import INLINE_BELOW, Intake, ParserCrash
from .runtime import Runtime
from .store import DigestBucket, FeedState, Records, Writes
from .websub import Hub

log = logging.getLogger(__name__)
CLAIM_LEASE = 600.0     # a claimed feed whose poll never finishes is due again after this


@dataclass(frozen=True)
class PollOutcome:
    feed_id: str
    status: str                      # ok | not_modified | unchanged | error | gone | deferred
    new_entries: tuple[str, ...] = ()
    error: str | None = None
    notices: tuple[str, ...] = ()    # operator notices to deliver (feed gone or failing)
    subscribe: Hub | None = None     # a WebSub hub to subscribe to (websub.py)


@dataclass(frozen=True)
class DeliveryOutcome:
    alert_id: str
    status: str                      # delivered | skipped | retrying | dead
    retry_in: float | None = None
    error: str | None = None


def due_feeds(rt: Runtime, now: float | None = None) -> list[str]:
    """Claim the feeds whose next poll time has come (atomic across schedulers)."""
    if not rt.schedule_synced:      # the feed list changes only with the config (a restart)
        rt.store.feeds.sync_schedule((f.id, f.interval) for f in rt.config.feeds)
        rt.schedule_synced = True
    return rt.store.feeds.claim_due(now or time.time(), lease=CLAIM_LEASE)


def poll_feed(rt: Runtime, feed_id: str) -> PollOutcome:
    """Poll one feed (see `poll_feeds`)."""
    return poll_feeds(rt, [feed_id])[0]


@dataclass(frozen=True)
class _Body:
    """What a 200's body left once taken in: its hash, the server's hint, the intake."""

    digest: str
    hint: float | None
    taken: Intake | None        # None: the very same bytes as last time, not parsed
    hub: Hub | None = None      # the WebSub hub the feed declares, when WebSub is on


@dataclass(frozen=True)
class _Plan:
    feed: Feed
    state: FeedState
    url: str
    bounds: schedule.Bounds
    interval: float
    started: float


def poll_feeds(rt: Runtime, feed_ids: list[str]) -> list[PollOutcome]:
    """Fetch the feeds concurrently and conditionally (fetch.py); then, feed by feed, parse the
    bodies that changed (over the cores: runtime's parser pool), take in the entries never
    seen before, and decide when to poll each next (schedule.py). One outcome per feed, in
    order; one feed's failure is recorded for that feed alone."""
    states = rt.store.feeds.states(feed_ids)                 # reads: one round trip each
    urls = {f: states[f].url or _configured_url(rt, f) for f in feed_ids}
    paused = rt.store.feeds.hosts_paused_for(_host(u) for u in urls.values())
    planned = [_plan(rt, f, states[f], urls[f], paused) for f in feed_ids]
    todo = [p for p in planned if isinstance(p, _Plan)]
    known = [p.state.body_hash for p in todo]
    pool = len(todo) >= INLINE_BELOW       # a handful of feeds: not worth a process hop
    max_entries = rt.config.settings.max_entries
    push = rt.config.settings.websub_callback is not None

    async def take_in_if_changed(i: int, result: FetchResult) -> _Body:
        """Everything that needs a 200's bytes, done as they arrive (then they are let go)."""
        digest = hashlib.sha256(result.body).hexdigest()
        hint = schedule.server_hint(result.headers, result.body)
        hub = websub.discover(result.headers, result.body, result.url) if push else None
        if digest == known[i]:
            return _Body(digest, hint, None, hub)   # the very same bytes: nothing to parse
        plan = todo[i]
        return _Body(digest, hint, await rt.parser.take_in(
            (result.body, plan.url, plan.feed.id, plan.feed.name, result.headers),
            max_entries=max_entries, pool=pool,
            max_seconds=rt.config.settings.max_parse_seconds), hub)

    fetched = rt.fetcher.fetch_then([(p.url, p.state.validators) for p in todo],
                                    take_in_if_changed, keep_bodies=False)
    with rt.store.writes() as writes:                         # writes: one round trip
        finished = iter([_finish(rt, writes, p, r, body)
                         for p, (r, body) in zip(todo, fetched, strict=True)])
        for skipped in planned:                   # gone, paused, unknown: said why, not polled
            if isinstance(skipped, PollOutcome):
                rt.store.feeds.record_skip(skipped.feed_id, skipped.status,
                                           skipped.error or "", writes=writes)
    outcomes = [p if isinstance(p, PollOutcome) else next(finished) for p in planned]
    _log_cycle(outcomes)
    return outcomes


def _log_cycle(outcomes: list[PollOutcome]) -> None:
    """One line per poll batch that found something or failed (each feed's own: DEBUG)."""
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    new = sum(len(o.new_entries) for o in outcomes)
    if new or counts.get("error"):
        log.info("polled %d feeds: %d new entries (%s)", len(outcomes), new,
                 ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))


@lru_cache(maxsize=1 << 16)
def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _configured_url(rt: Runtime, feed_id: str) -> str:
    try:
        return rt.config.feed(feed_id).url
    except KeyError:
        return ""


def _plan(rt: Runtime, feed_id: str, state: FeedState, url: str,
          paused: dict[str, float]) -> _Plan | PollOutcome:
    """What to fetch for a feed, or why not to (unknown, gone, its host asked us to wait)."""
    try:
        feed = rt.config.feed(feed_id)
    except KeyError:
        rt.store.feeds.unschedule(feed_id)
        return PollOutcome(feed_id, "error", error=f"feed {feed_id} is no longer configured")
    s = rt.config.settings
    if state.gone:
        rt.store.feeds.unschedule(feed_id)
        return PollOutcome(feed_id, "gone", error=state.last_error)
    host = _host(url)
    if (wait := paused.get(host, 0.0)) > 0:                # the host asked us to wait
        rt.store.feeds.schedule_next(feed_id, time.time() + wait)
        return PollOutcome(feed_id, "deferred", error=f"{host} asked to wait {wait:.0f} s")
    bounds = schedule.Bounds(min(s.min_interval, feed.interval), max(s.max_interval,
                                                                     feed.interval))
    return _Plan(feed, state, url, bounds, state.interval or feed.interval, time.time())


def _finish(rt: Runtime, w: Writes, plan: _Plan, result: FetchResult | FetchError,
            body: _Body | None) -> PollOutcome:
    """Record one feed's poll and schedule its next one, as `schedule.decide_poll` says;
    writes go through the batch `w`."""
    feed, state, url = plan.feed, plan.state, plan.url
    feed_id, s = feed.id, rt.config.settings
    now = time.time()
    got = _answer(feed, url, state, result, body)
    decision = schedule.decide_poll(
        schedule.FeedNow(plan.interval, state.error_count, state.moved_target,
                         state.moved_count, pushed=state.websub.active(now)),
        got, bounds=plan.bounds, started=plan.started,
        operator_alert_after=s.operator_alert_after)
    feeds = rt.store.feeds
    fetched = isinstance(got, schedule.Fetched)
    feeds.record_poll(feed_id, decision.status if fetched else "error", writes=w,
                      validators=result.validators if isinstance(result, FetchResult) else None,
                      error=decision.error,
                      new_entries=got.new_entries if isinstance(got, schedule.Fetched) else 0,
                      more=decision.fields)
    if decision.adopted:
        log.warning("feed %s moved permanently to %s", feed_id, decision.adopted,
                    extra=feed_fields(feed_id, decision.adopted, outcome="moved"))
    if decision.pause_host_for:
        feeds.pause_host(urlsplit(url).hostname or "", decision.pause_host_for, writes=w)
    if decision.next_poll_at is None:
        feeds.unschedule(feed_id, writes=w)
        log.error("feed %s (%s) is gone (HTTP 410): no longer polled", feed.name, url,
                  extra=feed_fields(feed_id, url, outcome="gone", status=410))
    else:
        feeds.schedule_next(feed_id, decision.next_poll_at, writes=w)
    rt.store.stats.observe("poll_duration", result.elapsed, writes=w)
    notices = _notify(rt, feed_id, feed.name, url, decision.notify, got,
                      state.error_count + 1) if decision.notify else ()
    taken = body.taken if fetched and body else None
    new = taken.new if taken is not None and not isinstance(taken, Exception) else []
    hub = None
    if fetched and s.websub_callback is not None:
        hub = body.hub if body else websub.known_hub(state.websub)
    subscribe = hub if hub and websub.wants_subscription(state.websub, hub, now) else None
    return PollOutcome(feed_id, decision.status, tuple(new), decision.error, notices,
                       subscribe)


def _answer(feed: Feed, url: str, state: FeedState, result: FetchResult | FetchError,
            body: _Body | None) -> schedule.Fetched | schedule.Failed:
    """What a poll got, for the decision (and its log line)."""
    try:
        if isinstance(result, FetchError):
            raise result
        taken = body.taken if body else None
        if isinstance(taken, Exception):
            raise taken
        new = len(taken.new) if taken else 0
        status = "ok" if taken else "not_modified" if result.not_modified else "unchanged"
        if log.isEnabledFor(logging.DEBUG):
            detail = f"{taken.entries} entries, {new} new" if taken else status
            log.debug("feed %s (%s): %s", feed.name, url, detail,
                      extra=feed_fields(feed.id, url, outcome=status, new_entries=new))
        return schedule.Fetched(status, new, body.hint if body else
                                schedule.server_hint(result.headers, b""), result.moved_to,
                                body.digest if taken and body else None)
    except (FetchError, ParseError) as exc:
        log.warning("feed %s (%s): %s", feed.name, url, exc.reason,
                    extra=feed_fields(feed.id, url, outcome="error", status=getattr(
                        exc, "status", None), errors_in_a_row=state.error_count + 1))
        if isinstance(exc, FetchError):
            return schedule.Failed(str(exc), exc.status, exc.retry_after, exc.kind)
        return schedule.Failed(str(exc), kind="not a feed")
    except Exception as exc:   # input we did not foresee: recorded for this feed only
        log.exception("feed %s (%s): unexpected failure", feed.name, url,
                      extra=feed_fields(feed.id, url, outcome="error"))
        detail = str(exc) if isinstance(exc, ParserCrash) else f"{type(exc).__name__}: {exc}"
        return schedule.Failed(f"{url}: internal error: {detail}", kind=type(exc).__name__)


def _notify(rt: Runtime, feed_id: str, name: str, url: str, problem: str,
            failure: schedule.Fetched | schedule.Failed, errors: int) -> tuple[str, ...]:
    """Tell the operators (settings.operators) that a feed is gone or keeps failing."""
    now = datetime.now(UTC)
    assert isinstance(failure, schedule.Failed)
    error_class, error = failure.kind, failure.error
    created = []
    for operator in rt.config.settings.operators:
        notice_id = "n" + hashlib.sha256(
            f"{operator}\n{feed_id}\n{problem}\n{now.isoformat()}".encode()).hexdigest()[:23]
        body = {"type": "feed_problem", "id": notice_id, "subscriber": operator,
                "problem": problem, "feed": {"id": feed_id, "name": name, "url": url},
                "error_class": error_class, "error": error, "errors_in_a_row": errors,
                "detected_at": iso(now)}
        if rt.store.records.create_notice(notice_id, body, operator):
            created.append(notice_id)
    return tuple(created)


def process_entries(rt: Runtime, entry_keys: list[str]) -> list[str]:
    """Classify each new entry; fan matches out to subscribers. Returns alerts to deliver."""
    to_deliver: list[str] = []
    loaded = zip(entry_keys, rt.store.entries.load_many(entry_keys), strict=True)
    entries = [(key, entry) for key, entry in loaded if entry is not None]
    classifier = rt.current_classifier()
    found = classifier.classify_many([(e.title, e.summary, e.lang) for _, e in entries])
    for (key, entry), matches in zip(entries, found, strict=True):
        for m in matches:
            rt.store.stats.count(f"matches:{m.topic_id}")
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
            rt.store.stats.count(f"alerts:{sub.id}:created")
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


def deliver_alert(rt: Runtime, alert_id: str) -> DeliveryOutcome:
    """Deliver one alert once; a failure is recorded, then retried later or dead-lettered."""
    record = rt.store.records.record_state(alert_id)
    if record is None or record.status not in ("pending", "retrying"):
        return DeliveryOutcome(alert_id, "skipped")
    s = rt.config.settings
    # One worker at a time: the claim lapses only if its holder dies (it is extended while
    # the attempt lives, and the attempt has a hard deadline shorter than the claim).
    ttl = s.delivery_timeout + CLAIM_MARGIN
    token = rt.store.records.claim(alert_id, ttl=ttl)
    if token is None:
        return DeliveryOutcome(alert_id, "skipped")      # another worker has it right now
    with _claim_kept(rt.store.records, alert_id, token, ttl):
        return _deliver_claimed(rt, alert_id, token)


CLAIM_MARGIN = 5.0        # seconds a delivery claim outlives its attempt's deadline


@contextmanager
def _claim_kept(records: Records, alert_id: str, token: str, ttl: float) -> Iterator[None]:
    """Extend the claim every third of its life while the block runs (a DNS lookup that
    hangs cannot be cut by the deadline), so no other worker sends the alert meanwhile."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(ttl / 3):
            try:
                if not records.extend_claim(alert_id, token, ttl):
                    return
            except Exception as exc:           # Redis away: the claim may lapse; say so
                log.warning("alert %s: could not extend the delivery claim: %s", alert_id,
                            exc)
                return

    thread = threading.Thread(target=beat, name=f"claim-{alert_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _deliver_claimed(rt: Runtime, alert_id: str, token: str) -> DeliveryOutcome:
    s = rt.config.settings
    # Read the state again under the claim: another task may have delivered it between our
    # first look and the claim (it releases the claim only after recording the delivery).
    record = rt.store.records.record_state(alert_id)
    if record is None or record.status not in ("pending", "retrying"):
        rt.store.records.release_claim(alert_id, token)
        return DeliveryOutcome(alert_id, "skipped")
    try:
        sub = rt.config.subscriber(record.subscriber_id)
    except KeyError:
        rt.store.records.mark_failed(alert_id, "subscriber no longer configured",
                                     retry_at=None, channel="none")
        rt.store.records.release_claim(alert_id, token)
        return DeliveryOutcome(alert_id, "dead", error="subscriber no longer configured")
    try:
        _send(rt, sub, alert_id, record.kind)
        rt.store.records.mark_delivered(alert_id, sub.channel)   # before the claim goes: no resend
        rt.store.stats.observe("delivery_latency", max(0.0, time.time() - record.created_at))
    except DeliveryError as exc:
        now = time.time()
        failed = decide_failure(attempts=record.attempts, created_at=record.created_at,
                                now=now, error=str(exc), retryable=exc.retryable,
                                retry_after=exc.retry_after, base=s.retry_base_delay,
                                cap=s.retry_max_delay, max_age=s.delivery_max_age_hours * 3600)
        rt.store.records.mark_failed(alert_id, failed.error, retry_at=failed.retry_at,
                                     channel=sub.channel)
        log.warning("alert %s to %s (%s) attempt %d: %s", alert_id, sub.id, sub.channel,
                    failed.attempt, exc, extra=alert_fields(
                        alert_id, sub.id, sub.channel, kind=record.kind,
                        attempt=failed.attempt, outcome="dead" if failed.dead else "retrying"))
        if failed.retry_at is None:
            return DeliveryOutcome(alert_id, "dead", error=failed.error)
        return DeliveryOutcome(alert_id, "retrying", failed.retry_at - now, failed.error)
    finally:
        rt.store.records.release_claim(alert_id, token)
    log.info("alert %s delivered to %s (%s)", alert_id, sub.id, sub.channel,
             extra=alert_fields(alert_id, sub.id, sub.channel, kind=record.kind,
                                outcome="delivered"))
    return DeliveryOutcome(alert_id, "delivered")


def _send(rt: Runtime, sub: SubscriberConfig, record_id: str, kind: str) -> None:
    """One attempt through the subscriber's channel, within `delivery_timeout` in all. The
    targets of webhooks and chat URLs are untrusted: their connections pass the SSRF guard."""
    s = rt.config.settings
    body = _body(rt, record_id, kind)
    to = sub.email or f"{sub.id}@localhost"
    make = {"digest": render.digest_email, "notice": render.notice_email}.get(
        kind, render.email_message)
    guarded = bool(sub.webhook or sub.apprise) and not s.allow_private_networks
    send: Callable[[], object]
    if sub.webhook:
        assert sub.secret is not None
        send = partial(send_webhook, rt.http, sub.webhook, sub.secret, body)
    elif sub.email:
        assert s.smtp_url is not None
        send = partial(send_email, s.smtp_url, make(body, to=to, from_address=s.from_address,
                                                    unsubscribe_url=s.unsubscribe_url),
                       timeout=s.fetch_timeout)
    elif sub.apprise:
        send = partial(send_apprise, sub.apprise, body, timeout=s.fetch_timeout,
                       deadline=s.delivery_timeout)
    else:
        send = partial(write_outbox, rt.config.resolve_path(sub.outbox or ""), body,
                       make(body, to=to, from_address=s.from_address))
    attempt(send, target=sub.target, guarded=guarded, seconds=s.delivery_timeout)


def _body(rt: Runtime, record_id: str, kind: str) -> dict[str, Any]:
    """The webhook JSON of an alert (its story's copies read now) or of a digest (built when
    its period closed)."""
    if kind in ("digest", "notice"):
        body = rt.store.records.record_data(record_id)
        if body is None:
            raise DeliveryError(record_id, f"{kind} record has no data", retryable=False)
        return body
    record = rt.store.records.load_alert(record_id)
    if record is None:
        raise DeliveryError(record_id, "alert record has no data", retryable=False)
    alert = record.alert
    try:
        feed = rt.config.feed(alert.entry.feed_id)
        feed_url, categories = feed.url, feed.categories
    except KeyError:
        feed_url, categories = alert.entry.feed_id, ()
    return render.webhook_body(alert, feed_url, rt.store.stories.entries(alert.story_id).values(),
                               categories, feedback.links(rt.config.settings, alert))
