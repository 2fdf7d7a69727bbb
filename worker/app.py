"""The Celery app: queues, routes and schedule only (`celery -A worker.app worker`).

The broker is NEWSWATCH_BROKER_URL, else the config's broker_url, else its redis_url (any
Celery broker works: RabbitMQ with amqp://...). State always lives in Redis (redis_url).
"""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue  # type: ignore[attr-defined]

from .config import load_config

QUEUES = ("poll", "process", "deliver")
SCHEDULE_EVERY = 5.0      # seconds between beat's looks at the due-feed set


def broker_url() -> str:
    """NEWSWATCH_BROKER_URL / NEWSWATCH_REDIS_URL win; otherwise the config file decides."""
    url = os.environ.get("NEWSWATCH_BROKER_URL") or os.environ.get("NEWSWATCH_REDIS_URL")
    if url:
        return url
    settings = load_config().settings       # raises ConfigError: nothing starts on a bad config
    url = settings.broker_url or settings.redis_url
    if not url:
        raise RuntimeError("no broker: set settings.redis_url (or NEWSWATCH_REDIS_URL); "
                           "`newswatch run` starts an embedded Redis for you")
    return url


app = Celery("newswatch", include=["worker.tasks"])
app.conf.update(
    broker_url=broker_url(),
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,                  # a task lost with its worker runs again
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_queues=[Queue(q) for q in QUEUES],  # type: ignore[no-untyped-call]
    task_default_queue="process",
    task_routes={
        "newswatch.schedule_due": {"queue": "poll"},
        "newswatch.poll_feed": {"queue": "poll"},
        "newswatch.process_entries": {"queue": "process"},
        "newswatch.deliver": {"queue": "deliver"},
    },
    # Redis redelivers unacked tasks after this; our longest countdown stays well under it.
    broker_transport_options={"visibility_timeout": 3600},
    beat_schedule={"schedule-due": {"task": "newswatch.schedule_due",
                                    "schedule": SCHEDULE_EVERY}},
    worker_hijack_root_logger=False,
)
