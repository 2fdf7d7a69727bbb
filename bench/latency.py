"""From publication to webhook: how long an item takes to reach a subscriber.

    python bench/latency.py [--interval 60] [--items 20] [--span S] [--push] [--json]

`newswatch run` (embedded Redis, in-process Celery worker and beat) watches one local feed
polled every `--interval` seconds (min and max interval pinned to it) and delivers matches to a
local webhook receiver. Items appear in the feed at random moments over `--span` seconds
(default: five intervals; with --push, one minute); each item's latency is the time from its
publication to its webhook's arrival. With `--push` the feed declares a local WebSub hub,
newswatch subscribes, and each publication is pushed by the hub at once (polling stays the
safety net). Prints p50 / p99 / max; targets: p99 <= interval + 2 s polling, <= 1 s pushed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import (  # noqa: E402
    FeedServer,
    Served,
    WebhookReceiver,
    WebSubHub,
    free_port,
    wait_for,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SYLLABLES = "ka lo mi ne su ra to vi de an or el un is ba ri go".split()


def made_up(rng: random.Random) -> str:
    """A made-up place or name: items must be distinct stories, not near-duplicates."""
    return "".join(rng.choice(SYLLABLES) for _ in range(3)).capitalize()


class Feed:
    """The feed document: items added at publication, newest first; pushed when a hub is set."""

    def __init__(self, server: FeedServer, hub: WebSubHub | None) -> None:
        self.server, self.hub = server, hub
        self.items: list[str] = []
        self.lock = threading.Lock()
        self.url = server.url("/wire.xml")
        self.publish(None)

    def publish(self, n: int | None) -> float:
        with self.lock:
            if n is not None:
                rng = random.Random(n)
                title = f"Talks on {' '.join(made_up(rng) for _ in range(6))} (item {n})"
                summary = " ".join(made_up(rng) for _ in range(12))   # distinct stories
                self.items.insert(0, f"<item><title>{title}</title><guid>item-{n}</guid>"
                                     f"<description>{summary}.</description></item>")
            hub = (f"<atom:link rel='hub' href='{self.hub.url}'/>"
                   f"<atom:link rel='self' href='{self.url}'/>") if self.hub else ""
            body = ('<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
                    f"<title>Wire</title>{hub}{''.join(self.items[:50])}</channel></rss>"
                    ).encode()
            published = time.time()
            self.server.files["/wire.xml"] = Served(body, modified=published)
            if self.hub and n is not None:
                self.hub.publish(self.url, body)
            return published


def config_text(feed: Feed, receiver: WebhookReceiver, interval: int, folder: Path,
                callback_port: int | None) -> str:
    push = (f"  websub_callback: http://127.0.0.1:{callback_port}\n"
            f"  websub_listen: 127.0.0.1:{callback_port}\n") if callback_port else ""
    return f"""feeds:
  - url: {feed.url}
    name: Wire
topics:
  talks:
    name: Talks
    query: talks OR negotiat*
subscribers:
  - id: bench
    webhook: {receiver.url}
    secret: {SECRET}
    topics: [talks]
settings:
  allow_private_networks: true
  poll_interval: {interval}
  min_interval: {interval}
  max_interval: {interval}
  data_dir: {folder / "var"}
  host_min_gap: 0
{push}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--span", type=float, help="seconds over which items appear")
    parser.add_argument("--push", action="store_true", help="through a local WebSub hub")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    span = args.span or (60.0 if args.push else 5.0 * args.interval)

    feed_server, receiver = FeedServer(), WebhookReceiver(SECRET)
    hub = WebSubHub() if args.push else None
    proc = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            feed = Feed(feed_server, hub)
            port = free_port() if args.push else None
            config = folder / "newswatch.yaml"
            config.write_text(config_text(feed, receiver, args.interval, folder, port))
            env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
            proc = subprocess.Popen([sys.executable, "-m", "worker.cli", "run", "--config",
                                     str(config)], env=env, cwd=folder,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            if not wait_for(lambda: len(feed_server.requests) >= 1, 60):
                raise SystemExit("newswatch did not poll the feed")
            if hub and not wait_for(lambda: any(s.verified for s in hub.subscriptions), 30):
                raise SystemExit("the hub never verified a subscription")
            rng = random.Random(1)
            moments = sorted(rng.uniform(0, span) for _ in range(args.items))
            start, published = time.time(), {}
            for n, moment in enumerate(moments):
                time.sleep(max(0.0, start + moment - time.time()))
                published[n] = feed.publish(n)
            arrived = wait_for(lambda: len(receiver.received) >= args.items,
                               args.interval * 2 + 30)
            latencies = []
            for hook in receiver.received:
                n = int(hook.body["story"]["title"].rsplit("(item ", 1)[1].rstrip(")"))
                latencies.append(hook.at - published[n])
        finally:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
            for server in (feed_server, receiver, hub):
                if server is not None:
                    server.close()
    latencies.sort()
    figures = {"mode": "push" if args.push else "poll", "interval_s": args.interval,
               "items": args.items, "received": len(latencies), "all_received": arrived,
               "p50_s": round(statistics.median(latencies), 3) if latencies else None,
               "p99_s": round(latencies[min(len(latencies) - 1,
                                            int(0.99 * len(latencies)))], 3)
               if latencies else None,
               "max_s": round(max(latencies), 3) if latencies else None}
    if os.environ.get("LATENCY_DEBUG"):
        print("polls at", [round(t - start, 1) for _, t in feed_server.request_times])
        print("published at", [round(t - start, 1) for t in published.values()])
        print("latencies", [round(x, 2) for x in latencies])
    if args.json:
        print(json.dumps(figures))
        return
    print(f"publication -> webhook, {figures['mode']}, interval {args.interval} s, "
          f"{len(latencies)}/{args.items} items")
    for key in ("p50_s", "p99_s", "max_s"):
        print(f"  {key:6} {figures[key]}")


if __name__ == "__main__":
    main()
