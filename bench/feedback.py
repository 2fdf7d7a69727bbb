"""Learning from readers: the labelled news replayed in publication order, feedback on alerts.

    python bench/feedback.py [--every N] [--draws K] [--filler] [--verdicts-only]
                             [--maybe BAND [--maybe-cap N]] [--json]

Each shipped topic starts as a new user's topic would: its query, exclude, examples and
counterexamples, and a model trained on those alone (what `newswatch train` fits with no
labelled files). The items of ../shared/eval (dev, dev2, dev_ml; undated ones last) then
arrive in publication order. An item is alerted when the current model says so; for a share
of the alerts (100%, 30%, 10%, and 0% for the baseline) the reader gives the gold label as
feedback, and the topic is retrained after every N new verdicts (as the worker's `learn` task
does), with the latest items seen that no reader judged and the model did not alert beside the
verdicts (`training.unjudged`; `--verdicts-only` leaves them out, as newswatch did before). Misses
are never told: readers see only what they were sent. `--maybe BAND` measures a way they could
see some: items not alerted but scored within BAND under the threshold are shown as "maybe"
lines (as a digest could carry them; `--maybe-cap N`: the N highest of every 50 items) and
judged as often as alerts.

The lent items are about a quarter relevant to each topic; news is far sparser. `--filler` deals
the real feeds' items (../shared/feeds/real) that no topic's query holds for among them,
presumed not relevant: a few may be relevant news the query misses, counted as false alerts.

Printed per topic and share: precision and recall of the alerts sent in each quarter of the
stream (the learning curve), the mean of the quarters' F1, and the verdicts given. Which alerts
get a verdict is drawn at random; one draw of a quarter's 10-30 alerts swings by chance alone
(precision 0.46 in one draw, 1.00 in another), so each share is replayed `--draws` times (the
draws differ only in which alerts are told) and the counts are pooled; the verdicts are the
mean per draw.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.classify.learned import Example, Figures, train  # noqa: E402
from worker.config import load_config  # noqa: E402
from worker.training import UNJUDGED_MAX, examples, inputs, unjudged  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
SHARES = (1.0, 0.3, 0.1, 0.0)


def stream(config: Any = None) -> list[dict[str, Any]]:
    """The labelled items in publication order; with `config`, real feeds' items that no
    topic's query holds for (presumed not relevant) dealt evenly among them."""
    items = []
    for name in ("dev.jsonl", "dev2.jsonl", "dev_ml.jsonl"):
        for line in (EVAL / name).read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            item["_story"] = f"{name}:{item.get('story') or item['id']}"
            items.append(item)
    items.sort(key=lambda i: (i.get("published") is None, i.get("published") or ""))
    if config is None:
        return items
    from classify import feed_entries

    from worker.classify import Classifier

    lexical = Classifier(config.topics)
    filler = [{"title": e.title, "summary": e.summary, "lang": e.lang, "labels": [],
               "_story": f"filler:{n}", "_filler": True}
              for n, e in enumerate(feed_entries(seeds=False))
              if not lexical.classify(e.title, e.summary)]
    dealt: list[dict[str, Any]] = []
    for n, item in enumerate(items):
        dealt += filler[n * len(filler) // len(items):(n + 1) * len(filler) // len(items)]
        dealt.append(item)
    return dealt


@dataclass
class Topic:
    """A topic's replay inputs, made once for all its shares and draws: its examples (no
    training files), the stream as examples, their query signals and vectors, and the model
    its examples alone fit (where every replay starts)."""

    id: str
    seeds: list[Example]
    stream: list[Example]
    rows: Any
    vectors: Any
    start: Any

    @classmethod
    def of(cls, config: Any, topic_id: str, items: list[dict[str, Any]],
           embedder: Any) -> Topic:
        from worker.parse import item_text

        seeds, _ = examples(config.__class__(config.path, config.feeds, {
            topic_id: config.topics[topic_id].model_copy(update={"training": ()})},
            config.subscribers, config.settings), topic_id)
        told = []
        for item in items:
            title, summary = item_text(item["title"] or "", item.get("summary"), None)
            told.append(Example(title, summary, topic_id in (item.get("labels") or []),
                                item["_story"], "feedback", item.get("lang")))
        rows, vectors = inputs(config, topic_id, seeds + told, embedder)
        start = train(topic_id, seeds, rows[:len(seeds)], vectors[:len(seeds)], embedder.name)
        return cls(topic_id, seeds, told, rows, vectors, start)


def replay(topic: Topic, embedding: str, share: float, every: int,
           draws: int = 1, beside: bool = True, maybe: Maybe | None = None) -> dict[str, Any]:
    """`draws` replays of the stream (one where no alert is told: nothing is drawn), their
    counts pooled per quarter."""
    runs = [_replay(topic, embedding, share, every, draw, beside, maybe)
            for draw in range(draws if share > 0 else 1)]
    gold = [e.relevant for e in topic.stream]
    quarters = []
    for q in range(4):
        lo, hi = q * len(gold) // 4, (q + 1) * len(gold) // 4
        f = Figures.of([g for _ in runs for g in gold[lo:hi]],
                       [s for said, _, _ in runs for s in said[lo:hi]])
        quarters.append({"precision": f.precision, "recall": f.recall, "f1": f.f1,
                         "alerts": (f.tp + f.fp) / len(runs),
                         "maybe": sum(sum(m[lo:hi]) for _, _, m in runs) / len(runs)})
    return {"quarters": quarters, "verdicts": sum(told for _, told, _ in runs) / len(runs),
            "draws": len(runs), "mean_f1": round(sum(q["f1"] for q in quarters) / 4, 3)}


@dataclass(frozen=True)
class Maybe:
    """Items shown as "maybe" lines, as a digest could carry them: not alerted, scored within
    `band` under the threshold; of each `period` items, the `cap` highest such (0: all)."""
    band: float
    cap: int = 0
    period: int = 50


def _replay(topic: Topic, embedding: str, share: float, every: int, draw: int, beside: bool,
            maybe: Maybe | None = None) -> tuple[list[bool], int, list[bool]]:
    """One replay: what was alerted, how many verdicts were given, and what was shown as
    "maybe" (`Maybe`: readers judge those as often as alerts). `beside`: retrain with the
    unjudged items of the stream beside the verdicts."""
    import numpy

    n_seeds = len(topic.seeds)
    seed_rows, seed_vectors = topic.rows[:n_seeds], topic.vectors[:n_seeds]
    item_rows, item_vectors = topic.rows[n_seeds:], topic.vectors[n_seeds:]
    rng = random.Random(f"{topic.id}:{share}" + (f":{draw}" if draw else ""))
    told: list[int] = []
    model = topic.start
    pending = 0
    said = []
    shown = [False] * len(topic.stream)
    near: list[tuple[float, int]] = []         # this period's maybe lines, not yet shown
    for n in range(len(topic.stream)):
        score = float(model.score(item_vectors[n:n + 1], item_rows[n:n + 1])[0])
        alerted = score >= model.threshold
        said.append(alerted)
        if alerted and rng.random() < share:
            told.append(n)
            pending += 1
        if maybe is not None and not alerted and score >= model.threshold - maybe.band:
            near.append((score, n))
        if maybe is not None and ((n + 1) % maybe.period == 0 or n + 1 == len(topic.stream)):
            for _, m in sorted(near, reverse=True)[:maybe.cap or None]:
                shown[m] = True
                if rng.random() < share:
                    told.append(m)
                    pending += 1
            near = []
        if pending >= every:
            pending = 0
            chosen = [topic.stream[i] for i in told]
            judged = set(told)
            latest = [i for i in range(n + 1) if i not in judged][-UNJUDGED_MAX:]
            model = train(topic.id, topic.seeds + chosen,
                          numpy.vstack([seed_rows, item_rows[told]]),
                          numpy.vstack([seed_vectors, item_vectors[told]]), embedding,
                          unjudged=unjudged(model, item_rows[latest], item_vectors[latest],
                                            len(told), sum(said) + sum(shown))
                          if beside else None)
    return said, len(told), shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=10, help="retrain after N new verdicts")
    parser.add_argument("--draws", type=int, default=3,
                        help="replays per share, pooled (they differ in which alerts are told)")
    parser.add_argument("--filler", action="store_true",
                        help="deal the real feeds' items no query holds for (presumed not "
                             "relevant) among the labelled ones: a stream as sparse as news")
    parser.add_argument("--verdicts-only", action="store_true",
                        help="retrain on verdicts without the unjudged stream beside them")
    parser.add_argument("--maybe", type=float, default=0.0, metavar="BAND",
                        help="also show (not alert) items scored within BAND under the "
                             "threshold, which readers judge as often as alerts")
    parser.add_argument("--maybe-cap", type=int, default=0, metavar="N",
                        help=f"at most the N highest maybe lines of every {Maybe.period} "
                             "items (a digest)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not EVAL.is_dir():
        sys.exit(f"{EVAL} is absent: the labelled news of ../shared is needed")
    from worker.classify.semantic import shared

    config = load_config(ROOT / "config" / "newswatch.yaml")
    embedder = shared()
    items = stream(config if args.filler else None)
    filler = sum(1 for i in items if i.get("_filler"))
    out: dict[str, Any] = {"items": len(items), "filler": filler, "every": args.every,
                           "draws": args.draws,
                           "unjudged": not args.verdicts_only, "maybe": args.maybe,
                           "maybe_cap": args.maybe_cap, "topics": {}}
    maybe = Maybe(args.maybe, args.maybe_cap) if args.maybe > 0 else None
    for topic_id in config.topics:
        topic = Topic.of(config, topic_id, items, embedder)
        out["topics"][topic_id] = {f"{int(share * 100)}%": replay(
            topic, embedder.name, share, args.every, args.draws, not args.verdicts_only, maybe)
            for share in SHARES}
    if args.json:
        print(json.dumps(out))
        return
    print(f"{len(items) - filler} labelled items in publication order"
          + (f" among {filler} of the real feeds' (presumed not relevant)" if filler else "")
          + "; retrain after every "
          f"{args.every} verdicts; P / R of the alerts sent in each quarter of the stream, "
          f"{args.draws} draws pooled (verdicts: mean per draw)"
          + (f"; in brackets, items shown as 'maybe' (within {args.maybe} under the "
             "threshold" + (f", at most {maybe.cap} of every {maybe.period} items"
                            if maybe and maybe.cap else "")
             + ", judged as often as alerts)" if maybe else ""))
    print(f"{'topic':18} {'told':>5} {'verdicts':>8}  " +
          "  ".join(f"{'Q' + str(q + 1):>13}" for q in range(4)) + "  mean F1")
    for topic_id, runs in out["topics"].items():
        for share, run in runs.items():
            cells = "  ".join(f"{q['precision']:.2f} / {q['recall']:.2f}"
                              + (f" ({q['maybe']:.0f})" if args.maybe else "")
                              for q in run["quarters"])
            print(f"{topic_id:18} {share:>5} {run['verdicts']:>8.0f}  {cells}  "
                  f"{run['mean_f1']:.3f}")


if __name__ == "__main__":
    main()
