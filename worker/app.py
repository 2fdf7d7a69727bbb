"""The Celery app: queues, routes and schedule only (`celery -A worker.app worker`).

The broker is NEWSWATCH_BROKER_URL, else the config's broker_url, else its redis_url (any
Celery broker works: RabbitMQ with amqp://...). State always lives in Redis (redis_url).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from celery import Celery
from celery.signals import setup_logging
from kombu import Exchange, Queue  # type: ignore[attr-defined]

from . import logs
from .config import Settings, load_config
from .errors import ConfigError

# NEWSWATCH_QUEUE_SUFFIX lets several deployments (or test runs) share one broker.
_SUFFIX = f"-{os.environ['NEWSWATCH_QUEUE_SUFFIX']}" if os.environ.get("NEWSWATCH_QUEUE_SUFFIX") \
    else ""
QUEUES = tuple(f"{q}{_SUFFIX}" for q in ("poll", "process", "deliver"))
POLL, PROCESS, DELIVER = QUEUES
SCHEDULE_EVERY = 1.0      # seconds between beat's looks at the due-feed set (one Lua call)
MAINTAIN_EVERY = 5.0      # seconds between retries / lost-work / lease sweeps
LEARN_EVERY = 300.0       # seconds between looks for readers' feedback not yet learned from


def _settings() -> Settings:
    """The validated settings; nothing starts on an invalid config (exit 2, every problem).
    Those of the runtime this process runs on, where `newswatch run` installed one: its
    config was read and checked already."""
    from . import runtime

    rt = runtime.installed()
    if rt is not None:
        return rt.config.settings
    try:
        return load_config().settings
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        raise SystemExit(2) from None


def broker_url(settings: Settings) -> str:
    """NEWSWATCH_BROKER_URL / NEWSWATCH_REDIS_URL (in the settings) or the config's values."""
    url = os.environ.get("NEWSWATCH_BROKER_URL") or settings.broker_url or settings.redis_url
    if not url:
        print("newswatch: no broker: set settings.redis_url (or NEWSWATCH_REDIS_URL); "
              "`newswatch run` starts an embedded Redis for you", file=sys.stderr)
        raise SystemExit(2)
    return url


@setup_logging.connect  # type: ignore[untyped-decorator]
def _logging(loglevel: Any = None, **_: Any) -> None:
    """Celery's worker and beat log through our handler: text or JSON (settings.log_format)."""
    logs.configure(loglevel or "WARNING", logs.resolve_format(None, _settings().log_format))


app = Celery("newswatch", include=["worker.tasks"])
app.conf.update(
    broker_url=broker_url(_settings()),
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,                  # a task lost with its worker runs again
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # One direct exchange and routing key per queue. (A bare Queue(name) binds every queue to
    # the default queue's exchange and key, so each task would be copied into all three.)
    task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q)  # type: ignore[no-untyped-call]
                 for q in QUEUES],
    task_default_queue=PROCESS,
    task_routes={
        "newswatch.schedule_due": {"queue": POLL},
        "newswatch.poll_feed": {"queue": POLL},
        "newswatch.poll_feeds": {"queue": POLL},
        "newswatch.process_entries": {"queue": PROCESS},
        "newswatch.deliver": {"queue": DELIVER},
        "newswatch.maintain": {"queue": DELIVER},
        "newswatch.learn": {"queue": PROCESS},
        "newswatch.websub_subscribe": {"queue": POLL},
        "newswatch.websub_renew": {"queue": POLL},
    },
    # Redis redelivers unacked tasks after this; no task of ours uses countdowns (retries are
    # kept in Redis), and `maintain` re-enqueues work lost with a killed worker much sooner.
    broker_transport_options={"visibility_timeout": 3600},
    beat_schedule={
        "schedule-due": {"task": "newswatch.schedule_due", "schedule": SCHEDULE_EVERY},
        "maintain": {"task": "newswatch.maintain", "schedule": MAINTAIN_EVERY},
        "learn": {"task": "newswatch.learn", "schedule": LEARN_EVERY},
    },
    worker_hijack_root_logger=False,
)
