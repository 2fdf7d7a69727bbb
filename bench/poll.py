"""One full poll cycle of N local feeds: newswatch against rss2email, reader and the floor.

    python bench/poll.py [--feeds 1000] [--json] [--skip-peers] [--memory-feeds 10000]

nginx serves N generated feeds (~50 KB, 30 items, real ETag / Last-Modified) on 127.0.0.1
(`--hosts K` spreads them over K loopback addresses, 127.1.x.y, where newswatch's per-host
politeness applies as configured by default; on one host it is lifted, as the peers have
none). Each tool runs in its own process and does, in the same run: **cold** (all feeds
new), **warm** (nothing changed: every answer is a 304) and **mixed** (10% of the feeds
changed). Timings are taken inside each process around the cycle
alone (no interpreter start-up).

- newswatch: `pipeline.poll_feeds` over every feed with the default settings (fetch, parse the
  changed bodies over the cores, take in new entries, record state, schedule) on a throwaway
  Redis;
- rss2email 3.14: `r2e run --no-send`; reader 3.26: `update_feeds(scheduled=False, workers=8)`
  (both from a venv of their own, bench/.peers, made on first use);
- the floor: the same conditional requests from a bare aiohttp client doing nothing else, plus
  feedparser on the changed bodies alone, spread over the cores.

Also: worker CPU per 304 (newswatch, warm cycle) and the worker's RSS with `--memory-feeds`
feeds scheduled and polled (the N files served under several URLs each).
Needs nginx (Debian: `apt-get install nginx-light`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "bench" / ".peers"
PEER_PACKAGES = ["rss2email==3.14", "reader==3.26", "sgmllib3k"]
WORDS = ("ceasefire talks mediators delegation capital minister government officials said "
         "agreement proposal hostages prisoners release exchange humanitarian aid convoy "
         "border crossing fighting resumed week council statement spokesman envoy summit "
         "negotiations framework phase withdrawal troops villages displaced families water "
         "power grid elections parliament opposition coalition budget inflation markets "
         "shares exports harvest rains flooding drought relief agencies appeal donors").split()


# -- feeds and server ----------------------------------------------------------------------

def host_of(i: int, hosts: int) -> str:
    """Feed i's host: 127.0.0.1 for all with one host, else one of `hosts` loopback addresses."""
    if hosts == 1:
        return "127.0.0.1"
    k = i % hosts
    return f"127.1.{k // 250}.{k % 250 + 1}"


def write_feed(path: Path, n: int, version: int) -> None:
    rng = random.Random(n * 1000 + version)
    items = []
    for j in range(30):
        title = " ".join(rng.choice(WORDS) for _ in range(9)).capitalize()
        body = " ".join(rng.choice(WORDS) for _ in range(190))
        items.append(f"<item><title>{title}</title><link>https://outlet{n}.example/{version}/{j}"
                     f"</link><guid>https://outlet{n}.example/{version}/{j}</guid>"
                     f"<pubDate>Sat, 04 Jan 2025 {j % 24:02d}:05:00 GMT</pubDate>"
                     f"<description>&lt;p&gt;{body}&lt;/p&gt;</description></item>")
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
  keepalive_requests 100000;
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

def rss_figures() -> dict[str, float]:
    """This process's peak RSS, and its descendants' RSS now (the parser processes and the
    forkserver; not the throwaway redis-server, which holds the entries), in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    procs: dict[int, tuple[int, str, float]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines()
                          if ":" in line)
        except OSError:
            continue
        procs[int(status.parent.name)] = (int(fields["PPid"]), fields["Name"].strip(),
                                          int(fields.get("VmRSS", "0 kB").split()[0]) / 1024)
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, (ppid, _, _) in procs.items() if ppid in frontier} - mine
        mine |= frontier
    children = sum(procs[p][2] for p in mine if not procs[p][1].startswith("redis"))
    return {"rss_mb": round(peak, 1), "children_rss_mb": round(children, 1)}


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


class NewswatchRunner:
    def __init__(self, urls: list[str], state: Path) -> None:
        """Default settings, but for politeness when every feed is on one host: the peers
        do not hold back either, and the engine, not the courtesy gap, is measured."""
        sys.path.insert(0, str(ROOT))
        from worker.config import load_config
        from worker.embedded import start_redis
        from worker.runtime import Runtime

        self.redis = start_redis(state / "redis")
        feeds = "".join(f"  - url: {u}\n" for u in urls)
        config = state / "newswatch.yaml"
        one_host = len({u.split("/")[2] for u in urls}) == 1
        polite = "  host_concurrency: 100\n  host_min_gap: 0\n" if one_host else ""
        config.write_text(f"feeds:\n{feeds}settings:\n  allow_private_networks: true\n"
                          f"  redis_url: {self.redis.url}\n{polite}")
        self.rt = Runtime.create(load_config(config))
        self.rt.parser.warm_up()              # as a worker does when it starts
        self.ids = [f.id for f in self.rt.config.feeds]

    def cycle(self) -> dict[str, Any]:
        """As a worker runs it: `poll_batch` feeds a task, 4 tasks at once (Celery threads)."""
        from concurrent.futures import ThreadPoolExecutor

        from worker import pipeline

        size = self.rt.config.settings.poll_batch
        batches = [self.ids[i:i + size] for i in range(0, len(self.ids), size)]
        with ThreadPoolExecutor(4) as threads:
            outcomes = [o for batch in threads.map(
                lambda b: pipeline.poll_feeds(self.rt.poller, b), batches) for o in batch]
        statuses: dict[str, int] = {}
        for o in outcomes:
            statuses[o.status] = statuses.get(o.status, 0) + 1
        return {"statuses": statuses, "new_entries": sum(len(o.new_entries) for o in outcomes)}

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
    """The same requests from a bare aiohttp client, and feedparser on the changed bodies
    alone over every core: what a poll cycle cannot go below."""

    def __init__(self, urls: list[str], state: Path) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.urls = urls
        self.etags: dict[str, str] = {}
        self.pool = ProcessPoolExecutor(os.cpu_count() or 1)
        list(self.pool.map(_noop, range(os.cpu_count() or 1)))      # started before timing

    def cycle(self) -> dict[str, Any]:
        import asyncio

        started = time.perf_counter()
        bodies = asyncio.run(self._requests())
        fetch_s = time.perf_counter() - started
        started = time.perf_counter()
        chunk = max(1, len(bodies) // ((os.cpu_count() or 1) * 4))
        list(self.pool.map(_feedparse, bodies, chunksize=chunk))
        return {"fetch_s": round(fetch_s, 3), "parse_s": round(time.perf_counter() - started, 3),
                "changed": len(bodies)}

    async def _requests(self) -> list[bytes]:
        import asyncio

        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            async def get(url: str) -> bytes | None:
                headers = {"If-None-Match": self.etags[url]} if url in self.etags else {}
                async with session.get(url, headers=headers) as response:
                    if response.status == 304:
                        return None
                    body = await response.read()
                    self.etags[url] = response.headers.get("ETag", "")
                    return body

            found = await asyncio.gather(*(get(u) for u in self.urls))
        return [b for b in found if b is not None]

    def close(self) -> None:
        self.pool.shutdown()


def _noop(_: int) -> None:
    return None


def _feedparse(body: bytes) -> int:
    import feedparser

    return len(feedparser.parse(body)["entries"])


RUNNERS = {"newswatch": NewswatchRunner, "rss2email": Rss2emailRunner, "reader": ReaderRunner,
           "floor": FloorRunner}


def runner_main(name: str, urls_file: Path, state: Path) -> None:
    """Serve cycles on stdin/stdout: a line with the cycle's name in, a JSON line out."""
    urls = urls_file.read_text().split()
    runner = RUNNERS[name](urls, state)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "rss":
            print(json.dumps(rss_figures()), flush=True)
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
            [python, __file__, "--runner", name, "--urls", str(urls_file), "--state",
             str(state)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
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


def run_tool(name: str, python: str, urls: list[str], folder: Path, www: Path,
             changed: list[int], version: list[int]) -> dict[str, Any]:
    tool = Tool(name, python, urls, folder)
    try:
        cold = tool.ask("cold")
        warm = tool.ask("warm")
        version[0] += 1
        later = time.time() + version[0]            # a new mtime: a new ETag
        for n in changed:
            write_feed(www / f"f{n}.xml", n, version[0])
            os.utime(www / f"f{n}.xml", (later, later))
        mixed = tool.ask("mixed")
        return {"cold": cold, "warm": warm, "mixed": mixed}
    finally:
        tool.close()


def memory(python: str, feeds: int, files: int, hosts: int, port: int,
           folder: Path) -> dict[str, Any]:
    """The newswatch worker's RSS with `feeds` feeds scheduled and polled twice."""
    urls = [f"http://{host_of(i % files, hosts)}:{port}/f{i % files}.xml?copy={i // files}"
            for i in range(feeds)]
    tool = Tool("newswatch", python, urls, folder / "memory")
    try:
        ready = tool.ask("rss")
        first = tool.ask("cold")
        tool.ask("warm")
        after = tool.ask("rss")
        return {"memory_feeds": feeds, "rss_mb_at_start": ready["rss_mb"],
                "rss_mb": after["rss_mb"], "parser_processes_rss_mb": after["children_rss_mb"],
                "rss_mb_with_parsers": round(after["rss_mb"] + after["children_rss_mb"], 1),
                "memory_cold_s": first["seconds"]}
    finally:
        tool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--changed", type=float, default=0.10, help="share changed in mixed")
    parser.add_argument("--memory-feeds", type=int, default=10_000,
                        help="feeds for the RSS figure (0: skip)")
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

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        www = folder / "www"
        www.mkdir()
        for n in range(args.feeds):
            write_feed(www / f"f{n}.xml", n, 0)
        (folder / "memory").mkdir()
        nginx, port = start_nginx(folder, args.hosts)
        try:
            urls = [f"http://{host_of(n, args.hosts)}:{port}/f{n}.xml"
                    for n in range(args.feeds)]
            changed = random.Random(7).sample(range(args.feeds),
                                              max(1, int(args.feeds * args.changed)))
            version = [0]
            tools = ["newswatch", "floor"] + ([] if args.skip_peers else
                                              ["rss2email", "reader"])
            results = {}
            for name in tools:
                python = sys.executable if name in ("newswatch", "floor") else peers_python()
                results[name] = run_tool(name, python, urls, folder, www, changed, version)
            mem = memory(sys.executable, args.memory_feeds, args.feeds, args.hosts, port,
                         folder) if args.memory_feeds else {}
        finally:
            os.killpg(nginx.pid, signal.SIGTERM)
            nginx.wait(10)
    report(args, results, mem, len(changed))


def report(args: argparse.Namespace, results: dict[str, Any], mem: dict[str, Any],
           changed: int) -> None:
    nw = results["newswatch"]
    floor = {c: results["floor"][c]["fetch_s"] + results["floor"][c]["parse_s"]
             for c in ("cold", "warm", "mixed")}
    figures: dict[str, Any] = {"feeds": args.feeds, "changed_in_mixed": changed}
    for cycle in ("cold", "warm", "mixed"):
        figures[f"newswatch_{cycle}_s"] = nw[cycle]["seconds"]
        figures[f"floor_{cycle}_s"] = round(floor[cycle], 3)
        for peer in ("rss2email", "reader"):
            if peer in results:
                figures[f"{peer}_{cycle}_s"] = results[peer][cycle]["seconds"]
                figures[f"{cycle}_x_{peer}"] = round(
                    results[peer][cycle]["seconds"] / nw[cycle]["seconds"], 1)
    figures["mixed_over_floor"] = round(nw["mixed"]["seconds"] / floor["mixed"], 2)
    figures["cpu_ms_per_304"] = round(1000 * nw["warm"]["cpu_s"] / args.feeds, 3)
    figures["newswatch_statuses"] = {c: nw[c].get("statuses") for c in ("cold", "warm", "mixed")}
    figures.update(mem)
    if args.json:
        print(json.dumps(figures))
        return
    print(f"one poll cycle of {args.feeds} feeds (~50 KB, 30 items; mixed: {changed} changed)")
    print(f"{'':12}{'cold s':>9}{'warm s':>9}{'mixed s':>9}")
    rows = [("newswatch", {c: nw[c]["seconds"] for c in floor}), ("floor", floor)]
    rows += [(p, {c: results[p][c]["seconds"] for c in floor})
             for p in ("rss2email", "reader") if p in results]
    for name, row in rows:
        print(f"{name:12}" + "".join(f"{row[c]:9.3f}" for c in ("cold", "warm", "mixed")))
    for key, value in figures.items():
        if "_x_" in key or key in ("mixed_over_floor", "cpu_ms_per_304") or \
                key.startswith(("rss_mb", "memory")):
            print(f"{key:22} {value}")


if __name__ == "__main__":
    main()
