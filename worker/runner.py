"""`newswatch run`: the worker and beat in this process, on the configured or embedded Redis."""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from . import __version__, runtime
from .config import Config
from .deliver import render
from .embedded import redis_binary, server_version, start_redis
from .errors import NewswatchError
from .runtime import Runtime
from .store.stats import Totals

log = logging.getLogger(__name__)
SHOWN_ALERTS = 25          # alerts listed one by one in the --once summary; the rest counted


@contextmanager
def services(config: Config) -> Iterator[Runtime]:
    """The runtime on the configured Redis, or on an embedded one started for the duration."""
    server = None
    label = config.settings.redis_url or ""
    if not config.settings.redis_url:
        folder = config.data_dir / "redis"
        server = start_redis(folder)
        label = f"embedded {server_version(redis_binary())} on {server.url}, data in {folder}"
        config = replace(config, settings=config.settings.model_copy(
            update={"redis_url": server.url}))
    os.environ["NEWSWATCH_REDIS_URL"] = config.settings.redis_url or ""
    os.environ["NEWSWATCH_CONFIG"] = str(config.path)
    rt = Runtime.create(config)
    try:
        rt.store.check()                 # one line naming the server, not a traceback
        rt.store.stats.upgrade()         # counters of newswatch <= 0.1, moved once
    except NewswatchError:
        rt.close()
        if server is not None:
            server.stop()
        raise
    rt.redis_label = label if server else rt.store.where
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

    tasks.enqueue_processing(sorted(rt.store.entries.pending()))
    for alert_id in rt.store.records.pending():
        tasks.deliver.delay(alert_id)


def run_forever(config: Config, *, concurrency: int = 4, loglevel: str = "INFO") -> None:
    with services(config) as rt:
        from celery.exceptions import SecurityWarning

        from .app import QUEUES, app

        recover(rt)
        if rt.config.settings.metrics_port:
            from .metrics import serve

            serve(rt.store, rt.config.settings.metrics_port, rt.config.settings.metrics_address)
        callback = start_websub(rt)
        schedule = rt.config.data_dir / "celerybeat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        # Celery's banner and its warning about root (containers run as root) say nothing
        # about newswatch; the start-up summary says what runs, and where.
        warnings.filterwarnings("ignore", category=SecurityWarning)
        worker: Any = app.Worker(pool="threads", concurrency=concurrency, beat=True,
                                 queues=list(QUEUES), loglevel=loglevel, quiet=True,
                                 schedule_filename=str(schedule), without_mingle=True,
                                 without_gossip=True)
        rt.current_classifier()          # the models loaded now: no batch waits for them
        log.info("%s", "\n".join(startup_summary(rt, concurrency)))
        try:
            worker.start()
        finally:
            if callback is not None:
                callback.stop()


def startup_summary(rt: Runtime, concurrency: int) -> list[str]:
    """What `newswatch run` runs, and where: the first thing it says."""
    c, s = rt.config, rt.config.settings
    from .app import broker_url

    channels = []
    for sub in c.subscribers:
        where = str(c.resolve_path(sub.outbox)) if sub.outbox else \
            sub.email or (urlsplit(sub.webhook).netloc if sub.webhook else "") or \
            (sub.apprise or "").split("://", 1)[0] + "://"
        channels.append(f"{sub.id} ({sub.channel} {where}"
                        f"{', ' + sub.digest + ' digest' if sub.digest != 'none' else ''}"
                        f"{f', {sub.maybe} maybe per topic' if sub.maybe else ''})")
    broker = broker_url(s)
    lines = [
        f"newswatch {__version__} run: config {c.path}",
        f"  {len(c.feeds)} feeds, {len(c.topics)} topics ({', '.join(c.topics)})",
        f"  {len(c.subscribers)} subscriber{'' if len(c.subscribers) == 1 else 's'}: "
        f"{'; '.join(channels) or 'none'}",
        f"  Redis: {rt.redis_label}",
        "  broker: " + ("the same Redis" if broker == s.redis_url else _safe(broker)),
        f"  worker: {concurrency} threads, parser processes: "
        f"{rt.parser.processes if rt.parser.processes > 1 else 'none (in threads)'}",
        "  metrics: " + (f"http://{s.metrics_address}:{s.metrics_port}/metrics"
                         if s.metrics_port else "off (settings.metrics_port)"),
        "  WebSub: " + (f"callback {s.websub_callback}, listening on {s.http_listen}"
                        if s.websub_callback and s.http_listen else
                        "off (settings.websub_callback, listen)"),
        "  feedback links: " + (f"{s.public_url}/feedback/..., answered on {s.http_listen}"
                                if s.feedback_links else
                                "off (settings.public_url, feedback_secret, listen)"),
        "  SSRF guard: " + ("OFF (allow_private_networks)" if s.allow_private_networks
                            else "on"),
    ]
    return lines


def _safe(url: str) -> str:
    """A URL without its password."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def start_websub(rt: Runtime) -> Any:
    """The HTTP server (WebSub callbacks, feedback links) when settings.listen is set."""
    listen = rt.config.settings.http_listen
    if not listen:
        return None
    from . import websub

    host, port = websub.listen_address(listen)
    server = websub.CallbackServer(rt.store, rt.config, rt.parser, enqueue_entries,
                                    host, port).start()
    log.info("HTTP server (WebSub callbacks, feedback links) on %s:%d", host, port)
    return server


def enqueue_entries(keys: list[str]) -> None:
    """Pushed entries go to the process queue at once, like polled ones."""
    from . import tasks

    tasks.enqueue_processing(keys)


def serve_forever(config: Config) -> None:
    """`newswatch serve`: only the HTTP endpoints (WebSub callbacks, feedback links), for a
    deployment whose workers run apart (it needs their Redis: settings.redis_url)."""
    if not config.settings.http_listen:
        from .errors import NewswatchError

        raise NewswatchError("newswatch serve needs settings.listen (host:port)")
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
    stats: Totals
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
                                             "polling_interval": 0.05}
        worker: Any = app.WorkController(
            app=app, pool="threads", concurrency=concurrency, queues=list(QUEUES),
            loglevel="WARNING", without_heartbeat=True, without_mingle=True,
            without_gossip=True)
        thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
        before = rt.store.stats.totals()
        start = time.time()
        thread.start()
        try:
            recover(rt)
            rt.store.feeds.sync_schedule((f.id, f.interval) for f in rt.config.feeds)
            tasks.enqueue_polls([f.id for f in rt.config.feeds], rt.config.settings.poll_batch)
            timed_out = not _wait_idle(rt, start, timeout)
        finally:
            _stop_in_its_thread(worker, thread)
        return _summary(rt, start, before, timed_out)


def _stop_in_its_thread(worker: Any, thread: threading.Thread) -> None:
    """Stop the in-process worker from its own event loop. `worker.stop()` called from this
    thread closed the broker channels while the loop thread was iterating over them (kombu's
    poller keeps them in a set): 'RuntimeError: Set changed size during iteration', about one
    run in twenty. Celery's own signal handlers only set a flag that the loop checks; so do we.
    """
    from celery.worker import state

    state.should_stop = 0                       # EX_OK: a warm shutdown, by the loop itself
    try:
        thread.join(30)
        if thread.is_alive():                   # the loop never came round: stop it here
            worker.stop(in_sighandler=False)
            thread.join(10)
    finally:
        state.should_stop = None                # a later run in this process starts anew


def _wait_idle(rt: Runtime, start: float, timeout: float) -> bool:
    """Wait until every feed was polled (or found gone or paused), every entry processed and
    every pending alert (this run's, and those an earlier run left) delivered, dead, or
    waiting for a retry later than the timeout allows. Meanwhile do what beat's `maintain`
    does, sooner: retries due within the run happen in it, and work left unclaimed (by a
    run that was killed, once its claims lapse) is taken up within seconds."""
    from . import pipeline, tasks

    deadline, wall_deadline = time.monotonic() + timeout, time.time() + timeout
    next_maintain = 0.0
    feed_ids = [f.id for f in rt.config.feeds]
    while time.monotonic() < deadline:
        if time.monotonic() >= next_maintain:
            tasks.enqueue(pipeline.due_work(rt.store, rt.config, idle=IDLE))
            next_maintain = time.monotonic() + 0.25
        checked = rt.store.feeds.checked_at(feed_ids)
        polled = all(checked[f] >= start for f in feed_ids)
        if polled and not rt.store.entries.pending():
            tries = rt.store.records.next_tries(rt.store.records.pending())
            if all(at is not None and at > wall_deadline for at in tries.values()):
                return True
        time.sleep(0.02)
    return False


IDLE = 2.0     # seconds a pending alert or entry sits untouched before `--once` takes it up


def _summary(rt: Runtime, start: float, before: Totals, timed_out: bool) -> Summary:
    stats = rt.store.stats.totals().since(before)
    feeds = {}
    states = rt.store.feeds.states([f.id for f in rt.config.feeds])
    for f in rt.config.feeds:
        state = states[f.id]
        if state.skipped and (state.checked_at or 0) >= start:
            status, _, reason = state.skipped.partition(": ")
            feeds[f.id] = (status, reason or None)       # gone, deferred: not polled this run
        else:
            feeds[f.id] = (state.last_status or "not polled", state.last_error)
    alerts = []
    for alert_id in rt.store.records.alerts_since(start):
        record = rt.store.records.load_alert(alert_id)
        if record is not None:
            alert = record.alert
            copies = render.also_reported(alert, rt.store.stories.entries(alert.story_id).values())
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
    unchanged = by_status.get("not_modified", 0) + by_status.get("unchanged", 0)
    skipped = [f"{by_status[s]} {label}" for s, label in (("gone", "gone"),
                                                           ("deferred", "paused"))
               if by_status.get(s)]
    lines = [
        f"newswatch run --once: {len(summary.feeds)} feeds in {summary.seconds:.1f} s "
        f"({by_status.get('ok', 0)} changed, {unchanged} unchanged, "
        f"{by_status.get('error', 0)} failed{''.join(', ' + s for s in skipped)})",
        f"entries: {summary.stats.counts.get('entries_new', 0)} new",
    ]
    matches = summary.stats.matches
    if matches:
        lines.append("matches: " + ", ".join(f"{t} {n}" for t, n in sorted(matches.items())))
    counts: dict[str, int] = {}
    for a in summary.alerts:
        counts[a["status"]] = counts.get(a["status"], 0) + 1
    lines.append(f"alerts: {len(summary.alerts)} new"
                 + (" (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"
                    if counts else ""))
    delivered = sum(summary.stats.delivered.values())
    earlier = delivered - counts.get("delivered", 0)
    if earlier > 0:
        lines.append(f"also delivered {earlier} left pending by an earlier run")
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
    idle = [(fid, status, err) for fid, (status, err) in summary.feeds.items()
            if status in ("gone", "deferred")]
    if idle:
        lines.append("not polled:")
        lines += [f"  {names[fid]}: " + ("gone (no longer polled; remove it from the config)"
                                         if status == "gone" else f"paused: {err}")
                  for fid, status, err in idle]
    if summary.timed_out:
        lines.append("timed out waiting for the pipeline: work is kept and resumes next run")
    return "\n".join(lines)
