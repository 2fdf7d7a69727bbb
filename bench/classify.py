"""Classifier throughput with many topics: the presearch index against checking every topic.

    python bench/classify.py [--topics 1000] [--items 20000] [--naive-items 2000] [--repeat 3]
                             [--unseen-runs 5] [--json]

Items are real-looking: titles and summaries of the real feeds in ../shared/feeds/real (or the
seeds where that is absent), recombined at random. Topics are generated from the same vocabulary
with the query forms analysts use (OR lists, AND, phrases, prefixes, NEAR, fields, NOT), plus
the shipped topics. One process, one core: the figures are per core.

`items/s` is the best of `--repeat` passes over the items once every word of theirs has been
seen (a worker's steady state: its caches of words' stems and topics are warm; the best of a few
passes, as timeit does, because this machine is shared and noisy); the first pass, in which
each new word is worked out once, is printed beside it. The naive run checks every topic of
every item, with the same warm caches.

`unseen items/s` is what a stream of news the classifier has not seen costs: a fresh classifier
is warmed on half of the real feeds (by feed), then times, once each, the other half's items and
the labelled items of ../shared/eval (dev, dev2, dev_ml, in 12 languages), whose words are new
to it as tomorrow's news would be. Each such run is a process of its own, as a new worker is
(no stem or folded word remembered from the passes above, whose items share the real feeds'
words); the median of `--unseen-runs` of them, with the range (a few hundred items timed once
are noisy).

Each classifier is made as a worker makes its own: then the heap is settled
(`runtime.settle_heap`), which keeps the garbage collector from walking it.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.classify import Classifier  # noqa: E402
from worker.config import TopicConfig, load_config  # noqa: E402
from worker.errors import ParseError  # noqa: E402
from worker.models import Entry  # noqa: E402
from worker.parse import parse_feed  # noqa: E402
from worker.runtime import settle_heap  # noqa: E402


def feed_entries(seeds: bool = True) -> list[Entry]:
    """The entries of the real feeds of ../shared (and of the seeds), parsed as the worker
    parses them."""
    real = ROOT.parent / "shared" / "feeds" / "real"
    paths = sorted(real.glob("*.xml")) if real.is_dir() else []
    if seeds or not paths:
        paths += sorted((ROOT / "seeds").glob("*.*"))
    out: list[Entry] = []
    for path in paths:
        try:
            out += parse_feed(path.read_bytes(), url=path.as_uri(), feed_id="b",
                              feed_name=path.stem)
        except ParseError:
            continue
    return out


def corpus() -> list[tuple[str, str]]:
    return [(e.title, e.summary) for e in feed_entries()]


def items(pairs: list[tuple[str, str]], n: int, rng: random.Random) -> list[tuple[str, str]]:
    """n items: a title and a summary drawn independently, so few repeat exactly."""
    titles = [t for t, _ in pairs]
    summaries = [s for _, s in pairs]
    return [(rng.choice(titles), rng.choice(summaries)) for _ in range(n)]


def vocabulary(pairs: list[tuple[str, str]]) -> list[str]:
    counts = collections.Counter(w for t, s in pairs
                                 for w in re.findall(r"[a-z]{4,}", f"{t} {s}".lower()))
    ranked = [w for w, _ in counts.most_common()]
    operators = {"and", "or", "not", "near", "title", "summary"}
    return [w for w in ranked[100:4000] if w not in operators]   # skip the commonest words


def topics(vocab: list[str], n: int, rng: random.Random) -> dict[str, TopicConfig]:
    def w() -> str:
        return rng.choice(vocab)

    forms = [
        lambda: f"({w()} OR {w()} OR {w()[:5]}*) AND ({w()} OR \"{w()} {w()}\")",
        lambda: f"{w()} NEAR/5 ({w()} OR {w()})",
        lambda: f"\"{w()} {w()}\" OR ({w()} AND {w()} AND NOT {w()})",
        lambda: f"title:({w()} OR {w()}) AND {w()[:4]}*",
        lambda: f"({w()} OR {w()}) {w()} NOT ({w()} OR {w()})",
    ]
    return {f"gen-{i}": TopicConfig(name=f"Generated {i}", query=rng.choice(forms)())
            for i in range(n)}


def unseen_once(all_topics: dict[str, TopicConfig]) -> dict[str, float]:
    """One fresh classifier's items/s on streams it has not seen: warmed on half the feeds,
    timed once on the other half and on the labelled sets. Run in a process of its own: the
    process-wide caches (stems, folded words) know nothing either."""
    entries = feed_entries(seeds=False)
    feeds = sorted({e.source_title for e in entries})
    warm = {f for i, f in enumerate(feeds) if i % 2 == 0}
    streams = {"other_feeds": [(e.title, e.summary) for e in entries
                               if e.source_title not in warm]}
    labelled: list[tuple[str, str]] = []
    for name in ("dev", "dev2", "dev_ml"):
        path = ROOT.parent / "shared" / "eval" / f"{name}.jsonl"
        if path.exists():
            labelled += [(r.get("title") or "", r.get("summary") or "") for r in
                         map(json.loads, path.read_text().splitlines()) if r]
    if labelled:
        streams["labelled"] = labelled
    classifier = Classifier(all_topics)
    settle_heap()                        # as a worker does once it has made its classifier
    for e in entries:
        if e.source_title in warm:
            classifier.classify(e.title, e.summary)
    out: dict[str, float] = {}
    for name, batch in streams.items():
        if batch:
            out[name], _ = rate(classifier, batch, naive=False)
            out[f"{name}_items"] = len(batch)
    return out


def unseen(topics_n: int, runs: int) -> dict[str, Any]:
    """`unseen_once` in `runs` fresh processes (a few hundred items timed once are noisy):
    the median and the range of each stream's rate."""
    got: list[dict[str, float]] = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, __file__, "--unseen-once", "--topics",
                               str(topics_n)], capture_output=True, text=True, check=True)
        got.append(json.loads(done.stdout.strip().splitlines()[-1]))
    out: dict[str, Any] = {}
    for name in [k for k in got[0] if not k.endswith("_items")]:
        rates = [g[name] for g in got]
        out[name] = round(statistics.median(rates))
        out[f"{name}_range"] = [round(min(rates)), round(max(rates))]
        out[f"{name}_items"] = int(got[0][f"{name}_items"])
    return out


def rate(classifier: Classifier, batch: list[tuple[str, str]], naive: bool) -> tuple[float, int]:
    start = time.perf_counter()
    found = sum(len(classifier.classify(t, s, naive=naive)) for t, s in batch)
    return len(batch) / (time.perf_counter() - start), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--naive-items", type=int, default=2000,
                        help="items for the naive run (it is slow; rates are per item)")
    parser.add_argument("--repeat", type=int, default=3, help="passes; the best is reported")
    parser.add_argument("--unseen-runs", type=int, default=5,
                        help="fresh processes timed on the unseen streams (median reported)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--unseen-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rng = random.Random(20250104)
    pairs = corpus()
    shipped = dict(load_config(ROOT / "config" / "newswatch.yaml").topics)
    all_topics = {**shipped, **topics(vocabulary(pairs), args.topics, rng)}
    if args.unseen_once:
        print(json.dumps(unseen_once(all_topics)))
        return
    start = time.perf_counter()
    classifier = Classifier(all_topics)
    build_s = time.perf_counter() - start
    settle_heap()                        # as a worker does once it has made its classifier
    batch = items(pairs, args.items, rng)
    rate(classifier, batch[:500], naive=False)                     # warm caches
    first_pass, matches = rate(classifier, batch, naive=False)
    indexed = max(rate(classifier, batch, naive=False)[0] for _ in range(args.repeat))
    naive, naive_matches = rate(classifier, batch[:args.naive_items], naive=True)
    _, check_matches = rate(classifier, batch[:args.naive_items], naive=False)
    assert naive_matches == check_matches, "the index must not change any result"
    candidates = sum(len(classifier.index.candidates(classifier.doc(t, s)))
                     for t, s in batch[:1000]) / 1000
    figures: dict[str, Any] = {
        "topics": len(all_topics), "items": len(batch), "source_items": len(pairs),
        "build_s": round(build_s, 3), "items_per_s": round(indexed),
        "first_pass_items_per_s": round(first_pass),
        "naive_items_per_s": round(naive), "speedup": round(indexed / naive, 1),
        "candidates_per_item": round(candidates, 1), "matches_per_item": round(
            matches / len(batch), 3), "target_items_per_s": 20_000,
    }
    figures.update({f"unseen_{k}": v for k, v in unseen(args.topics, args.unseen_runs).items()})
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{figures['topics']} topics ({len(shipped)} shipped + {args.topics} generated), "
          f"{figures['items']} items recombined from {figures['source_items']} real ones")
    print(f"{'index build':28}{figures['build_s']:>12.3f} s")
    print(f"{'indexed (presearch)':28}{figures['items_per_s']:>12,} items/s "
          f"(best of {args.repeat} passes)")
    print(f"{'  first pass (new words)':28}{figures['first_pass_items_per_s']:>12,} items/s")
    print(f"{'naive (every topic)':28}{figures['naive_items_per_s']:>12,} items/s")
    print(f"{'speed-up':28}{figures['speedup']:>12}x")
    print(f"{'candidate topics per item':28}{figures['candidates_per_item']:>12}")
    print(f"{'matches per item':28}{figures['matches_per_item']:>12}")
    for name, label in (("other_feeds", "unseen: other feeds"),
                        ("labelled", "unseen: labelled sets")):
        if f"unseen_{name}" in figures:
            low, high = figures[f"unseen_{name}_range"]
            print(f"{label:28}{figures[f'unseen_{name}']:>12,} items/s "
                  f"({figures[f'unseen_{name}_items']:,} items, once each; median of "
                  f"{args.unseen_runs} fresh processes, {low:,}-{high:,})")
    print(f"{'target':28}{figures['target_items_per_s']:>12,} items/s per core")


if __name__ == "__main__":
    main()
