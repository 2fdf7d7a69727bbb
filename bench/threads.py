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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
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


def score(items: Sequence[Item], placed: Sequence[stories.Assignment]) -> dict[str, Any]:
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
            "cross_language_together": _ratio(together, multi),
            "counts": {"merge": m, "thread": t, "together": together}}


def list_errors(name: str, items: Sequence[Item], placed: Sequence[stories.Assignment]) -> None:
    """The thread errors of one run, on stderr: a report in a thread another event started
    (a wrong thread), and an event whose reports sit in several threads (split)."""
    by_id = {i.id: i for i in items}

    def said(i: Item) -> str:
        when = i.entry.published.date().isoformat() if i.entry.published else "undated"
        return f"[{i.id} {when} {i.entry.lang or '?'}] {i.entry.title[:90]}"

    threads: dict[str, list[Item]] = {}
    for i, p in zip(items, placed, strict=True):
        threads.setdefault(p.thread, []).append(i)
        head = by_id[p.thread]
        if p.thread != i.id and head.event != i.event and p.thread not in i.unsure:
            print(f"{name} wrong thread: {said(i)}\n    under {said(head)}", file=sys.stderr)
    events: dict[str, set[str]] = {}
    for thread, members in threads.items():
        for i in members:
            events.setdefault(i.event, set()).add(thread)
    for event, split in events.items():
        if len(split) > 1:
            heads = "; ".join(said(by_id[t]) for t in sorted(split))
            print(f"{name} split {event}: {heads}", file=sys.stderr)


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


SAME_GRID = (0.2, 0.35, 0.5, 0.7)
RELATED_GRID = (-0.05, 0.0, 0.1)
UNDATED_GRID = (0.4, 0.5, 0.6, 0.7)       # what an undated pair needs (stories.RULE.undated)


@contextmanager
def undated_needs(value: float) -> Iterator[None]:
    """The story rule with another `undated`, for the runs inside."""
    from worker.stories import decide

    kept = decide.RULE
    decide.RULE = replace(kept, undated=value)
    try:
        yield
    finally:
        decide.RULE = kept
FOLDS = 5


def cross_validated(sets: dict[str, list[Item]], embed: Any,
                    vocabulary: stories.Vocabulary) -> dict[str, Any]:
    """The policy chosen without the items it is scored on: folds by event (every report of
    one event in one fold, dealt by a hash of its label), the policy picked on the other
    folds of every set (first what an undated pair needs, `undated`: the best thread F1 at the
    shipped policy; then `same`: the lowest with merge precision >= 0.98; `related`: the best
    thread F1), each held-out fold replayed alone with it; pairwise counts and hidden events
    summed over the held-out folds, per set."""
    from worker.classify.learned import folds

    dealt = {name: folds([i.event for i in items], FOLDS) for name, items in sets.items()}

    def part(name: str, fold: int, held: bool) -> list[Item]:
        return publication_order([i for i, f in zip(sets[name], dealt[name], strict=True)
                                  if (f == fold) == held])

    def pooled(fold: int, policy: stories.Policy, held: bool) -> dict[str, dict[str, int]]:
        total: dict[str, dict[str, int]] = {}
        for name in sets:
            items = part(name, fold, held)
            if items:
                got = score(items, run(items, embed, vocabulary, policy))
                for kind in ("merge", "thread"):
                    for k, v in got["counts"][kind].items():
                        total.setdefault(kind, {}).setdefault(k, 0)
                        total[kind][k] += v
                total.setdefault("hidden", {"n": 0})["n"] += got["hidden"]
        return total

    def f1(c: dict[str, int]) -> float:
        return 2 * c["tp"] / max(1, 2 * c["tp"] + c["fp"] + c["fn"])

    out: dict[str, Any] = {"chosen": []}
    held: dict[str, dict[str, Any]] = {}
    for fold in range(FOLDS):
        def fitted(undated: float, fold: int = fold) -> float:
            with undated_needs(undated):
                return f1(pooled(fold, stories.POLICY, held=False)["thread"])
        undated = max(UNDATED_GRID, key=fitted)          # the first of equals
        with undated_needs(undated):
            trained = {(same, rel): pooled(fold, stories.Policy(same, rel), held=False)
                       for same in SAME_GRID for rel in RELATED_GRID}
        sure = [same for same in SAME_GRID if all(
            _ratio(c["merge"]["tp"], c["merge"]["tp"] + c["merge"]["fp"]) >= 0.98
            for (s, _), c in trained.items() if s == same)] or [SAME_GRID[-1]]
        same = sure[0]
        rel = max(RELATED_GRID, key=lambda r: f1(trained[(same, r)]["thread"]))
        out["chosen"].append([undated, same, rel])
        for name in sets:
            items = part(name, fold, held=True)
            if not items:
                continue
            with undated_needs(undated):
                got = score(items, run(items, embed, vocabulary, stories.Policy(same, rel)))
            mine = held.setdefault(name, {"merge": {"tp": 0, "fp": 0, "fn": 0},
                                          "thread": {"tp": 0, "fp": 0, "fn": 0},
                                          "hidden": 0, "events": 0})
            for kind in ("merge", "thread"):
                for k, v in got["counts"][kind].items():
                    mine[kind][k] += v
            mine["hidden"] += got["hidden"]
            mine["events"] += got["events"]
    for name, c in held.items():
        m, t = c["merge"], c["thread"]
        out[name] = {"merge_p": _ratio(m["tp"], m["tp"] + m["fp"]),
                     "merge_r": _ratio(m["tp"], m["tp"] + m["fn"]),
                     "thread_p": _ratio(t["tp"], t["tp"] + t["fp"]),
                     "thread_r": _ratio(t["tp"], t["tp"] + t["fn"]),
                     "hidden": c["hidden"], "events": c["events"]}
    return out


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
    parser.add_argument("--cv", action="store_true",
                        help="also choose the policy by folds grouped by event (slow)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--errors", action="store_true",
                        help="list, on stderr, the reports threaded under another event and "
                             "the events split over threads (publication order, with the "
                             "model)")
    args = parser.parse_args()
    sets = datasets()
    if not sets:
        raise SystemExit(f"no labelled sets under {EVAL}")
    embed = cached_embedder(sets)
    figures = evaluate(sets, embed, shipped_vocabulary(), args.orders)
    if args.errors:
        for name, items in sets.items():
            first = publication_order(items)
            list_errors(name, first, run(first, embed, shipped_vocabulary()))
    if args.cv:
        labelled = {k: v for k, v in sets.items() if k in ("dev", "dev2", "dev_ml")}
        figures["cv"] = cross_validated(labelled, embed, shipped_vocabulary())
    if args.json:
        print(json.dumps(figures))
        return
    print_table({k: v for k, v in figures.items() if k != "cv"}, args.orders)
    if "cv" in figures:
        cv = figures["cv"]
        print(f"cross-validated ({FOLDS} folds by event; undated, same, related chosen per fold: "
              f"{cv['chosen']}), with the model:")
        for name, f in cv.items():
            if name != "chosen":
                print(f"  {name:8} merge P/R {f['merge_p']:.3f}/{f['merge_r']:.3f}  thread P/R "
                      f"{f['thread_p']:.3f}/{f['thread_r']:.3f}  hidden {f['hidden']} of "
                      f"{f['events']}")


if __name__ == "__main__":
    main()
