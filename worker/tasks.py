"""Celery tasks: thin wrappers over pipeline.py that carry ids, never payloads."""

from __future__ import annotations

from typing import Any

from . import pipeline, runtime
from .app import app

BATCH = 50


@app.task(name="newswatch.schedule_due")
def schedule_due() -> int:
    feeds = pipeline.due_feeds(runtime.current())
    for feed_id in feeds:
        poll_feed.delay(feed_id)
    return len(feeds)


@app.task(name="newswatch.poll_feed")
def poll_feed(feed_id: str) -> str:
    outcome = pipeline.poll_feed(runtime.current(), feed_id)
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


@app.task(name="newswatch.deliver", bind=True, max_retries=None)
def deliver(self: Any, alert_id: str) -> str:
    outcome = pipeline.deliver_alert(runtime.current(), alert_id)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status
