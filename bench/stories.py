"""Story clustering: quality on labelled pairs, and speed and memory with a full window.

    python bench/stories.py [--window-entries 100000] [--measure 2000] [--json]

Quality: runs `newswatch stories` (the real CLI) on ../shared/eval/dev.jsonl and scores every
pair of items: "same story" decisions against the `story` labels (precision, recall).
Speed: a throwaway redis-server; `--window-entries` synthetic entries (real headlines recombined,
published within the window) are assigned first, then `--measure` more are timed; Redis memory
per entry is the growth of used_memory over the entries assigned.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from classify import corpus  # noqa: E402

from worker.embedded import start_redis  # noqa: E402
from worker.models import Entry  # noqa: E402
from worker.pipeline import assign_story  # noqa: E402
from worker.store import Store  # noqa: E402


def quality(data: Path) -> dict[str, float]:
    items = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    out = subprocess.run([sys.executable, "-m", "worker.cli", "stories", str(data)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    predicted = {str(r["id"]): r["story"] for r in map(json.loads, out.stdout.splitlines())}
    tp = fp = fn = 0
    for a, b in itertools.combinations(items, 2):
        same = a["story"] == b["story"]
        said = predicted[str(a["id"])] == predicted[str(b["id"])]
        tp += same and said
        fp += said and not same
        fn += same and not said
    return {"pairs_same": tp + fn, "tp": tp, "fp": fp, "fn": fn,
            "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0}


class _Runtime:       # what assign_story needs: a store
    def __init__(self, store: Store) -> None:
        self.store = store


def speed(window_entries: int, measure: int) -> dict[str, float]:
    rng = random.Random(5)
    pairs = corpus()
    titles = [t for t, _ in pairs if t]
    summaries = [s for _, s in pairs]
    now = datetime.now(UTC)

    def entry(n: int) -> Entry:
        words = rng.choice(titles).split()
        rng.shuffle(words)             # recombined headlines: realistic words, new stories
        return Entry(f"feed{n % 500}", f"e{n}", " ".join(words), rng.choice(summaries),
                     f"https://news{n % 500}.example/{uuid.uuid4().hex}",
                     now - timedelta(seconds=rng.uniform(0, 70 * 3600)), "Bench")

    with tempfile.TemporaryDirectory() as tmp:
        server = start_redis(Path(tmp), persistent=False)
        try:
            store = Store.from_url(server.url, "bench")
            rt = _Runtime(store)
            before = int(store.r.info("memory")["used_memory"])
            start = time.perf_counter()
            for n in range(window_entries):
                e = entry(n)
                assign_story(rt, store.entry_key(e), e)  # type: ignore[arg-type]
            fill_s = time.perf_counter() - start
            filled = int(store.r.info("memory")["used_memory"])
            start = time.perf_counter()
            for n in range(window_entries, window_entries + measure):
                e = entry(n)
                assign_story(rt, store.entry_key(e), e)  # type: ignore[arg-type]
            measured_s = time.perf_counter() - start
        finally:
            server.stop()
    return {"window_entries": window_entries,
            "fill_entries_per_s": round(window_entries / fill_s),
            "entries_per_s_full_window": round(measure / measured_s),
            "redis_bytes_per_entry": round((filled - before) / max(1, window_entries))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=ROOT.parent / "shared" / "eval" / "dev.jsonl")
    parser.add_argument("--window-entries", type=int, default=100_000)
    parser.add_argument("--measure", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    if args.data.exists():
        figures["quality"] = quality(args.data)
    figures["speed"] = speed(args.window_entries, args.measure)
    if args.json:
        print(json.dumps(figures))
        return
    if "quality" in figures:
        q = figures["quality"]
        assert isinstance(q, dict)
        print(f"pairs of {args.data.name}: {q['pairs_same']} same-story pairs; "
              f"precision {q['precision']:.3f}, recall {q['recall']:.3f} "
              f"(tp {q['tp']}, fp {q['fp']}, fn {q['fn']}); targets 0.98 / 0.90")
    s = figures["speed"]
    assert isinstance(s, dict)
    print(f"{s['window_entries']:,} entries in the window: filled at "
          f"{s['fill_entries_per_s']:,}/s; then {s['entries_per_s_full_window']:,} entries/s; "
          f"Redis {s['redis_bytes_per_entry']:,} bytes per entry")


if __name__ == "__main__":
    main()
