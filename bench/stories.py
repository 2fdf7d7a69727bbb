"""Story clustering: quality on labelled pairs, and speed and memory with a full window.

    python bench/stories.py [--window-entries 100000] [--measure 2000] [--workers 2] [--json]

Quality: runs `newswatch stories` (the real CLI) on ../shared/eval/dev.jsonl and scores every
pair of items: "same story" decisions against the `story` labels (precision, recall), lexical
only and with the semantic model (when newswatch[semantic] is installed). `--errors` lists the
stories merged or split wrongly. The same for tests/data/story_sequences.jsonl, written for
the tests: a truce's daily hostage handovers (with their rounds numbered, then without) and a
week of talks, and a hostage freed one day and home the next, several outlets a day; what dev
has little of (different events of one process, a day apart). And the real feeds of
../shared/feeds/real, a day of each outlet's general news, scored against our own labels
(bench/feed_stories.json: which items report one event; pairs we could not call either way
are not scored).
Speed: a throwaway redis-server; `--window-entries` synthetic entries (real headlines recombined,
published within the window) are assigned first, then `--measure` more are timed, by one process
and then by `--workers` processes at once (each with its own connection, as Celery workers);
Redis memory per entry is the growth of used_memory over the window's entries.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import random
import subprocess
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

from classify import corpus  # noqa: E402

from worker.config import load_config  # noqa: E402
from worker.embedded import start_redis  # noqa: E402
from worker.models import Entry  # noqa: E402
from worker.parse import parse_feed  # noqa: E402
from worker.pipeline import assign_story  # noqa: E402
from worker.runtime import make_classifier  # noqa: E402
from worker.store import Store  # noqa: E402


def quality(data: Path, mode: str, errors: bool,
            unsure: frozenset[frozenset[str]] = frozenset()) -> dict[str, float]:
    """Pairwise precision and recall of `newswatch stories` on a JSONL file with `story`
    labels; pairs in `unsure` are not scored."""
    items = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    out = subprocess.run([sys.executable, "-m", "worker.cli", "stories", f"--{mode}", str(data)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    predicted = {str(r["id"]): r["story"] for r in map(json.loads, out.stdout.splitlines())}
    if errors:
        show_errors(items, predicted, "semantic" if mode == "semantic" else "lexical")
    tp = fp = fn = 0
    for a, b in itertools.combinations(items, 2):
        if unsure and frozenset((a["id"], b["id"])) in unsure:
            continue
        same = a["story"] == b["story"]
        said = predicted[str(a["id"])] == predicted[str(b["id"])]
        tp += same and said
        fp += said and not same
        fn += same and not said
    return {"pairs_same": tp + fn, "tp": tp, "fp": fp, "fn": fn,
            "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
            "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0}


def show_errors(items: list[dict[str, object]], predicted: dict[str, str], mode: str) -> None:
    said: dict[str, list[dict[str, object]]] = {}
    for item in items:
        said.setdefault(predicted[str(item["id"])], []).append(item)
    for group in said.values():
        if len({i["story"] for i in group}) > 1:
            print(f"{mode} MERGED: " + " | ".join(f"[{i['story']}] {i['title']}" for i in group),
                  file=sys.stderr)
    truth: dict[object, set[str]] = {}
    for item in items:
        truth.setdefault(item["story"], set()).add(predicted[str(item["id"])])
    for story, ids in truth.items():
        if len(ids) > 1:
            print(f"{mode} SPLIT: {story} into {len(ids)} stories", file=sys.stderr)


def feed_items(real: Path, labels: Path, out: Path) -> frozenset[frozenset[str]]:
    """The items of the real feeds as `newswatch stories` input, labelled from `labels` (our
    judgement of which report one event: bench/feed_stories.json), written to `out`; returns
    the pairs labelled unsure. Unlike dev, these are a day's general news from each outlet:
    what a broad topic ("covid", "protests") would cluster, many reports of one theme that are
    different events."""
    marks = json.loads(labels.read_text())
    story = {key: f"same-{n}" for n, group in enumerate(marks["same"]) for key in group}
    unsure = frozenset(frozenset(pair) for group in marks["unsure"]
                       for pair in itertools.combinations(group, 2))
    with out.open("w") as f:
        for path in sorted(real.glob("*.xml")):
            entries = parse_feed(path.read_bytes(), url=path.as_uri(), feed_id="b",
                                 feed_name=path.stem)
            for e in entries:
                key = f"{path.name} {e.link}"
                published = e.published.isoformat() if e.published else None
                f.write(json.dumps({"id": key, "title": e.title, "summary": e.summary,
                                    "link": e.link, "published": published,
                                    "source": path.stem, "story": story.get(key, key)}) + "\n")
    return unsure


def semantic_installed() -> bool:
    try:
        from worker.classify.semantic import model_file
        model_file()
    except Exception:
        return False
    return True


class _Runtime:       # what assign_story reads: the store, the settings, the shipped topics
    def __init__(self, store: Store) -> None:
        self.store = store
        self.config = load_config(ROOT / "config" / "newswatch.yaml")
        self.classifier = make_classifier(self.config, semantic=False)


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
            rt = _Runtime(store)
            before = int(store.r.info("memory")["used_memory"])
            start = time.perf_counter()
            for n in range(window_entries):
                e = entry(n)
                assign_story(rt, store.entries.key(e), e)  # type: ignore[arg-type]
            fill_s = time.perf_counter() - start
            filled = int(store.r.info("memory")["used_memory"])
            start = time.perf_counter()
            for n in range(window_entries, window_entries + measure):
                e = entry(n)
                assign_story(rt, store.entries.key(e), e)  # type: ignore[arg-type]
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
    rt = _Runtime(store)
    barrier.wait()
    for e in share:
        assign_story(rt, store.entries.key(e), e)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path,
                        default=ROOT.parent / "shared" / "eval" / "dev.jsonl")
    parser.add_argument("--window-entries", type=int, default=100_000)
    parser.add_argument("--measure", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2,
                        help="processes assigning at once, after the one-process figure")
    parser.add_argument("--sequences", type=Path,
                        default=ROOT / "tests" / "data" / "story_sequences.jsonl")
    parser.add_argument("--feeds", type=Path, default=ROOT.parent / "shared" / "feeds" / "real",
                        help="real feeds, scored with our labels in bench/feed_stories.json")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--errors", action="store_true")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    semantic = semantic_installed()
    with tempfile.TemporaryDirectory() as tmp:
        feeds = Path(tmp) / "real_feeds.jsonl"
        unsure: frozenset[frozenset[str]] = frozenset()
        if args.feeds.is_dir():
            unsure = feed_items(args.feeds, ROOT / "bench" / "feed_stories.json", feeds)
        for name, data in (("quality", args.data), ("sequences", args.sequences),
                           ("feeds", feeds)):
            if data.exists():
                figures[name] = quality(data, "no-semantic", args.errors, unsure)
                if semantic:
                    figures[f"{name}_semantic"] = quality(data, "semantic", args.errors, unsure)
    figures["speed"] = speed(args.window_entries, args.measure, args.workers)
    if args.json:
        print(json.dumps(figures))
        return
    for name, label, data in (("quality", "lexical", args.data),
                              ("quality_semantic", "semantic", args.data),
                              ("sequences", "lexical", args.sequences),
                              ("sequences_semantic", "semantic", args.sequences),
                              ("feeds", "lexical", feeds), ("feeds_semantic", "semantic", feeds)):
        if name in figures:
            q = figures[name]
            assert isinstance(q, dict)
            print(f"{label:8} pairs of {data.name}: {q['pairs_same']} same-story pairs; "
                  f"precision {q['precision']:.3f}, recall {q['recall']:.3f} "
                  f"(tp {q['tp']}, fp {q['fp']}, fn {q['fn']}); targets 0.98 / 0.90")
    s = figures["speed"]
    assert isinstance(s, dict)
    print(f"{s['window_entries']:,} entries in the window: filled at "
          f"{s['fill_entries_per_s']:,}/s; then {s['entries_per_s_full_window']:,} entries/s, "
          f"{s['entries_per_s_workers']:,} entries/s with {s['workers']} workers at once; "
          f"Redis {s['redis_bytes_per_entry']:,} bytes per entry")


if __name__ == "__main__":
    main()
