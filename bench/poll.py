"""Poll cycles of N local feeds, measured fairly: newswatch against rss2email, reader and the floor.

    python bench/poll.py [--feeds 1000] [--rounds 5] [--json] [--skip-peers]
                         [--memory-feeds 10000]

nginx serves N generated feeds (~50 KB, 30 items: real headlines with their own summaries in the
markup real descriptions carry; real ETag / Last-Modified) on 127.0.0.1, a copy per tool
(`--hosts K` spreads them over K loopback addresses, 127.1.x.y, where newswatch's per-host
politeness applies as configured by default; on one host it is lifted, as the peers have none).
**No tool keeps a connection** from one request to the next: nginx closes each one after its
answer (`keepalive_timeout 0`), so newswatch's long-lived session and the peers' per-run clients
pay the same connection cost. Every round starts each tool afresh (its own process and state)
and runs, the tools alternating within each cycle in an order that rotates by round: **cold**
(all feeds new), **warm** (nothing changed: every answer is a 304) and **mixed** (10% of the
feeds changed, each with 1 to 3 new items, as real feeds change). The figures are the medians
over `--rounds` rounds, with min and max; timings are taken inside each process around the cycle
alone (no interpreter start-up); memory is the PSS of each tool's process tree (the throwaway
Redis included) after the mixed cycle.

What each does per cycle, until its work on the new entries is done:
- newswatch: fetch every feed conditionally, parse the changed bodies over the cores, take in
  new entries, then process them as its workers do: classify against the shipped topics
  (lexically: the model's cost is bench/semantic.py's), place each match in a story and record
  its alerts (no delivery), on a throwaway Redis, 4 threads at a time as Celery's;
- rss2email 3.14: `r2e run --no-send`: fetch, parse, and format an email per new entry;
- reader 3.26: `update_feeds(scheduled=False, workers=8)`: fetch, parse, store new entries in
  SQLite;
- the floor: the same conditional requests from a bare aiohttp client, each changed body handed
  as it arrives to feedparser (with newswatch's settings: no sanitiser, no URI resolution)
  over every core, nothing else.

Also: newswatch's CPU per 304 (warm cycle) and its PSS with `--memory-feeds` feeds scheduled and
polled (the N files served under several URLs each).
Needs nginx (Debian: `apt-get install nginx-light`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / ".peers"
PEER_PACKAGES = ["rss2email==3.14", "reader==3.26", "sgmllib3k"]


# -- feeds and server ----------------------------------------------------------------------

def host_of(i: int, hosts: int) -> str:
    """Feed i's host: 127.0.0.1 for all with one host, else one of `hosts` loopback addresses."""
    if hosts == 1:
        return "127.0.0.1"
    k = i % hosts
    return f"127.1.{k // 250}.{k % 250 + 1}"


@functools.cache
def real_items() -> list[tuple[str, str]]:
    """(headline, summary) of the real feeds in ../shared/feeds/real (the seeds where that is
    absent), as published: generated items are these, so the shipped topics match as often as
    they match real news (2.5% of the real feeds' items)."""
    sys.path.insert(0, str(ROOT / "bench"))
    from classify import corpus

    return [(t, s) for t, s in corpus() if t]


def write_feed(path: Path, n: int, newest: int) -> None:
    """Feed n holding its items newest-30+1 .. newest, newest first: an item's text depends only
    on (n, its number), so a feed that gained k items differs by those k (and lost its k
    oldest), as a real feed does. Each item is a real headline with its own summary, in ~1.6 KB
    of the markup real descriptions carry (images, links: no text)."""
    pairs = real_items()
    items = []
    for j in range(newest, newest - 30, -1):
        rng = random.Random(n * 100_003 + j)
        title, summary = rng.choice(pairs)
        html = f"<p>{escape(summary)}</p>"
        while len(html) < 1500:
            html += (f'<a href="https://outlet{n}.example/{j}/{rng.getrandbits(64):x}"><img '
                     f'src="https://cdn{n}.example/img/{rng.getrandbits(96):x}.jpg" '
                     'width="640" height="360" alt=""></a>')
        items.append(f"<item><title>{escape(title)}</title>"
                     f"<link>https://outlet{n}.example/{j}</link>"
                     f"<guid>https://outlet{n}.example/{j}</guid>"
                     f"<pubDate>Sat, 04 Jan 2025 {j % 24:02d}:05:00 GMT</pubDate>"
                     f"<description>{escape(html)}</description></item>")
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
                    f"<title>Outlet {n}</title><link>https://outlet{n}.example/</link>"
                    f"<description>News</description>{''.join(items)}</channel></rss>")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_nginx(folder: Path, hosts: int) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("bench/poll.py needs nginx: apt-get install nginx-light")
    port = free_port()
    listens = "".join(f"    listen {host_of(i, hosts)}:{port};\n" for i in range(hosts))
    conf = folder / "nginx.conf"
    conf.write_text(f"""daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  types {{ application/rss+xml xml; }}
  keepalive_timeout 0;               # no tool keeps a connection: the same for all
  client_body_temp_path {folder}; proxy_temp_path {folder}; fastcgi_temp_path {folder};
  uwsgi_temp_path {folder}; scgi_temp_path {folder};
  server {{
{listens}    root {folder}/www;
    etag on;
  }}
}}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host_of(hosts - 1, hosts), port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"nginx did not start: {proc.stderr.read().decode() if proc.stderr else ''}")


# -- runners (each in its own process) -----------------------------------------------------

def pss_mb() -> float:
    """The PSS of this process and all its descendants (parser processes, forkserver, the
    throwaway redis-server), in MB: each shared page counted once across them."""
    parents: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("PPid:"):
                    parents[int(status.parent.name)] = int(line.split()[1])
                    break
        except OSError:
            continue
    mine, frontier = {os.getpid()}, {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - mine
        mine |= frontier
    total = 0
    for pid in mine:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def shipped_topics_yaml() -> str:
    """The shipped topics' queries, as a config's `topics:` block."""
    from worker.config import load_config

    topics = load_config(ROOT / "config" / "newswatch.yaml").topics
    out = "topics:\n"
    for topic_id, topic in topics.items():
        query = " ".join(topic.query.split())
        out += (f"  {topic_id}:\n    name: {json.dumps(topic.name)}\n"
                f"    query: {json.dumps(query)}\n")
    return out


class NewswatchRunner:
    def __init__(self, urls: list[str], state: Path) -> None:
        """Default settings, but for politeness when every feed is on one host (the peers do
        not hold back either: the engine, not the courtesy gap, is measured) and lexical
        classification (the model's cost is bench/semantic.py's)."""
        sys.path.insert(0, str(ROOT))
        from worker.config import load_config
        from worker.embedded import start_redis
        from worker.runtime import Runtime

        self.redis = start_redis(state / "redis")
        feeds = "".join(f"  - url: {u}\n" for u in urls)
        config = state / "newswatch.yaml"
        one_host = len({u.split("/")[2] for u in urls}) == 1
        polite = "  host_concurrency: 100\n  host_min_gap: 0\n" if one_host else ""
        config.write_text(f"feeds:\n{feeds}{shipped_topics_yaml()}subscribers:\n"
                          f"  - id: desk\n    outbox: {state / 'outbox'}\n"
                          "    topics: [ceasefire-talks, hostage-releases]\n"
                          f"settings:\n  allow_private_networks: true\n  semantic: false\n"
                          f"  redis_url: {self.redis.url}\n{polite}")
        self.rt = Runtime.create(load_config(config))
        self.rt.parser.warm_up()              # as a worker does when it starts
        self.ids = [f.id for f in self.rt.config.feeds]

    def cycle(self) -> dict[str, Any]:
        """As workers run it: `poll_batch` feeds a task, on 4 threads as Celery's; each poll
        task, when it ends, queues its new entries in tasks (`pipeline.batches`, as
        tasks.poll_feeds does) behind the tasks already queued, so a thread that is free
        processes one batch's entries while the other batches are still polled. Done when
        every alert is recorded."""
        from concurrent.futures import Future, ThreadPoolExecutor

        from worker import pipeline

        size = self.rt.config.settings.poll_batch
        batches = [self.ids[i:i + size] for i in range(0, len(self.ids), size)]
        outcomes: list[Any] = []
        processing: list[Future[list[str]]] = []
        polled = [0.0]
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as threads:
            def poll(feed_ids: list[str]) -> None:
                done = pipeline.poll_feeds(self.rt.poller, feed_ids)
                outcomes.extend(done)
                new = [key for o in done for key in o.new_entries]
                processing.extend(threads.submit(pipeline.process_entries, self.rt.processor,
                                                 batch) for batch in pipeline.batches(new))
                polled[0] = time.perf_counter()

            for polling in [threads.submit(poll, b) for b in batches]:
                polling.result()                  # a failure is the bench's, not hidden
            alerts = sum(len(f.result()) for f in processing)
        statuses: dict[str, int] = {}
        for o in outcomes:
            statuses[o.status] = statuses.get(o.status, 0) + 1
        return {"statuses": statuses,
                "new_entries": sum(len(o.new_entries) for o in outcomes), "alerts": alerts,
                "poll_s": round(polled[0] - started, 3),
                "process_s": round(time.perf_counter() - polled[0], 3)}

    def close(self) -> None:
        self.rt.close()
        self.redis.stop()


class Rss2emailRunner:
    def __init__(self, urls: list[str], state: Path) -> None:
        from rss2email import main as r2e

        self.r2e = r2e
        import logging

        logging.getLogger("rss2email").setLevel(logging.WARNING)
        self.args = ["-c", str(state / "r2e.cfg"), "-d", str(state / "r2e.json")]
        r2e.run(*[[*self.args, "new", "bench@example.org"]])
        for i, url in enumerate(urls):
            r2e.run(*[[*self.args, "add", f"f{i}", url]])

    def cycle(self) -> dict[str, Any]:
        self.r2e.run(*[[*self.args, "run", "--no-send"]])
        return {}

    def close(self) -> None:
        pass


class ReaderRunner:
    def __init__(self, urls: list[str], state: Path) -> None:
        from reader import make_reader

        self.reader = make_reader(str(state / "reader.sqlite"))
        for url in urls:
            self.reader.add_feed(url)

    def cycle(self) -> dict[str, Any]:
        self.reader.update_feeds(scheduled=False, workers=8)
        return {"entries": self.reader.get_entry_counts().total}

    def close(self) -> None:
        self.reader.close()


class FloorRunner:
    """The same requests from a bare aiohttp client, each changed body parsed by feedparser
    (newswatch's settings) over every core as it arrives: what a poll cycle cannot go below."""

    def __init__(self, urls: list[str], state: Path) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.urls = urls
        self.etags: dict[str, str] = {}
        self.pool = ProcessPoolExecutor(os.cpu_count() or 1)
        list(self.pool.map(_noop, range(os.cpu_count() or 1)))      # started before timing

    def cycle(self) -> dict[str, Any]:
        import asyncio

        return {"changed": asyncio.run(self._requests())}

    async def _requests(self) -> int:
        import asyncio

        import aiohttp

        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            async def get(url: str) -> int:
                headers = {"If-None-Match": self.etags[url]} if url in self.etags else {}
                async with session.get(url, headers=headers) as response:
                    if response.status == 304:
                        return 0
                    body = await response.read()
                    self.etags[url] = response.headers.get("ETag", "")
                await loop.run_in_executor(self.pool, _feedparse, body)
                return 1

            return sum(await asyncio.gather(*(get(u) for u in self.urls)))

    def close(self) -> None:
        self.pool.shutdown()


def _noop(_: int) -> None:
    return None


def _feedparse(body: bytes) -> int:
    import feedparser

    parsed = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
    return len(parsed["entries"])


RUNNERS = {"newswatch": NewswatchRunner, "rss2email": Rss2emailRunner, "reader": ReaderRunner,
           "floor": FloorRunner}


def runner_main(name: str, urls_file: Path, state: Path) -> None:
    """Serve cycles on stdin/stdout: a line with the cycle's name in, a JSON line out."""
    urls = urls_file.read_text().split()
    runner = RUNNERS[name](urls, state)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "pss":
            print(json.dumps({"pss_mb": pss_mb()}), flush=True)
            continue
        cpu, started = cpu_seconds(), time.perf_counter()
        extra = runner.cycle()
        print(json.dumps({"seconds": round(time.perf_counter() - started, 3),
                          "cpu_s": round(cpu_seconds() - cpu, 3), **extra}), flush=True)
    runner.close()


# -- orchestration -------------------------------------------------------------------------

class Tool:
    def __init__(self, name: str, python: str, urls: list[str], folder: Path) -> None:
        state = folder / f"state-{name}"
        state.mkdir()
        urls_file = state / "urls.txt"
        urls_file.write_text("\n".join(urls))
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--runner", name, "--urls",
             str(urls_file), "--state", str(state)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
            cwd=state, start_new_session=True)
        self.ask(None)

    def ask(self, command: str | None) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        if command:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"runner failed (exit {self.proc.wait()})")
        return dict(json.loads(line))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def peers_python() -> str:
    python = PEERS / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "aiohttp",
                        *PEER_PACKAGES], check=True)
    return str(python)


CYCLES = ("cold", "warm", "mixed")


def one_round(number: int, tools: list[str], feeds: int, changed: list[int], hosts: int,
              port: int, folder: Path) -> dict[str, dict[str, Any]]:
    """Every tool afresh on its own copy of the feeds; each cycle run by every tool in turn,
    in an order that rotates with the round; the same changes for all before `mixed`."""
    here = folder / f"round{number}"
    here.mkdir()
    rng = random.Random(number)
    adds = {n: rng.randint(1, 3) for n in changed}          # new items per changed feed
    running: dict[str, Tool] = {}
    try:
        for name in tools:
            www = folder / "www" / name
            if not www.exists():
                www.mkdir(parents=True)
            for n in range(feeds):
                write_feed(www / f"f{n}.xml", n, 30)
            urls = [f"http://{host_of(n, hosts)}:{port}/{name}/f{n}.xml" for n in range(feeds)]
            python = sys.executable if name in ("newswatch", "floor") else peers_python()
            running[name] = Tool(name, python, urls, here)
        order = tools[number % len(tools):] + tools[:number % len(tools)]
        out: dict[str, dict[str, Any]] = {name: {} for name in tools}
        for cycle in CYCLES:
            if cycle == "mixed":
                later = time.time() + 10 + number         # a new mtime: a new ETag
                for name in tools:
                    for n, k in adds.items():
                        path = folder / "www" / name / f"f{n}.xml"
                        write_feed(path, n, 30 + k)
                        os.utime(path, (later, later))
            for name in order:
                out[name][cycle] = running[name].ask(cycle)
        for name in tools:
            out[name]["pss_mb"] = running[name].ask("pss")["pss_mb"]
        return out
    finally:
        for tool in running.values():
            tool.close()


def memory(python: str, feeds: int, files: int, hosts: int, port: int,
           folder: Path) -> dict[str, Any]:
    """newswatch's PSS with `feeds` feeds scheduled and polled twice."""
    urls = [f"http://{host_of(i % files, hosts)}:{port}/newswatch/f{i % files}.xml"
            f"?copy={i // files}" for i in range(feeds)]
    (folder / "memory").mkdir()
    tool = Tool("newswatch", python, urls, folder / "memory")
    try:
        ready = tool.ask("pss")
        first = tool.ask("cold")
        tool.ask("warm")
        after = tool.ask("pss")
        return {"memory_feeds": feeds, "pss_mb_at_start": ready["pss_mb"],
                "pss_mb": after["pss_mb"], "memory_cold_s": first["seconds"]}
    finally:
        tool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--changed", type=float, default=0.10, help="share changed in mixed")
    parser.add_argument("--memory-feeds", type=int, default=10_000,
                        help="feeds for the memory figure (0: skip)")
    parser.add_argument("--hosts", type=int, default=1,
                        help="loopback hosts to spread the feeds over (default 1: 127.0.0.1)")
    parser.add_argument("--skip-peers", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runner", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--urls", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.runner:
        runner_main(args.runner, args.urls, args.state)
        return

    tools = ["newswatch", "floor"] + ([] if args.skip_peers else ["rss2email", "reader"])
    changed = random.Random(7).sample(range(args.feeds), max(1, int(args.feeds * args.changed)))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "www").mkdir()
        nginx, port = start_nginx(folder, args.hosts)
        try:
            rounds = [one_round(r, tools, args.feeds, changed, args.hosts, port, folder)
                      for r in range(args.rounds)]
            mem = memory(sys.executable, args.memory_feeds, args.feeds, args.hosts, port,
                         folder) if args.memory_feeds else {}
        finally:
            os.killpg(nginx.pid, signal.SIGTERM)
            nginx.wait(10)
    report(args, tools, rounds, mem, len(changed))


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 3), "min": ordered[0],
            "max": ordered[-1]}


def report(args: argparse.Namespace, tools: list[str], rounds: list[dict[str, Any]],
           mem: dict[str, Any], changed: int) -> None:
    figures: dict[str, Any] = {"feeds": args.feeds, "rounds": args.rounds,
                               "changed_in_mixed": changed}
    seconds = {(name, c): spread([r[name][c]["seconds"] for r in rounds])
               for name in tools for c in CYCLES}
    for (name, cycle), s in seconds.items():
        figures[f"{name}_{cycle}_s"] = s
    for name in tools:
        figures[f"{name}_pss_mb"] = spread([r[name]["pss_mb"] for r in rounds])
    for cycle in CYCLES:
        nw = seconds[("newswatch", cycle)]["median"]
        for peer in ("rss2email", "reader"):
            if peer in tools:
                figures[f"{cycle}_x_{peer}"] = round(seconds[(peer, cycle)]["median"] / nw, 2)
        figures[f"{cycle}_over_floor"] = round(nw / seconds[("floor", cycle)]["median"], 2)
    figures["cpu_ms_per_304"] = spread([round(1000 * r["newswatch"]["warm"]["cpu_s"]
                                              / args.feeds, 3) for r in rounds])
    last = rounds[-1]["newswatch"]
    figures["newswatch_work"] = {c: {k: last[c].get(k) for k in (
        "statuses", "new_entries", "alerts", "poll_s", "process_s")} for c in CYCLES}
    figures.update(mem)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"poll cycles of {args.feeds} feeds (~50 KB, 30 items; mixed: {changed} changed by "
          f"1-3 items), no keep-alive for anyone; medians of {args.rounds} rounds [min-max]")
    print(f"{'':11}" + "".join(f"{c + ' s':>22}" for c in CYCLES) + f"{'PSS MB':>18}")
    for name in tools:
        cells = "".join(f"{seconds[(name, c)]['median']:>8.3f} [{seconds[(name, c)]['min']:.2f}-"
                        f"{seconds[(name, c)]['max']:.2f}]" for c in CYCLES)
        print(f"{name:11}{cells}{figures[f'{name}_pss_mb']['median']:>12.1f}")
    for key, value in figures.items():
        if "_x_" in key or key.endswith("_over_floor"):
            print(f"{key:22} {value}")
    print(f"{'cpu_ms_per_304':22} {figures['cpu_ms_per_304']}")
    print(f"{'newswatch work':22} {figures['newswatch_work']}")
    if mem:
        print(f"{'memory':22} {mem}")


if __name__ == "__main__":
    main()
