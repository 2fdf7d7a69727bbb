"""Redis bytes per entry: taken in, then processed without matching anything.

    python bench/storage.py [--feeds N] [--items N] [--json]

N feeds of M items each (generated, ~600 bytes of JSON an entry like the real feeds' items)
are taken in through the store as polling does, then processed (classified against topics
none of them matches, marked done), on a throwaway embedded Redis. Printed: used_memory per
entry after intake and after processing, with the backtest window (the recent stream with
the entries' text) inside and outside the figure, and the share of each key family
(MEMORY USAGE on a sample).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.embedded import start_redis  # noqa: E402
from worker.models import Entry  # noqa: E402
from worker.store import Store  # noqa: E402

WORDS = ("council minister market storm river school court election police hospital "
         "budget festival harbour railway museum bridge energy farmers weather report").split()


def entry(feed: int, n: int, rng: random.Random) -> Entry:
    title = " ".join(rng.choice(WORDS) for _ in range(9)).capitalize()
    summary = " ".join(rng.choice(WORDS) for _ in range(60)).capitalize() + "."
    return Entry(f"feed{feed}", f"https://news{feed}.example/{n}", title, summary,
                 f"https://news{feed}.example/{n}", datetime.now(UTC), f"Outlet {feed}", "en")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as folder:
        server = start_redis(Path(folder))
        try:
            store = Store.from_url(server.url, "nw")
            r = store.r
            base = int(r.info("memory")["used_memory"])
            keys: list[str] = []
            size = 0
            for f in range(args.feeds):
                batch = [entry(f, n, rng) for n in range(args.items)]
                size += sum(len(json.dumps(e.to_dict())) for e in batch)
                keys += store.entries.add_new(batch)
            n = len(keys)
            taken = int(r.info("memory")["used_memory"]) - base
            for i in range(0, n, 256):
                store.entries.done(*keys[i:i + 256])      # processed: nothing matched
            processed = int(r.info("memory")["used_memory"]) - base
            stream = int(r.memory_usage(store.k("recent")) or 0)
            seen = sum(int(r.memory_usage(store.k("seenby", f"feed{f}")) or 0)
                       for f in range(min(args.feeds, 200))) * args.feeds / min(args.feeds, 200)
        finally:
            server.stop()
    figures = {"entries": n, "json_bytes_per_entry": round(size / n),
               "after_intake_bytes_per_entry": round(taken / n),
               "after_processing_bytes_per_entry": round(processed / n),
               "backtest_stream_bytes_per_entry": round(stream / n),
               "outside_backtest_window_bytes_per_entry": round((processed - stream) / n),
               "seen_marks_bytes_per_entry": round(seen / n)}
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{n} entries ({args.feeds} feeds x {args.items}), "
          f"{figures['json_bytes_per_entry']} bytes of JSON each")
    for name, label in (("after_intake_bytes_per_entry", "taken in, not yet processed"),
                        ("after_processing_bytes_per_entry", "processed, nothing matched"),
                        ("backtest_stream_bytes_per_entry", "  of which the backtest window"),
                        ("outside_backtest_window_bytes_per_entry",
                         "  outside it (seen marks, queues)"),
                        ("seen_marks_bytes_per_entry", "  seen marks alone")):
        print(f"{label:40} {figures[name]:>6} bytes per entry")


if __name__ == "__main__":
    main()
