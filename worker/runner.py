"""`newswatch run`: the worker and beat in this process, on the configured or embedded Redis."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from . import runtime
from .config import Config
from .deliver import render
from .embedded import start_redis
from .runtime import Runtime

log = logging.getLogger(__name__)
SHOWN_ALERTS = 25          # alerts listed one by one in the --once summary; the rest counted


@contextmanager
def services(config: Config) -> Iterator[Runtime]:
    """The runtime on the configured Redis, or on an embedded one started for the duration."""
    server = None
    if not config.settings.redis_url:
        folder = config.data_dir / "redis"
        server = start_redis(folder)
        log.info("embedded Redis on %s, data in %s", server.url, folder)
        config = replace(config, settings=config.settings.model_copy(
            update={"redis_url": server.url}))
    os.environ["NEWSWATCH_REDIS_URL"] = config.settings.redis_url or ""
    os.environ["NEWSWATCH_CONFIG"] = str(config.path)
    rt = Runtime.create(config)
    runtime.install(rt)
    try:
        yield rt
    finally:
        runtime.install(None)
        rt.close()
        if server is not None:
            server.stop()


def recover(rt: Runtime) -> None:
    """Re-enqueue work a crash left behind: processing and delivery are idempotent."""
    from . import tasks

    pending = sorted(rt.store.pending_entries())
    for i in range(0, len(pending), tasks.BATCH):
        tasks.process_entries.delay(pending[i:i + tasks.BATCH])
    for alert_id in rt.store.pending_alerts():
        tasks.deliver.delay(alert_id)


def run_forever(config: Config, *, concurrency: int = 4, loglevel: str = "INFO") -> None:
    with services(config) as rt:
        from .app import QUEUES, app

        recover(rt)
        if rt.config.settings.metrics_port:
            from .metrics import serve

            serve(rt.store, rt.config.settings.metrics_port, rt.config.settings.metrics_address)
        callback = start_websub(rt)
        schedule = rt.config.data_dir / "celerybeat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        worker: Any = app.Worker(pool="threads", concurrency=concurrency, beat=True,
                                 queues=list(QUEUES), loglevel=loglevel,
                                 schedule_filename=str(schedule), without_mingle=True,
                                 without_gossip=True)
        try:
            worker.start()
        finally:
            if callback is not None:
                callback.stop()


def start_websub(rt: Runtime) -> Any:
    """The WebSub callback server when settings.websub_listen is set (else None)."""
    if not rt.config.settings.websub_listen:
        return None
    from . import websub

    host, port = websub.listen_address(rt.config.settings.websub_listen)
    server = websub.CallbackServer(rt, websub.enqueue_entries, host, port).start()
    log.info("WebSub callback on %s:%d", host, port)
    return server


def serve_forever(config: Config) -> None:
    """`newswatch serve`: only the WebSub callback, for a deployment whose workers run apart
    (it needs their Redis: settings.redis_url)."""
    if not config.settings.websub_listen:
        from .errors import NewswatchError

        raise NewswatchError("newswatch serve needs settings.websub_listen (host:port)")
    with services(config) as rt:
        server = start_websub(rt)
        try:
            threading.Event().wait()
        finally:
            server.stop()


@dataclass
class Summary:
    seconds: float
    feeds: dict[str, tuple[str, str | None]]            # feed id -> (status, error)
    stats: dict[str, int]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return not self.timed_out and all(a["status"] == "delivered" for a in self.alerts)


def run_once(config: Config, *, timeout: float = 300.0, concurrency: int = 4) -> Summary:
    """Poll every feed once, deliver what results, wait until the pipeline is idle."""
    with services(config) as rt:
        from . import tasks
        from .app import QUEUES, app

        # A short blocking pop on Redis lets the worker notice the stop at once (the default
        # second is fine for a long-running worker, but it would double this command's time).
        app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                             "polling_interval": 0.1}
        worker: Any = app.WorkController(
            app=app, pool="threads", concurrency=concurrency, queues=list(QUEUES),
            loglevel="WARNING", without_heartbeat=True, without_mingle=True,
            without_gossip=True)
        thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
        before = rt.store.stats()
        start = time.time()
        thread.start()
        try:
            recover(rt)
            rt.store.sync_schedule((f.id, f.interval) for f in rt.config.feeds)
            tasks.enqueue_polls([f.id for f in rt.config.feeds], rt.config.settings.poll_batch)
            timed_out = not _wait_idle(rt, start, timeout)
        finally:
            worker.stop(in_sighandler=False)
            thread.join(30)
        return _summary(rt, start, before, timed_out)


def _wait_idle(rt: Runtime, start: float, timeout: float) -> bool:
    """Wait until every feed was polled, every entry processed and every alert of this run
    delivered, dead, or waiting for a retry later than the timeout allows. Meanwhile do what
    beat's `maintain` does, so that retries due within the run happen in it."""
    from . import pipeline, tasks

    deadline, wall_deadline = time.monotonic() + timeout, time.time() + timeout
    next_maintain = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() >= next_maintain:
            tasks.enqueue(pipeline.due_work(rt))
            next_maintain = time.monotonic() + 0.25
        polled = all((rt.store.feed_state(f.id).last_poll_at or 0) >= start
                     for f in rt.config.feeds)
        if polled and not rt.store.pending_entries():
            waiting = rt.store.pending_alerts().intersection(rt.store.alerts_since(start))
            records = [rt.store.load_alert(a) for a in waiting]
            if all(r is not None and r.next_try_at is not None and r.next_try_at > wall_deadline
                   for r in records):
                return True
        time.sleep(0.05)
    return False


def _summary(rt: Runtime, start: float, before: dict[str, int], timed_out: bool) -> Summary:
    after = rt.store.stats()
    stats = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    feeds = {}
    for f in rt.config.feeds:
        state = rt.store.feed_state(f.id)
        feeds[f.id] = (state.last_status or "not polled", state.last_error)
    alerts = []
    for alert_id in rt.store.alerts_since(start):
        record = rt.store.load_alert(alert_id)
        if record is not None:
            alert = record.alert
            copies = render.also_reported(alert, rt.store.story_entries(alert.story_id).values())
            alerts.append({"id": alert_id, "subscriber": alert.subscriber_id,
                           "topics": [m.topic_name for m in alert.matches],
                           "title": alert.entry.title, "url": alert.entry.link,
                           "source": alert.entry.source_title,
                           "also": [(c.source_title, c.title) for c in copies],
                           "status": record.status, "error": record.last_error,
                           "next_try_at": record.next_try_at})
    return Summary(time.time() - start, feeds, stats, alerts, timed_out)


def format_summary(summary: Summary, config: Config) -> str:
    names = {f.id: f.name for f in config.feeds}
    by_status: dict[str, int] = {}
    for status, _ in summary.feeds.values():
        by_status[status] = by_status.get(status, 0) + 1
    lines = [
        f"newswatch run --once: {len(summary.feeds)} feeds in {summary.seconds:.1f} s "
        f"({by_status.get('ok', 0)} changed, {by_status.get('not_modified', 0)} unchanged, "
        f"{by_status.get('error', 0)} failed)",
        f"entries: {summary.stats.get('entries:new', 0)} new",
    ]
    matches = {k.split(":", 1)[1]: v for k, v in summary.stats.items() if k.startswith("matches:")}
    if matches:
        lines.append("matches: " + ", ".join(f"{t} {n}" for t, n in sorted(matches.items())))
    counts: dict[str, int] = {}
    for a in summary.alerts:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    lines.append(f"alerts: {len(summary.alerts)} new"
                 + (" (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
                    if counts else ""))
    per_sub: dict[str, int] = {}
    for a in summary.alerts:
        per_sub[a["subscriber"]] = per_sub.get(a["subscriber"], 0) + 1
    if per_sub:
        channels = {s.id: s.channel for s in config.subscribers}
        lines.append("per subscriber: " + ", ".join(
            f"{sub} {n} ({channels.get(sub, '?')})" for sub, n in sorted(per_sub.items())))
    for a in summary.alerts[:SHOWN_ALERTS]:
        lines.append(f"  [{a['status']}] {a['subscriber']}: {' + '.join(a['topics'])}")
        lines.append(f"      {a['title']} ({a['source']})")
        if a["url"]:
            lines.append(f"      {a['url']}")
        for source, title in a["also"]:
            lines.append(f"      also: {title} ({source})")
        if a["error"] and a["status"] != "delivered":
            lines.append(f"      last error: {a['error']}")
        if a["status"] == "retrying" and a["next_try_at"]:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["next_try_at"]))
            lines.append(f"      next try: {when} (kept; the next run or worker retries it)")
    if len(summary.alerts) > SHOWN_ALERTS:
        lines.append(f"  ... and {len(summary.alerts) - SHOWN_ALERTS} more alerts")
    failed = [(fid, err) for fid, (status, err) in summary.feeds.items() if status == "error"]
    if failed:
        lines.append("failed feeds:")
        lines += [f"  {names[fid]}: {err}" for fid, err in failed]
    if summary.timed_out:
        lines.append("timed out waiting for the pipeline: work is kept and resumes next run")
    return "\n".join(lines)
