"""Hostile input and crashes: what the SSRF guard refuses, what hostile feeds cost, and
whether a crash loses or doubles an alert.

    python bench/hostile.py [--only ssrf,feeds,crash] [--outage 30] [--json]

ssrf:  every spelling of a loopback address (tests/ssrf_forms.py) on every path an untrusted
       URL takes (feed, redirect, webhook, 17 Apprise schemes, WebSub hub): tried, refused,
       and reached (connections a loopback trap on 127.0.0.1 and ::1 accepted).
feeds: `newswatch run --once` on one hostile feed beside the seed feed (all local): wall time,
       peak RSS of the process tree (newswatch, its parser processes, the embedded Redis),
       and whether the seed feed still alerted. max_fetch_seconds is 10 here.
crash: 20 alerts to a webhook receiver (or an SMTP server) that answers in 0.3 s, through real
       Celery workers, while something fails: a worker SIGKILLed three times, `newswatch run`
       SIGKILLed, Redis shut down or SIGKILLed and restarted, the receiver answering 500 or
       the SMTP server down for `--outage` seconds. Counts per alert id (webhook-id /
       Message-ID): expected, once, twice (allowed only for deliveries in flight at a crash,
       which a receiver drops by id), lost.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import yaml  # noqa: E402
from run_once import config_in  # noqa: E402

from tests import ssrf_forms as forms  # noqa: E402
from tests.servers import SMTPServer, WebhookReceiver, free_port, wait_for  # noqa: E402
from tests.test_hostile import LAUGHS  # noqa: E402
from worker import netguard  # noqa: E402
from worker.config import load_config  # noqa: E402
from worker.embedded import start_redis  # noqa: E402
from worker.runtime import Runtime  # noqa: E402

SECRET = forms.SECRET
PYTHON = sys.executable


# -- ssrf ----------------------------------------------------------------------------------

def ssrf() -> dict[str, dict[str, int]]:
    trap = forms.Trap()
    rows: dict[str, dict[str, int]] = {}

    def count(path: str, outcomes: list[forms.Outcome], before: int) -> None:
        row = rows.setdefault(path, {"tried": 0, "refused": 0, "reached": 0})
        row["tried"] += len(outcomes)
        row["refused"] += sum(o.refused for o in outcomes)
        row["reached"] += trap.connections - before

    with tempfile.TemporaryDirectory() as tmp:
        redis_server = start_redis(Path(tmp) / "redis", persistent=False)
        config = load_config(forms.websub_config(Path(tmp)))
        settings = config.settings.model_copy(update={"redis_url": redis_server.url,
                                                      "allow_private_networks": False})
        rt = Runtime.create(config.__class__(config.path, config.feeds, config.topics,
                                             config.subscribers, settings))
        try:
            for form in forms.LOOPBACK_FORMS:
                target = forms.url(form, trap.port)
                bare = form.strip("[]")
                for path, run in (
                        ("feed", lambda t=target: forms.via_feed(t)),
                        ("webhook", lambda t=target: forms.via_webhook(t)),
                        ("websub hub", lambda t=target: forms.via_websub(rt, t))):
                    before = trap.connections
                    count(path, [run()], before)
                before = trap.connections
                count("apprise (17 schemes)", [forms.via_apprise(s.format(
                    h=f"{form}:{trap.port}", bare=f"{bare}&port={trap.port}"))
                    for s in forms.APPRISE_SCHEMES], before)
                count("redirect (feed, webhook, apprise)", *_redirects(form, trap))
        finally:
            rt.close()
            redis_server.stop()
            trap.close()
    return rows


def _redirects(form: str, trap: forms.Trap) -> tuple[list[forms.Outcome], int]:
    from tests.servers import FeedServer, Served

    real = netguard.address_problem
    netguard.address_problem = forms.allow_only("127.0.0.2")   # type: ignore[assignment]
    redirector = FeedServer(host="127.0.0.2")
    before = trap.connections
    try:
        redirector.files["/r"] = Served(b"", status=307, location=forms.raw_header(
            forms.url(form, trap.port)))
        outcomes = [forms.via_feed(redirector.url("/r")), forms.via_webhook(redirector.url("/r")),
                    forms.via_apprise(redirector.url("/r").replace("http://", "json://", 1))]
    finally:
        redirector.close()
        netguard.address_problem = real   # type: ignore[assignment]
    return outcomes, before


# -- hostile feeds -------------------------------------------------------------------------

def _bodies() -> dict[str, Callable[[BaseHTTPRequestHandler], None]]:
    def fixed(body: bytes, encoding: str | None = None) -> Callable[[Any], None]:
        def send(h: BaseHTTPRequestHandler) -> None:
            h.send_response(200)
            h.send_header("Content-Type", "application/rss+xml")
            if encoding:
                h.send_header("Content-Encoding", encoding)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        return send

    head = b"<?xml version='1.0'?><rss version='2.0'><channel><title>hostile</title>"
    unclosed = head + b"".join(b"<item><title>Hostages freed in swap %d</title><guid>g%d</guid>"
                               % (i, i) for i in range(100_000)) + b"</channel></rss>"
    empty = head + b"<item/>" * 1_400_000 + b"</channel></rss>"
    categories = head + b"<item><title>x</title>" + b"<category>c</category>" * 300_000 + \
        b"</item></channel></rss>"
    bomb = gzip.compress(head + b" " * 1_000_000_000 + b"</channel></rss>", 9)

    def endless(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/rss+xml")
        h.end_headers()
        chunk = b" " * 65536
        try:
            for _ in range(200_000_000 // len(chunk)):
                h.wfile.write(chunk)
        except OSError:
            pass

    def drip(h: BaseHTTPRequestHandler) -> None:
        try:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n" * 100:
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                time.sleep(1.0)
        except OSError:
            pass

    out = {
        f"100,000 unclosed <item> ({len(unclosed) / 1e6:.1f} MB)": fixed(unclosed),
        f"1.4 million <item/> ({len(empty) / 1e6:.1f} MB)": fixed(empty),
        f"one item, 300,000 <category> ({len(categories) / 1e6:.1f} MB)": fixed(categories),
        f"gzip bomb (1 GB in {len(bomb) / 1e6:.1f} MB)": fixed(bomb, "gzip"),
        "200 MB body": endless,
        "status line and headers at 1 byte/s": drip,
    }
    out["billion laughs"] = fixed(LAUGHS)
    return out


def feeds() -> dict[str, dict[str, Any]]:
    routes = _bodies()
    seed = (ROOT / "seeds" / "levant-wire.xml").read_bytes()
    paths = {f"/h{i}": send for i, send in enumerate(routes.values())}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/seed":
                self.send_response(200)
                self.send_header("Content-Length", str(len(seed)))
                self.end_headers()
                self.wfile.write(seed)
            elif self.path in paths:
                paths[self.path](self)

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    rows = {}
    try:
        for (name, _), path in zip(routes.items(), paths, strict=True):
            rows[name] = _run_hostile(base + path, base + "/seed")
    finally:
        server.shutdown()
    return rows


def _run_hostile(hostile: str, seed: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # The shipped topics, with the paths they name (models, training files) absolute:
        # copied as text, their relative paths named nothing and every run refused to start.
        config = config_in(folder)
        data = yaml.safe_load(config.read_text())
        data["feeds"] = [{"url": hostile, "name": "Hostile"}, {"url": seed, "name": "Seed"}]
        data["subscribers"] = [{"id": "desk", "outbox": str(folder / "outbox"),
                                "topics": ["ceasefire-talks", "hostage-releases"]}]
        data["settings"] = {"data_dir": str(folder / "var"), "allow_private_networks": True,
                            "max_fetch_seconds": 10, "parse_processes": 2}
        config.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
        start = time.monotonic()
        proc = subprocess.Popen([PYTHON, "-m", "worker.cli", "run", "--once", "--config",
                                 str(config), "--timeout", "120"], cwd=folder, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        peak = _peak_rss_while(proc)
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        proc.wait()
        wall = time.monotonic() - start
        _stop_redis(folder / "var" / "redis")
        error = next((line.strip() for line in out.splitlines()
                      if line.strip().startswith("Hostile:")), "")
        alerts = [p.read_text() for p in (folder / "outbox").glob("*.json")]
        return {"wall_s": round(wall, 1), "peak_rss_mb": round(peak / 1e6),
                "exit": proc.returncode,
                "seed_alerted": any("levantwire.example" in a for a in alerts),
                "alerts": len(alerts),
                "hostile_feed": error.removeprefix("Hostile:").strip()[:90] or "read"}


def _peak_rss_while(proc: subprocess.Popen[bytes]) -> int:
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.05)
    return peak


def _tree_rss(root: int) -> int:
    """RSS of a process and every process in its session (parser processes, Redis)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            session, rss_pages = int(stat[3]), int(stat[21])
        except (OSError, IndexError, ValueError):
            continue
        if session == root:
            total += rss_pages * os.sysconf("SC_PAGE_SIZE")
    return total


def _stop_redis(folder: Path) -> None:
    try:
        info = json.loads((folder / "server.json").read_text())
        os.kill(int(info["pid"]), signal.SIGTERM)
    except (OSError, ValueError, KeyError):
        pass


# -- crash safety ----------------------------------------------------------------------------

def _feed(n: int) -> bytes:
    """n stories that share no word but the topic's (made-up places and people), so that
    each is its own story and its own alert."""
    from tests.test_scale_e2e import NAMES

    items = "".join(f"<item><title>{NAMES[3 * i].title()} {NAMES[3 * i + 1]} hostages "
                    f"freed</title><link>https://wire.example/{i}</link><guid>g{i}</guid>"
                    f"<description>{NAMES[3 * i + 2].title()} {NAMES[3 * i]}.</description>"
                    "</item>" for i in range(n))
    return f"<rss version='2.0'><channel><title>Wire</title>{items}</channel></rss>".encode()


class Harness:
    """A feed of N stories, a receiver, a Redis and Celery processes, in a temp folder."""

    N = 20

    def __init__(self, folder: Path, *, email: bool = False, redis_port: int | None = None
                 ) -> None:
        from tests.servers import FeedServer, Served

        self.folder = folder
        self.feed = FeedServer()
        self.feed.files["/wire.xml"] = Served(_feed(self.N))
        self.receiver = WebhookReceiver(SECRET)
        self.receiver.delay = 0.3
        self.smtp_port = free_port()
        self.redis_folder = folder / "redis"
        self.redis = start_redis(self.redis_folder) if redis_port is None else None
        channel = ("email: desk@example.org\n" if email else
                   f"webhook: {self.receiver.url}\n    secret: {SECRET}\n")
        self.config = folder / "newswatch.yaml"
        self.config.write_text(
            f"feeds:\n  - url: {self.feed.url('/wire.xml')}\n    name: Wire\n"
            "topics:\n  h:\n    name: H\n    query: hostages AND freed\n"
            f"subscribers:\n  - id: ops\n    {channel}    topics: [h]\n"
            f"settings:\n  allow_private_networks: true\n  retry_base_delay: 0.2\n"
            f"  retry_max_delay: 2\n  redeliver_after: 3\n  delivery_timeout: 5\n"
            f"  fetch_timeout: 3\n  smtp_url: smtp://127.0.0.1:{self.smtp_port}\n"
            f"  data_dir: {folder / 'var'}\n")
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def redis_url(self) -> str:
        assert self.redis is not None
        return self.redis.url

    def env(self) -> dict[str, str]:
        return dict({k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")},
                    NEWSWATCH_CONFIG=str(self.config), NEWSWATCH_REDIS_URL=self.redis_url)

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([PYTHON, *args], env=env or self.env(), cwd=self.folder,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def worker(self) -> subprocess.Popen[bytes]:
        return self.spawn("-m", "celery", "-A", "worker.app", "worker", "-Q",
                          "poll,process,deliver", "--pool", "threads", "-c", "4",
                          "--without-mingle", "--without-gossip", "-n",
                          f"w{len(self.procs)}@%h")

    def beat(self) -> subprocess.Popen[bytes]:
        return self.spawn("-m", "celery", "-A", "worker.app", "beat", "-s",
                          str(self.folder / f"beat{len(self.procs)}"))

    def delivered_ids(self) -> Counter[str]:
        return Counter(i for i, _, status in self.receiver.attempts if status == 200)

    def pending(self) -> int:
        import redis

        return int(redis.Redis.from_url(self.redis_url).scard("nw:pending:alerts"))

    def settle(self, count: Callable[[], Counter[str]], timeout: float = 120) -> bool:
        return wait_for(lambda: len(count()) >= self.N and self.pending() == 0, timeout, 0.2)

    def in_flight(self) -> set[str]:
        """Alerts a receiver was answering when the moment came (sent, not yet answered)."""
        now = time.time()
        return {i for i, t, _ in self.receiver.attempts if t > now - self.receiver.delay}

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        self.feed.close()
        self.receiver.close()
        if self.redis is not None:
            self.redis.stop()


def _kick(h: Harness) -> None:
    from celery import Celery

    feed_id = load_config(h.config).feeds[0].id
    Celery(broker=h.redis_url).send_task("newswatch.poll_feed", args=[feed_id], queue="poll")


def _tally(h: Harness, counts: Counter[str], in_flight: set[str]) -> dict[str, Any]:
    twice = {i for i, n in counts.items() if n > 1}
    return {"expected": h.N, "once": sum(1 for n in counts.values() if n == 1),
            "twice": len(twice), "lost": max(0, h.N - len(counts)),
            "twice_not_in_flight": len(twice - in_flight), "in_flight_at_crash": len(in_flight)}


def crash_worker_kill(folder: Path) -> dict[str, Any]:
    h = Harness(folder)
    in_flight: set[str] = set()
    try:
        first = h.worker()
        _kick(h)
        for kill in range(3):
            target = 3 * (kill + 1)
            if not wait_for(lambda t=target: len(h.receiver.attempts) >= t, 60):
                break
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            in_flight |= h.in_flight()
            first = h.worker()
        h.beat()
        h.settle(h.delivered_ids)
        return _tally(h, h.delivered_ids(), in_flight)
    finally:
        h.close()


def crash_run_kill(folder: Path) -> dict[str, Any]:
    h = Harness(folder)
    try:
        env = h.env()
        del env["NEWSWATCH_REDIS_URL"]            # the main job on its embedded Redis
        h.redis.stop()   # type: ignore[union-attr]
        h.redis = None
        run = h.spawn("-m", "worker.cli", "run", "--config", str(h.config), env=env)
        wait_for(lambda: len(h.receiver.attempts) >= 5, 60)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        in_flight = h.in_flight()
        again = subprocess.run([PYTHON, "-m", "worker.cli", "run", "--once", "--config",
                                str(h.config), "--timeout", "120"], env=env, cwd=folder,
                               capture_output=True, timeout=200)
        _stop_redis(folder / "var" / "redis")
        counts = h.delivered_ids()
        result = _tally(h, counts, in_flight)
        result["exit_after"] = again.returncode
        return result
    finally:
        h.close()


def crash_redis(folder: Path, how: str) -> dict[str, Any]:
    h = Harness(folder)
    try:
        h.worker()
        h.beat()
        _kick(h)
        wait_for(lambda: len(h.receiver.attempts) >= 5, 60)
        assert h.redis is not None
        port = h.redis.port
        if how == "shutdown":
            h.redis.stop()                              # SIGTERM: SHUTDOWN, AOF synced
        else:
            assert h.redis.process is not None
            h.redis.process.kill()
            h.redis.process.wait()
        in_flight = h.in_flight()
        time.sleep(2)
        h.redis = _restart_on(h.redis_folder, port)
        h.settle(h.delivered_ids)
        return _tally(h, h.delivered_ids(), in_flight)
    finally:
        h.close()


def _restart_on(folder: Path, port: int) -> Any:
    """redis-server again on the same port and append-only file (workers reconnect)."""
    from worker.embedded import RedisServer, redis_binary

    (folder / "server.json").unlink(missing_ok=True)
    proc = subprocess.Popen([redis_binary(), "--port", str(port), "--bind", "127.0.0.1",
                             "--dir", str(folder.resolve()), "--appendonly", "yes",
                             "--appendfsync", "everysec", "--logfile", "redis.log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    server = RedisServer(proc, port, folder)
    import redis

    wait_for(lambda: _pings(redis.Redis(port=port)), 15)
    return server


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def crash_receiver_500(folder: Path, outage: float) -> dict[str, Any]:
    h = Harness(folder)
    try:
        until = time.time() + outage
        real = h.receiver.next_status
        h.receiver.next_status = lambda: 500 if time.time() < until else real()  # type: ignore[method-assign]
        h.worker()
        h.beat()
        _kick(h)
        h.settle(h.delivered_ids, outage + 120)
        result = _tally(h, h.delivered_ids(), set())
        result["refused_attempts"] = h.receiver.refused
        return result
    finally:
        h.close()


def crash_smtp_down(folder: Path, outage: float) -> dict[str, Any]:
    h = Harness(folder, email=True)
    smtp: SMTPServer | None = None
    try:
        h.worker()
        h.beat()
        _kick(h)
        time.sleep(outage)
        from aiosmtpd.controller import Controller

        from tests.servers import _Collect

        smtp = SMTPServer.__new__(SMTPServer)
        smtp.messages = []
        smtp.port = h.smtp_port
        smtp.controller = Controller(_Collect(smtp.messages), hostname="127.0.0.1",
                                     port=h.smtp_port)
        smtp.controller.start()

        def ids() -> Counter[str]:
            return Counter(str(m["Message-ID"]) for m in list(smtp.messages))  # type: ignore[union-attr]

        h.settle(ids, 120)
        return _tally(h, ids(), set())
    finally:
        if smtp is not None:
            smtp.controller.stop()
        h.close()


def crash(outage: float) -> dict[str, dict[str, Any]]:
    scenarios: dict[str, Callable[[Path], dict[str, Any]]] = {
        "worker SIGKILL x3": crash_worker_kill,
        "newswatch run SIGKILL": crash_run_kill,
        "Redis SHUTDOWN, restarted": lambda f: crash_redis(f, "shutdown"),
        "Redis SIGKILL, restarted": lambda f: crash_redis(f, "kill"),
        f"receiver 500 for {outage:g} s": lambda f: crash_receiver_500(f, outage),
        f"SMTP down for {outage:g} s": lambda f: crash_smtp_down(f, outage),
    }
    rows = {}
    for name, run in scenarios.items():
        with tempfile.TemporaryDirectory() as tmp:
            rows[name] = run(Path(tmp))
    return rows


# -- report --------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="ssrf,feeds,crash")
    parser.add_argument("--outage", type=float, default=30.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    socket.setdefaulttimeout(30)
    figures: dict[str, Any] = {}
    if "ssrf" in wanted:
        figures["ssrf"] = ssrf()
    if "feeds" in wanted:
        figures["feeds"] = feeds()
    if "crash" in wanted:
        figures["crash"] = crash(args.outage)
    if args.json:
        print(json.dumps(figures))
        return
    if "ssrf" in figures:
        print(f"SSRF: {len(forms.LOOPBACK_FORMS)} spellings of loopback per path")
        print(f"{'path':36}{'tried':>7}{'refused':>9}{'reached':>9}")
        for path, row in figures["ssrf"].items():
            print(f"{path:36}{row['tried']:>7}{row['refused']:>9}{row['reached']:>9}")
    if "feeds" in figures:
        print("\nhostile feeds (newswatch run --once, beside the seed feed)")
        print(f"{'feed':40}{'wall s':>7}{'peak MB':>8}{'exit':>5}{'alerts':>7}  seed alerted  "
              "feed outcome")
        for name, row in figures["feeds"].items():
            print(f"{name:40}{row['wall_s']:>7}{row['peak_rss_mb']:>8}{row['exit']:>5}"
                  f"{row['alerts']:>7}  {'yes' if row['seed_alerted'] else 'NO':12}  "
                  f"{row['hostile_feed']}")
    if "crash" in figures:
        print("\ncrash safety (20 alerts; twice: only where a delivery was in flight)")
        print(f"{'scenario':30}{'expected':>9}{'once':>6}{'twice':>7}{'lost':>6}"
              f"{'in flight':>11}")
        for name, row in figures["crash"].items():
            print(f"{name:30}{row['expected']:>9}{row['once']:>6}{row['twice']:>7}"
                  f"{row['lost']:>6}{row['in_flight_at_crash']:>11}")


if __name__ == "__main__":
    main()
