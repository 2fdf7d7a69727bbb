"""Celery tasks: thin wrappers over pipeline.py that carry ids, never payloads.

When Redis (the state) cannot be reached, a task's work is not lost: it is tried again later
(backoff up to a minute; beat's own tasks simply run at their next tick), and the outage is
logged once when it starts and once when it ends, not once per task.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery.signals import worker_ready, worker_shutdown

from . import pipeline, runtime, websub
from .app import app
from .store import UNAVAILABLE

log = logging.getLogger(__name__)
T = TypeVar("T")


@worker_ready.connect
def _serve_metrics(**_: object) -> None:
    """A Celery worker serves /metrics too when settings.metrics_port is set (each worker
    needs its own port; the figures are the whole deployment's, read from Redis); and starts
    its parser processes in the background, ready for the first batch (when its config polls
    enough feeds to use them: parsepool.POOL_FROM_FEEDS)."""
    rt = runtime.current()
    threading.Thread(target=rt.parser.warm_up, name="parser-warm-up", daemon=True).start()
    if rt.config.settings.metrics_port:
        from .metrics import serve

        serve(rt.store, rt.config.settings.metrics_port, rt.config.settings.metrics_address)


@worker_shutdown.connect
def _close_runtime(**_: object) -> None:
    """Close the fetch session, its loop and the parser pool when the worker stops."""
    rt = runtime.installed()
    if rt is not None:
        rt.close()


class Outage:
    """A streak of tasks that could not reach Redis: said when it starts and when it ends."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.since: float | None = None
        self.failures = 0

    def failed(self, exc: BaseException) -> None:
        with self.lock:
            first = self.since is None
            if first:
                self.since = time.monotonic()
            self.failures += 1
        if first:
            log.error("Redis unreachable (%s): tasks are put off and tried again until it "
                      "is back; their work stays queued", str(exc).strip().splitlines()[0])

    def ok(self) -> None:
        if self.since is None:
            return
        with self.lock:
            since, failures, self.since, self.failures = self.since, self.failures, None, 0
        if since is not None:
            log.warning("Redis is back after %.0f s (%d tasks were put off)",
                        time.monotonic() - since, failures)


OUTAGE = Outage()


def _periodic(fn: Callable[[], T]) -> Callable[[], T | None]:
    """Beat's tasks: with Redis away, skip this tick (the next one comes in seconds)."""
    @functools.wraps(fn)
    def run() -> T | None:
        try:
            result = fn()
        except UNAVAILABLE as exc:
            OUTAGE.failed(exc)
            return None
        OUTAGE.ok()
        return result
    return run


def _kept(fn: Callable[..., T]) -> Callable[..., T]:
    """Work tasks (bound, made by `_work_task`): with Redis away, try again later with backoff
    (at most a minute), for as long as the outage lasts."""
    @functools.wraps(fn)
    def run(self: Any, *args: Any) -> T:
        try:
            result = fn(*args)
        except UNAVAILABLE as exc:
            OUTAGE.failed(exc)
            delay = random.uniform(0, min(60.0, 2.0 ** (self.request.retries + 1)))
            raise self.retry(countdown=delay, exc=exc) from None
        OUTAGE.ok()
        return result
    return run


def _work_task(name: str) -> Callable[[Callable[..., T]], Any]:
    """A task that does the work (polls, processes, delivers): bound, and `_kept`, never
    given up on while Redis is away. Its own `max_retries` must be None: Celery reads a
    retry's `max_retries=None` as "the task's own", 3 by default, after which the task failed
    with the outage's traceback (a few seconds of outage at the shortest backoffs)."""
    def make(fn: Callable[..., T]) -> Any:
        return app.task(name=name, bind=True, max_retries=None)(_kept(fn))
    return make


@app.task(name="newswatch.schedule_due")
@_periodic
def schedule_due() -> int:
    rt = runtime.current()
    feeds = pipeline.due_feeds(rt.poller)
    enqueue_polls(feeds, rt.config.settings.poll_batch)
    return len(feeds)


def enqueue_polls(feed_ids: list[str], batch: int) -> None:
    """Feeds in batches: one task fetches a batch concurrently (fetch.py)."""
    for i in range(0, len(feed_ids), batch):
        poll_feeds.delay(feed_ids[i:i + batch])


@_work_task("newswatch.poll_feeds")
def poll_feeds(feed_ids: list[str]) -> dict[str, int]:
    outcomes = pipeline.poll_feeds(runtime.current().poller, feed_ids)
    keys: list[str] = []
    for outcome in outcomes:
        for notice_id in outcome.notices:
            deliver.delay(notice_id)
        if outcome.subscribe:
            websub_subscribe.delay(outcome.feed_id, outcome.subscribe.hub,
                                   outcome.subscribe.topic)
        keys += outcome.new_entries
    enqueue_processing(keys)
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
    return statuses


@app.task(name="newswatch.poll_feed")
def poll_feed(feed_id: str) -> None:
    """One feed now (a push notification's fallback, an operator's request)."""
    poll_feeds.delay([feed_id])


@_work_task("newswatch.process_entries")
def process_entries(entry_keys: list[str]) -> int:
    alerts = pipeline.process_entries(runtime.current().processor, entry_keys)
    for alert_id in alerts:
        deliver.delay(alert_id)
    return len(alerts)


def enqueue_processing(keys: list[str]) -> None:
    """New entries to the process queue, in tasks of `pipeline.batches`."""
    for batch in pipeline.batches(keys):
        process_entries.delay(batch)


@_work_task("newswatch.deliver")
def deliver(alert_id: str) -> str:
    # A failed attempt is scheduled in Redis (P:retry), not with a Celery countdown: Redis
    # redelivers unacked countdown tasks after the visibility timeout, and a 24 h schedule
    # would outlive it. `maintain` re-enqueues retries when they are due.
    return pipeline.deliver_alert(runtime.current().deliverer, alert_id).status


@_work_task("newswatch.websub_subscribe")
def websub_subscribe(feed_id: str, hub: str, topic: str) -> bool:
    rt = runtime.current()
    return websub.subscribe(rt.store, rt.http, rt.config.settings, feed_id,
                            websub.Hub(hub, topic))


@_work_task("newswatch.websub_renew")
def websub_renew(feed_id: str) -> bool:
    rt = runtime.current()
    hub = websub.known_hub(rt.store.feeds.websub([feed_id])[feed_id])
    return websub.subscribe(rt.store, rt.http, rt.config.settings, feed_id,
                            hub) if hub else False


@app.task(name="newswatch.maintain")
@_periodic
def maintain() -> int:
    rt = runtime.current()
    work = pipeline.due_work(rt.store, rt.config)
    enqueue(work)
    return len(work.alerts) + len(work.entries)


@app.task(name="newswatch.learn")
@_periodic
def learn() -> list[str]:
    """Topics retrained on their readers' new feedback."""
    from .training import learn as retrain

    rt = runtime.current()
    scorer = rt.classifier.scorer
    return retrain(rt.store, rt.config, scorer.embedder if scorer else None)


def enqueue(work: pipeline.DueWork) -> None:
    for alert_id in work.alerts:
        deliver.delay(alert_id)
    enqueue_processing(list(work.entries))
    for feed_id in work.renewals:
        websub_renew.delay(feed_id)
