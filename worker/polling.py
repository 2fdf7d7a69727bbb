"""Polling: fetch a batch of feeds concurrently and conditionally, take in what changed, and
record each feed's answer as `schedule.decide_poll` says (next poll, moves, gone, paused
hosts, operators told)."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlsplit

from . import schedule, websub
from .bodies import NoticeBody
from .config import Config, Feed
from .errors import FetchError, ParseError
from .fetch import Fetcher, FetchResult
from .logs import feed_fields
from .models import iso
from .parsepool import INLINE_BELOW, Intake, Parser, ParserCrash
from .store import FeedState, Store, Writes
from .websub import Hub

log = logging.getLogger("worker.pipeline")

CLAIM_LEASE = 600.0     # a claimed feed whose poll never finishes is due again after this


@dataclass
class Poller:
    """What polling uses, and nothing else: the feeds' state, the fetcher, the parser (its
    process pool) and the config's feeds and settings."""

    store: Store
    fetcher: Fetcher
    parser: Parser
    config: Config
    schedule_synced: bool = False    # the config's feeds are in the schedule (once a process)


@dataclass(frozen=True)
class PollOutcome:
    feed_id: str
    status: str                      # ok | not_modified | unchanged | error | gone | deferred
    new_entries: tuple[str, ...] = ()
    error: str | None = None
    notices: tuple[str, ...] = ()    # operator notices to deliver (feed gone or failing)
    subscribe: Hub | None = None     # a WebSub hub to subscribe to (websub.py)


def due_feeds(poller: Poller, now: float | None = None) -> list[str]:
    """Claim the feeds whose next poll time has come (atomic across schedulers)."""
    if not poller.schedule_synced:      # the feed list changes only with the config (a restart)
        poller.store.feeds.sync_schedule((f.id, f.interval) for f in poller.config.feeds)
        poller.schedule_synced = True
    return poller.store.feeds.claim_due(now or time.time(), lease=CLAIM_LEASE)


def poll_feed(poller: Poller, feed_id: str) -> PollOutcome:
    """Poll one feed (see `poll_feeds`)."""
    return poll_feeds(poller, [feed_id])[0]


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


def poll_feeds(poller: Poller, feed_ids: list[str]) -> list[PollOutcome]:
    """Fetch the feeds concurrently and conditionally (fetch.py); then, feed by feed, parse the
    bodies that changed (over the cores: runtime's parser pool), take in the entries never
    seen before, and decide when to poll each next (schedule.py). One outcome per feed, in
    order; one feed's failure is recorded for that feed alone."""
    states = poller.store.feeds.states(feed_ids)                 # reads: one round trip each
    urls = {f: states[f].url or _configured_url(poller, f) for f in feed_ids}
    paused = poller.store.feeds.hosts_paused_for(_host(u) for u in urls.values())
    planned = [_plan(poller, f, states[f], urls[f], paused) for f in feed_ids]
    todo = [p for p in planned if isinstance(p, _Plan)]
    known = [p.state.body_hash for p in todo]
    pool = len(todo) >= INLINE_BELOW       # a handful of feeds: not worth a process hop
    max_entries = poller.config.settings.max_entries
    push = poller.config.settings.websub_callback is not None

    async def take_in_if_changed(i: int, result: FetchResult) -> _Body:
        """Everything that needs a 200's bytes, done as they arrive (then they are let go)."""
        digest = hashlib.sha256(result.body).hexdigest()
        hint = schedule.server_hint(result.headers, result.body)
        hub = websub.discover(result.headers, result.body, result.url) if push else None
        if digest == known[i]:
            return _Body(digest, hint, None, hub)   # the very same bytes: nothing to parse
        plan = todo[i]
        return _Body(digest, hint, await poller.parser.take_in(
            (result.body, plan.url, plan.feed.id, plan.feed.name, result.headers),
            max_entries=max_entries, pool=pool,
            max_seconds=poller.config.settings.max_parse_seconds), hub)

    fetched = poller.fetcher.fetch_then([(p.url, p.state.validators) for p in todo],
                                    take_in_if_changed, keep_bodies=False)
    with poller.store.writes() as writes:                         # writes: one round trip
        finished = iter([_finish(poller, writes, p, r, body)
                         for p, (r, body) in zip(todo, fetched, strict=True)])
        for skipped in planned:                   # gone, paused, unknown: said why, not polled
            if isinstance(skipped, PollOutcome):
                poller.store.feeds.record_skip(skipped.feed_id, skipped.status,
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


def _configured_url(poller: Poller, feed_id: str) -> str:
    try:
        return poller.config.feed(feed_id).url
    except KeyError:
        return ""


def _plan(poller: Poller, feed_id: str, state: FeedState, url: str,
          paused: dict[str, float]) -> _Plan | PollOutcome:
    """What to fetch for a feed, or why not to (unknown, gone, its host asked us to wait)."""
    try:
        feed = poller.config.feed(feed_id)
    except KeyError:
        poller.store.feeds.unschedule(feed_id)
        return PollOutcome(feed_id, "error", error=f"feed {feed_id} is no longer configured")
    s = poller.config.settings
    if state.gone:
        poller.store.feeds.unschedule(feed_id)
        return PollOutcome(feed_id, "gone", error=state.last_error)
    host = _host(url)
    if (wait := paused.get(host, 0.0)) > 0:                # the host asked us to wait
        poller.store.feeds.schedule_next(feed_id, time.time() + wait)
        return PollOutcome(feed_id, "deferred", error=f"{host} asked to wait {wait:.0f} s")
    bounds = schedule.Bounds(min(s.min_interval, feed.interval), max(s.max_interval,
                                                                     feed.interval))
    return _Plan(feed, state, url, bounds, state.interval or feed.interval, time.time())


def _finish(poller: Poller, w: Writes, plan: _Plan, result: FetchResult | FetchError,
            body: _Body | None) -> PollOutcome:
    """Record one feed's poll and schedule its next one, as `schedule.decide_poll` says;
    writes go through the batch `w`."""
    feed, state, url = plan.feed, plan.state, plan.url
    feed_id, s = feed.id, poller.config.settings
    now = time.time()
    got = _answer(feed, url, state, result, body)
    decision = schedule.decide_poll(
        schedule.FeedNow(plan.interval, state.error_count, state.moved_target,
                         state.moved_count, pushed=state.websub.active(now)),
        got, bounds=plan.bounds, started=plan.started,
        operator_alert_after=s.operator_alert_after)
    feeds = poller.store.feeds
    fetched = isinstance(got, schedule.Fetched)
    feeds.record_poll(feed_id, decision.status if fetched else "error", writes=w,
                      validators=result.validators if isinstance(result, FetchResult) else None,
                      error=decision.error,
                      new_entries=got.new_entries if isinstance(got, schedule.Fetched) else 0,
                      more=decision.fields, before=state)
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
    poller.store.stats.observe("poll_duration", result.elapsed, writes=w)
    notices = _notify(poller, feed_id, feed.name, url, decision.notify, got,
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


def _notify(poller: Poller, feed_id: str, name: str, url: str, problem: str,
            failure: schedule.Fetched | schedule.Failed, errors: int) -> tuple[str, ...]:
    """Tell the operators (settings.operators) that a feed is gone or keeps failing."""
    now = datetime.now(UTC)
    assert isinstance(failure, schedule.Failed)
    error_class, error = failure.kind, failure.error
    created = []
    for operator in poller.config.settings.operators:
        notice_id = "n" + hashlib.sha256(
            f"{operator}\n{feed_id}\n{problem}\n{now.isoformat()}".encode()).hexdigest()[:23]
        body: NoticeBody = {"type": "feed_problem", "id": notice_id, "subscriber": operator,
                "problem": problem, "feed": {"id": feed_id, "name": name, "url": url},
                "error_class": error_class, "error": error, "errors_in_a_row": errors,
                "detected_at": iso(now)}
        if poller.store.records.create_notice(notice_id, body, operator):
            created.append(notice_id)
    return tuple(created)
