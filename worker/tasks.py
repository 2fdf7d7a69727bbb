"""Celery tasks: thin wrappers over pipeline.py that carry ids, never payloads."""

from __future__ import annotations

from celery.signals import worker_ready

from . import pipeline, runtime
from .app import app

BATCH = 50


@worker_ready.connect
def _serve_metrics(**_: object) -> None:
    """A Celery worker serves /metrics too when settings.metrics_port is set (each worker
    needs its own port; the figures are the whole deployment's, read from Redis)."""
    rt = runtime.current()
    if rt.config.settings.metrics_port:
        from .metrics import serve

        serve(rt.store, rt.config.settings.metrics_port, rt.config.settings.metrics_address)


@app.task(name="newswatch.schedule_due")
def schedule_due() -> int:
    feeds = pipeline.due_feeds(runtime.current())
    for feed_id in feeds:
        poll_feed.delay(feed_id)
    return len(feeds)


@app.task(name="newswatch.poll_feed")
def poll_feed(feed_id: str) -> str:
    outcome = pipeline.poll_feed(runtime.current(), feed_id)
    for notice_id in outcome.notices:
        deliver.delay(notice_id)
    keys = list(outcome.new_entries)
    for i in range(0, len(keys), BATCH):
        process_entries.delay(keys[i:i + BATCH])
    return outcome.status


@app.task(name="newswatch.process_entries")
def process_entries(entry_keys: list[str]) -> int:
    alerts = pipeline.process_entries(runtime.current(), entry_keys)
    for alert_id in alerts:
        deliver.delay(alert_id)
    return len(alerts)


@app.task(name="newswatch.deliver")
def deliver(alert_id: str) -> str:
    # A failed attempt is scheduled in Redis (P:retry), not with a Celery countdown: Redis
    # redelivers unacked countdown tasks after the visibility timeout, and a 24 h schedule
    # would outlive it. `maintain` re-enqueues retries when they are due.
    return pipeline.deliver_alert(runtime.current(), alert_id).status


@app.task(name="newswatch.maintain")
def maintain() -> int:
    work = pipeline.due_work(runtime.current())
    enqueue(work)
    return len(work.alerts) + len(work.entries)


def enqueue(work: pipeline.DueWork) -> None:
    for alert_id in work.alerts:
        deliver.delay(alert_id)
    entries = list(work.entries)
    for i in range(0, len(entries), BATCH):
        process_entries.delay(entries[i:i + BATCH])
