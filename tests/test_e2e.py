"""End to end on real parts: Celery worker and beat processes, Redis, HTTP feeds, a webhook
receiver verifying signatures, aiosmtpd; and `newswatch run` exactly as the README runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import (
    SECRET,
    SEED_RUN,
    celery_beat,
    celery_worker,
    serve_seeds,
    shipped_config,
    spawn,
    stop,
    write_config,
)
from tests.servers import FeedServer, SMTPServer, WebhookReceiver, wait_for
from worker.config import load_config

pytestmark = pytest.mark.e2e
SEED_TITLE = "Hamas says indirect talks with Israel resumes in Qatari capital"
# The same story from the second outlet: with concurrent polls either copy may lead the story.
SEED_STORY = {SEED_TITLE, "Hamas: indirect talks with Israel resume in Qatari capital Doha"}


def env_for(config: Path, redis_url: str) -> dict[str, str]:
    env = dict(os.environ, NEWSWATCH_CONFIG=str(config), NEWSWATCH_REDIS_URL=redis_url,
               PYTHONUNBUFFERED="1")
    env.pop("NEWSWATCH_BROKER_URL", None)
    return env


@pytest.fixture
def celery_setup(tmp_path: Path, feed_server: FeedServer, receiver: WebhookReceiver,
                 smtp: SMTPServer, redis_url: str) -> Iterator[tuple[Path, dict[str, str]]]:
    feeds = serve_seeds(feed_server)
    config = write_config(tmp_path, f"""\
        feeds:
{feeds}
        subscribers:
          - id: ops
            webhook: {receiver.url}
            secret: {SECRET}
            topics: [ceasefire-talks, hostage-releases]
          - id: desk
            email: desk@example.org
            topics: [hostage-releases]
        settings:
          smtp_url: {smtp.url}
          from_address: newswatch@example.org
        """)
    yield config, env_for(config, redis_url)


def test_celery_worker_and_beat_two_cycles(tmp_path: Path, celery_setup: tuple[Path, dict[str,
                                           str]], feed_server: FeedServer,
                                           receiver: WebhookReceiver, smtp: SMTPServer,
                                           redis_url: str) -> None:
    config, env = celery_setup
    env["NEWSWATCH_LOG_FORMAT"] = "json"
    worker = celery_worker(env, "e2e", tmp_path / "worker.log", extra=("-l", "DEBUG"))
    beat = celery_beat(env, tmp_path / "beat-schedule", tmp_path / "beat.log")
    try:
        # Cycle 1, scheduled by beat: 5 alerts for ops (webhook), 3 for desk (email).
        assert wait_for(lambda: len(receiver.received) >= 5 and len(smtp.messages) >= 3, 60), \
            (tmp_path / "worker.log").read_text()[-3000:]
        stop(beat)
        # Cycle 2: poll every feed again now (beat would wait for the interval).
        from celery import Celery

        producer = Celery(broker=redis_url)
        for feed in load_config(config).feeds:
            producer.send_task("newswatch.poll_feed", args=[feed.id], queue="poll")
        assert wait_for(lambda: feed_server.not_modified >= 3, 30)
        state = redis.Redis.from_url(redis_url, decode_responses=True)
        assert wait_for(lambda: state.scard("nw:pending:alerts") == 0 and
                        state.zcard("nw:pending:entries") == 0, 30)
        # Each task ran once: one poll per feed per cycle (queues must not share a binding).
        assert state.hget("nw:stats:polls", "ok") == "3"
        assert state.hget("nw:stats:polls", "not_modified") == "3"
    finally:
        stop(beat)
        assert stop(worker) in (0, -signal.SIGTERM)

    assert all(h.verified for h in receiver.received)
    ids = Counter(h.headers["webhook-id"] for h in receiver.received)
    stories = Counter(h.body["story"]["id"] for h in receiver.received)
    assert len(receiver.received) == 5 and max(ids.values()) == 1 and max(stories.values()) == 1
    seed = [h.body for h in receiver.received if h.body["story"]["title"] in SEED_STORY]
    assert len(seed) == 1
    assert [t["id"] for t in seed[0]["topics"]] == ["ceasefire-talks", "hostage-releases"]
    assert len(smtp.messages) == 3
    assert len({m["Message-ID"] for m in smtp.messages}) == 3
    assert sum(any(t in m["Subject"] for t in SEED_STORY) for m in smtp.messages) == 1

    # The worker logged JSON lines (at DEBUG, Celery's own records too) naming each feed and
    # alert.
    records = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines()
               if line.startswith("{")]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    polled = [r for r in records if r.get("outcome") == "ok" and "feed" in r]
    assert {r["url"] for r in polled} == {f.url for f in load_config(config).feeds}
    delivered = [r for r in records if r.get("outcome") == "delivered"]
    assert len(delivered) == 8
    assert {(r["subscriber"], r["channel"]) for r in delivered} == {("ops", "webhook"),
                                                                   ("desk", "email")}
    assert all(r["alert"] in r["message"] for r in delivered)
    assert any(r["logger"].startswith("celery") for r in records)


def readme_config(tmp_path: Path) -> Path:
    return shipped_config(tmp_path)


def test_run_once_on_the_seeds_twice(tmp_path: Path) -> None:
    config = readme_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    cmd = [sys.executable, "-m", "worker.cli", "run", "--once", "--config", str(config)]
    first = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    n = SEED_RUN.alerts
    assert "4 feeds" in out and "(4 changed, 0 unchanged, 0 failed)" in out
    assert f"alerts: {n} new ({n} delivered)" in out
    assert "entries: 17 new" in out and f"matches: {SEED_RUN.matches}" in out
    assert f"per subscriber: desk {n} (outbox)" in out
    blocks = out.split("  [")
    seed_block = next(b for b in blocks if SEED_TITLE in b)
    assert seed_block.startswith("delivered] desk: Ceasefire talks + Hostage releases\n")
    assert all(t in seed_block for t in SEED_STORY)        # both outlets, one alert
    bodies = [json.loads(p.read_text()) for p in (tmp_path / "outbox").glob("*.json")]
    assert len(bodies) == n and len(list((tmp_path / "outbox").glob("*.eml"))) == n
    french = [b["story"] for b in bodies if b["story"]["lang"] == "fr"]
    assert len(french) == n - 5 and all(s["url"].startswith("https://sahel-depeches.example/")
                                        for s in french)
    seed = next(b for b in bodies if b["story"]["title"] in SEED_STORY)
    assert [t["id"] for t in seed["topics"]] == ["ceasefire-talks", "hostage-releases"]
    assert (tmp_path / "var" / "redis" / "appendonly.aof").exists() or \
        (tmp_path / "var" / "redis" / "appendonlydir").is_dir()

    # The embedded Redis kept its state on disk: a second run alerts nothing again.
    second = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0, second.stderr
    assert "(0 changed, 4 unchanged, 0 failed)" in second.stdout
    assert "alerts: 0 new" in second.stdout


def test_run_forever_polls_on_schedule_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    config = readme_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    proc = spawn([sys.executable, "-m", "worker.cli", "run", "--config", str(config)], env,
                 tmp_path / "run.log", tmp_path)
    try:
        assert wait_for(lambda: len(list((tmp_path / "outbox").glob("*.json"))) ==
                        SEED_RUN.alerts, 60), \
            (tmp_path / "run.log").read_text()[-3000:]
    finally:
        code = stop(proc, signal.SIGINT)
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert not list((tmp_path / "var" / "redis").glob("*.pid"))


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "newswatch"      # the venv's, activated or not
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("newswatch ")


RABBITMQ = os.environ.get("NEWSWATCH_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _rabbitmq_up() -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(RABBITMQ)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2):
            return True
    except OSError:
        return False


def test_rabbitmq_as_the_celery_broker(tmp_path: Path, celery_setup: tuple[Path, dict[str,
                                       str]], receiver: WebhookReceiver, smtp: SMTPServer,
                                       redis_url: str) -> None:
    if not _rabbitmq_up():
        pytest.skip(f"no RabbitMQ at {RABBITMQ} (set NEWSWATCH_TEST_AMQP_URL)")
    import uuid

    config, env = celery_setup
    env = dict(env, NEWSWATCH_BROKER_URL=RABBITMQ)
    # Queues on a shared broker: give this run its own names so no other consumer takes them.
    suffix = uuid.uuid4().hex[:8]
    env["NEWSWATCH_QUEUE_SUFFIX"] = suffix
    queues = ",".join(f"{q}-{suffix}" for q in ("poll", "process", "deliver"))
    worker = celery_worker(env, f"amqp-{suffix}", tmp_path / "worker.log", queues=queues)
    try:
        from celery import Celery

        producer = Celery(broker=RABBITMQ)
        for feed in load_config(config).feeds:
            producer.send_task("newswatch.poll_feed", args=[feed.id], queue=f"poll-{suffix}",
                               exchange=f"poll-{suffix}", routing_key=f"poll-{suffix}")
        assert wait_for(lambda: len(receiver.received) >= 5 and len(smtp.messages) >= 3, 60), \
            (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        stop(worker)
    assert len({h.headers["webhook-id"] for h in receiver.received}) == 5
    state = redis.Redis.from_url(redis_url, decode_responses=True)
    assert state.hget("nw:stats:polls", "ok") == "3"          # state in Redis, tasks on AMQP
