"""Story threads on labelled news: what a subscriber would hear of each event.

    python bench/threads.py [--json] [--orders 8] [--errors]

Replays each labelled set (../shared/eval: dev, dev2, dev_ml; tests/data/story_sequences.jsonl,
ours: a truce's daily handovers, a week of talks, a release and the homecoming; the real feeds
of ../shared/feeds/real with our labels, bench/feed_stories.json) through the one story algorithm
(`worker.stories.cluster`, the worker's decision on an in-memory index), lexical and with the
multilingual model when installed, in publication order and in shuffled orders, and prints per
set:
- merge pairwise P / R: "same story" (folded, no alert) against the `story` labels;
- thread pairwise P / R: same story or threaded together;
- hidden events: events none of whose reports started a story of its own (never alerted);
- unthreaded redundant alerts: an event's alerts beyond the first that sit in another thread;
- cross-language events (several languages) whose reports all share one thread.
Every item is treated as matching a topic (each would be alerted): the figures are about
stories, not topics.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker import stories  # noqa: E402
from worker.commands.topics import Item as StoryInput  # noqa: E402
from worker.commands.topics import story_entry  # noqa: E402
from worker.config import load_config  # noqa: E402
from worker.models import Entry  # noqa: E402
from worker.runtime import make_classifier  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"


@dataclass(frozen=True)
class Item:
    id: str
    entry: Entry
    event: str
    unsure: frozenset[str] = frozenset()      # items this one is not scored against


def load(path: Path) -> list[Item]:
    """A labelled JSONL set, each item taken in as `newswatch stories` takes it."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            raw = json.loads(line)
            label = raw.get("story")
            out.append(Item(str(raw["id"]), story_entry(n, StoryInput.model_validate(raw)),
                            str(label if label is not None else raw["id"])))
    return out


def feed_set(real: Path, labels: Path) -> list[Item]:
    """A day's general news from each real feed, labelled by us (pairs we could not call
    either way are not scored)."""
    from worker.parse import parse_feed

    marks = json.loads(labels.read_text())
    event = {key: f"same-{n}" for n, group in enumerate(marks["same"]) for key in group}
    unsure: dict[str, set[str]] = {}
    for group in marks["unsure"]:
        for a, b in itertools.permutations(group, 2):
            unsure.setdefault(a, set()).add(b)
    out = []
    for path in sorted(real.glob("*.xml")):
        for e in parse_feed(path.read_bytes(), url=path.as_uri(), feed_id="b",
                            feed_name=path.stem):
            key = f"{path.name} {e.link}"
            out.append(Item(key, e, event.get(key, key), frozenset(unsure.get(key, ()))))
    return out


def publication_order(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (i.entry.published is None,
                                        i.entry.published.timestamp() if i.entry.published
                                        else 0.0))


def score(items: Sequence[Item], placed: Sequence[stories.Assignment]) -> dict[str, float]:
    story = {i.id: p.story for i, p in zip(items, placed, strict=True)}
    thread = {i.id: p.thread for i, p in zip(items, placed, strict=True)}
    m = {"tp": 0, "fp": 0, "fn": 0}
    t = {"tp": 0, "fp": 0, "fn": 0}
    for a, b in itertools.combinations(items, 2):
        if b.id in a.unsure:
            continue
        same = a.event == b.event
        for counts, said in ((m, story[a.id] == story[b.id]), (t, thread[a.id] == thread[b.id])):
            counts["tp"] += same and said
            counts["fp"] += said and not same
            counts["fn"] += same and not said
    events: dict[str, list[Item]] = {}
    for i in items:
        events.setdefault(i.event, []).append(i)
    hidden = redundant = 0
    multi = together = 0
    for reports in events.values():
        founded = [i for i in reports if story[i.id] == i.id]       # an alert each
        hidden += not founded
        redundant += max(0, len({thread[i.id] for i in founded}) - 1)
        if len({i.entry.lang for i in reports if i.entry.lang}) > 1:
            multi += 1
            together += len({thread[i.id] for i in reports}) == 1
    return {"merge_p": _ratio(m["tp"], m["tp"] + m["fp"]),
            "merge_r": _ratio(m["tp"], m["tp"] + m["fn"]),
            "thread_p": _ratio(t["tp"], t["tp"] + t["fp"]),
            "thread_r": _ratio(t["tp"], t["tp"] + t["fn"]),
            "events": len(events), "hidden": hidden, "redundant_unthreaded": redundant,
            "hidden_pct": round(100 * hidden / len(events), 1),
            "redundant_pct": round(100 * redundant / len(events), 1),
            "cross_language_events": multi,
            "cross_language_together": _ratio(together, multi)}


def _ratio(a: int, b: int) -> float:
    return round(a / b, 3) if b else 1.0


def run(items: list[Item], embed: Callable[[list[str]], Sequence[bytes]] | None,
        vocabulary: stories.Vocabulary, policy: stories.Policy | None = None,
        window_hours: float = 72) -> list[stories.Assignment]:
    return stories.cluster([(i.id, i.entry) for i in items], window_hours=window_hours,
                           embed=embed, vocabulary=vocabulary, policy=policy)


def cached_embedder(sets: dict[str, list[Item]]) -> Callable[[list[str]], list[bytes]] | None:
    """Each text embedded once for every order and setting."""
    try:
        embed = stories.embedder_of()
    except Exception:
        return None
    texts = list(dict.fromkeys(stories.embedding_text(i.entry) for s in sets.values()
                               for i in s))
    known = dict(zip(texts, embed(texts), strict=True))

    def cached(batch: list[str]) -> list[bytes]:
        missing = [t for t in batch if t not in known]
        if missing:
            known.update(zip(missing, embed(missing), strict=True))
        return [known[t] for t in batch]
    return cached


def evaluate(sets: dict[str, list[Item]], embed: Any, vocabulary: stories.Vocabulary,
             orders: int, policy: stories.Policy | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, items in sets.items():
        for mode, embedder in (("lexical", None), ("semantic", embed)):
            if mode == "semantic" and embed is None:
                continue
            first = publication_order(items)
            figures = score(first, run(first, embedder, vocabulary, policy))
            shuffled = []
            for seed in range(orders):
                order = list(items)
                random.Random(seed).shuffle(order)
                shuffled.append(score(order, run(order, embedder, vocabulary, policy)))
            if shuffled:
                figures["shuffled"] = {k: round(sum(s[k] for s in shuffled) / len(shuffled), 3)
                                       for k in ("merge_p", "merge_r", "thread_p", "thread_r",
                                                 "hidden_pct", "redundant_pct")}
                figures["shuffled"]["hidden_max"] = max(s["hidden"] for s in shuffled)
            out[f"{name}/{mode}"] = figures
    return out


def datasets() -> dict[str, list[Item]]:
    sets = {name: load(EVAL / f"{name}.jsonl") for name in ("dev", "dev2", "dev_ml")
            if (EVAL / f"{name}.jsonl").exists()}
    sequences = ROOT / "tests" / "data" / "story_sequences.jsonl"     # ours: days of one process
    if sequences.exists():
        sets["sequences"] = load(sequences)
    real = ROOT.parent / "shared" / "feeds" / "real"
    if real.is_dir():
        sets["feeds"] = feed_set(real, ROOT / "bench" / "feed_stories.json")
    return sets


def print_table(figures: dict[str, Any], orders: int) -> None:
    print(f"{'set/mode':22} {'merge P/R':>12} {'thread P/R':>12} {'events':>6} {'hidden':>9} "
          f"{'redund.':>9} {'x-lang':>7} | shuffled x{orders}: merge P, thread P/R, "
          "hidden % (max n), redundant %")
    for name, f in figures.items():
        s = f.get("shuffled", {})
        xl = f"{f['cross_language_together']:.2f}" if f["cross_language_events"] else "-"
        print(f"{name:22} {f['merge_p']:.3f}/{f['merge_r']:.3f} "
              f"{f['thread_p']:.3f}/{f['thread_r']:.3f} {f['events']:6} "
              f"{f['hidden']:3} {f['hidden_pct']:4.1f}% {f['redundant_unthreaded']:3} "
              f"{f['redundant_pct']:4.1f}% {xl:>7} | "
              + (f"{s['merge_p']:.3f}, {s['thread_p']:.3f}/{s['thread_r']:.3f}, "
                 f"{s['hidden_pct']:.1f}% ({s['hidden_max']}), {s['redundant_pct']:.1f}%"
                 if s else ""))


def shipped_vocabulary() -> stories.Vocabulary:
    return stories.Vocabulary(*make_classifier(
        load_config(ROOT / "config" / "newswatch.yaml"), semantic=False).vocabulary)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=8, help="shuffled orders per set")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sets = datasets()
    if not sets:
        raise SystemExit(f"no labelled sets under {EVAL}")
    figures = evaluate(sets, cached_embedder(sets), shipped_vocabulary(), args.orders)
    if args.json:
        print(json.dumps(figures))
    else:
        print_table(figures, args.orders)


if __name__ == "__main__":
    main()
