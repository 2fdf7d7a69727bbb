"""Story assignment: threads on labelled news, and speed and memory with a full window.

    python bench/stories.py [--window-entries 100000] [--measure 2000] [--workers 2]
                            [--orders 8] [--json]

Quality (bench/threads.py): dev, dev2, dev_ml, our day-by-day sequences and the real feeds
(our labels), lexical and with the model, in publication order and shuffled: merge pairwise
P / R, thread pairwise P / R, hidden events, unthreaded redundant alerts, cross-language events
threaded together.
Speed: a throwaway redis-server; `--window-entries` synthetic entries (real headlines recombined,
published within the window) are assigned first, then `--measure` more are timed, by one process
and then by `--workers` processes at once (each with its own connection, as Celery workers);
Redis memory per entry is the growth of used_memory over the window's entries.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import threads  # noqa: E402
from classify import corpus  # noqa: E402

from worker.config import load_config  # noqa: E402
from worker.embedded import start_redis  # noqa: E402
from worker.models import Entry  # noqa: E402
from worker.pipeline import Processor, assign_story  # noqa: E402
from worker.runtime import make_classifier  # noqa: E402
from worker.store import Store  # noqa: E402


def processor(store: Store) -> Processor:      # the processing stage, with the shipped topics
    config = load_config(ROOT / "config" / "newswatch.yaml")
    classifier = make_classifier(config, semantic=False)
    return Processor(store, config, lambda: classifier)


def speed(window_entries: int, measure: int, workers: int = 2) -> dict[str, float]:
    pairs = corpus()
    titles = [t for t, _ in pairs if t]
    summaries = [s for _, s in pairs]
    now = datetime.now(UTC)

    def entry(n: int) -> Entry:
        rng = random.Random(n)
        words = rng.choice(titles).split()
        rng.shuffle(words)             # recombined headlines: realistic words, new stories
        return Entry(f"feed{n % 500}", f"e{n}", " ".join(words), rng.choice(summaries),
                     f"https://news{n % 500}.example/{uuid.uuid4().hex}",
                     now - timedelta(seconds=rng.uniform(0, 70 * 3600)), "Bench")

    with tempfile.TemporaryDirectory() as tmp:
        server = start_redis(Path(tmp), persistent=False)
        try:
            store = Store.from_url(server.url, "bench")
            rt = processor(store)
            before = int(store.r.info("memory")["used_memory"])
            start = time.perf_counter()
            for n in range(window_entries):
                e = entry(n)
                assign_story(rt, store.entries.key(e), e)
            fill_s = time.perf_counter() - start
            filled = int(store.r.info("memory")["used_memory"])
            start = time.perf_counter()
            for n in range(window_entries, window_entries + measure):
                e = entry(n)
                assign_story(rt, store.entries.key(e), e)
            measured_s = time.perf_counter() - start
            first = window_entries + measure
            together = _concurrently(server.url, workers, [
                [entry(n) for n in range(first + w, first + measure, workers)]
                for w in range(workers)])
        finally:
            server.stop()
    return {"window_entries": window_entries,
            "fill_entries_per_s": round(window_entries / fill_s),
            "entries_per_s_full_window": round(measure / measured_s),
            "workers": workers, "entries_per_s_workers": round(measure / together),
            "redis_bytes_per_entry": round((filled - before) / max(1, window_entries))}


def _concurrently(url: str, workers: int, shares: list[list[Entry]]) -> float:
    """Seconds for `workers` processes to assign their shares at once (each its own store),
    as several Celery workers would."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    procs = [ctx.Process(target=_assign_all, args=(url, share, barrier)) for share in shares]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    for p in procs:
        p.join()
    return time.perf_counter() - start


def _assign_all(url: str, share: list[Entry], barrier: Any) -> None:
    store = Store.from_url(url, "bench")
    rt = processor(store)
    barrier.wait()
    for e in share:
        assign_story(rt, store.entries.key(e), e)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-entries", type=int, default=100_000)
    parser.add_argument("--measure", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2,
                        help="processes assigning at once, after the one-process figure")
    parser.add_argument("--orders", type=int, default=8, help="shuffled orders per set")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sets = threads.datasets()
    quality = threads.evaluate(sets, threads.cached_embedder(sets), threads.shipped_vocabulary(),
                               args.orders) if sets else {}
    figures: dict[str, object] = {"quality": quality,
                                  "speed": speed(args.window_entries, args.measure, args.workers)}
    if args.json:
        print(json.dumps(figures))
        return
    threads.print_table(quality, args.orders)
    s = figures["speed"]
    assert isinstance(s, dict)
    print(f"{s['window_entries']:,} entries in the window: filled at "
          f"{s['fill_entries_per_s']:,}/s; then {s['entries_per_s_full_window']:,} entries/s, "
          f"{s['entries_per_s_workers']:,} entries/s with {s['workers']} workers at once; "
          f"Redis {s['redis_bytes_per_entry']:,} bytes per entry")


if __name__ == "__main__":
    main()
