"""Topic quality on labelled news: precision, recall and F1 per topic, set and language.

    python bench/eval.py [--config config/newswatch.yaml] [--errors] [--new-languages] [--json]

Three decisions, on ../shared/eval/dev.jsonl, dev2.jsonl and dev_ml.jsonl (per language too):
- lexical: `newswatch classify --no-semantic` (the real CLI): the topics' queries alone;
- similarity: `newswatch classify --semantic --no-models`: queries, and similarity to each
  topic's description and examples (what a topic gets before it is trained);
- trained (cross-validated): the topic's model as `newswatch train` fits it, each item scored
  by models that never saw its story (10 folds grouped by story, both stages; five deals of
  the stories into folds, pooled), at the ridge and threshold the cross-validation chose.
  The shipped model is fitted on all of it: these are the figures to expect on items it has
  not seen, not the ones it gets on these;
- cv, as shipped: the same scores, but an English item that neither the topic's gate nor its
  query holds for scores 0: the shipped classifier never embeds it, so its model never says;
- written only: a model fitted the same way on the items we wrote (config/labelled) and the
  topic's examples alone, scored on every lent item (none of which it saw): how far what we
  wrote carries to real news.
With `--new-languages` (a few minutes more), two more, on dev_ml one language at a time:
- new language: a model fitted as `newswatch train` fits it (at the ridge the cross-validation
  chose on all items) on every item not in that language, lent or ours, scored on dev_ml's
  items in it: a language the query reads but the model never saw;
- unread language: the same models, with the query's signals blanked (it held nowhere, the
  item is not English): a language neither the query nor the model knows, which is what
  news in the other languages of the world is to the shipped topics.
The two scored decisions also print AP: the average precision of their scores on each set,
which judges the ranking apart from where the threshold fell (a change of training data can
move one without the other). `--errors` lists the trained decision's false positives and
negatives.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.classify.learned import Figures, select  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval"
SETS = ("dev.jsonl", "dev2.jsonl", "dev_ml.jsonl")


def classify(data: Path, config: Path, extra: list[str]) -> dict[str, set[str]]:
    out = subprocess.run([sys.executable, "-m", "worker.cli", "classify", "--config",
                          str(config), *extra, str(data)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return {str(row["id"]): set(row["topics"])
            for row in map(json.loads, out.stdout.splitlines())}


def figures(gold: list[bool], said: list[bool]) -> dict[str, Any]:
    f = Figures.of(gold, said)
    return {"precision": f.precision, "recall": f.recall, "f1": f.f1, "tp": f.tp, "fp": f.fp,
            "fn": f.fn}


def by_group(items: list[dict[str, Any]], topic: str, said: list[bool]
             ) -> dict[str, dict[str, Any]]:
    """Figures per set, and per language of dev_ml."""
    out: dict[str, dict[str, Any]] = {}
    keys = [(i["_set"],) + ((f"dev_ml:{i['lang']}",) if i["_set"] == "dev_ml.jsonl" else ())
            for i in items]
    for key in dict.fromkeys(k for ks in keys for k in ks):
        chosen = [n for n, ks in enumerate(keys) if key in ks]
        out[key] = figures([topic in items[n]["labels"] for n in chosen],
                           [said[n] for n in chosen])
    return out


def trained(config_path: Path, topics: list[str], items: list[dict[str, Any]],
            errors: bool, new_languages: bool = False
            ) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Two decisions per topic (four with `new_languages`: see `languages_left_out`), scored
    on the lent items:
    - "trained (cv)": cross-validated, over every labelled item and the topic's own examples,
      as `newswatch train` fits it;
    - "written only": a model fitted as `newswatch train` fits it on the items we wrote
      (config/labelled) and the topic's examples alone, at its own threshold: no lent item
      is on its training side, so every figure is on news it never saw."""
    from worker.classify.learned import train
    from worker.classify.semantic import shared
    from worker.config import load_config
    from worker.runtime import make_classifier
    from worker.training import examples, inputs

    config = load_config(config_path)
    embedder = shared()
    shipped = make_classifier(config, semantic=True)       # what "cv, as shipped" asks
    lent = set(SETS)
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
        "trained (cv)": {}, "written only": {}, "cv, as shipped": {}}
    for topic in topics:
        found, _ = examples(config, topic)
        rows, vectors = inputs(config, topic, found, embedder)
        l2, threshold, cross_validations = select(found, rows, vectors)
        runs = [held_out for held_out, _ in cross_validations]
        out["trained (cv)"][topic] = pooled(items, topic, found, runs, threshold, errors)
        reached = reaches_model(shipped, topic, found)
        out["cv, as shipped"][topic] = pooled(
            items, topic, found, [run * reached for run in runs], threshold, False)
        ours = [n for n, e in enumerate(found) if e.source not in lent]
        if len(ours) < len(found):
            model = train(topic, [found[n] for n in ours], rows[ours], vectors[ours],
                          embedder.name)
            out["written only"][topic] = pooled(items, topic, found,
                                                [model.score(vectors, rows)], model.threshold,
                                                False)
        if new_languages:
            for decision, runs in languages_left_out(topic, found, rows, vectors, l2,
                                                     embedder.name).items():
                out.setdefault(decision, {})[topic] = pooled(
                    [i for i in items if i["_set"] == "dev_ml.jsonl"], topic, found,
                    [runs], 0.5, False)
    if not out["written only"]:
        del out["written only"]
    return out


def reaches_model(classifier: Any, topic: str, found: list[Any]) -> Any:
    """1 for each example the shipped classifier lets its model judge, 0 for the rest: an
    English item that neither the topic's `semantic.gate` nor its query holds for is never
    embedded, whatever the model would say of it. Asked of the classifier itself
    (`Scorer.worth`)."""
    import numpy

    from worker.classify.language import detect

    scorer = classifier.scorer
    assert scorer is not None
    (k,) = [k for k, st in enumerate(scorer.topics)
            if classifier.topics[st.number].id == topic]
    return numpy.array([float(k in scorer.worth(
        classifier.doc(e.title, e.summary, e.lang or detect(e.title, e.summary)),
        classifier.topics)) for e in found])


def languages_left_out(topic: str, found: list[Any], rows: Any, vectors: Any, l2: float,
                       embedding: str) -> dict[str, Any]:
    """Each dev_ml item's score from a model fitted on every example not in its language,
    with its real signals ("new language") and with them blanked ("unread language"), as its
    distance from that model's threshold plus 0.5: said relevant at 0.5, and ranked across
    the languages' models by how far past their thresholds."""
    import numpy

    from worker.classify.learned import train

    langs = [e.lang or "en" for e in found]
    out = {"new language": numpy.zeros(len(found)), "unread language": numpy.zeros(len(found))}
    for lang in sorted({lang for e, lang in zip(found, langs, strict=True)
                        if e.source == "dev_ml.jsonl"} - {"en"}):
        kept = [n for n, other in enumerate(langs) if other != lang]
        scored = [n for n, e in enumerate(found)
                  if langs[n] == lang and e.source == "dev_ml.jsonl"]
        model = train(topic, [found[n] for n in kept], rows[kept], vectors[kept], embedding,
                      l2_choices=(l2,))
        for decision, signals in (("new language", rows[scored]),
                                  ("unread language", numpy.zeros_like(rows[scored]))):
            out[decision][scored] = model.score(vectors[scored], signals) - model.threshold + 0.5
    return out


def pooled(items: list[dict[str, Any]], topic: str, found: list[Any], runs: list[Any],
           threshold: float, errors: bool) -> dict[str, dict[str, Any]]:
    """Figures per set over every run's scores of the lent items (counts per run), and the
    average precision of the scores (their ranking, whatever the threshold), mean over runs."""
    sums: dict[str, dict[str, int]] = {}
    ranked: dict[str, list[float]] = {}
    for run in runs:
        score = {(e.source, e.title, e.summary): s for e, s in zip(found, run.tolist(),
                                                                     strict=True)}
        scores = [score.get((i["_set"], i["_title"], i["_summary"]), 0.0) for i in items]
        said = [s >= threshold for s in scores]
        for group, f in by_group(items, topic, said).items():
            counts = sums.setdefault(group, {"tp": 0, "fp": 0, "fn": 0})
            for key in counts:
                counts[key] += f[key]
        for group, members in groups_of(items).items():
            ranked.setdefault(group, []).append(average_precision(
                [topic in items[n]["labels"] for n in members], [scores[n] for n in members]))
    if errors:
        for i, s in zip(items, said, strict=True):
            if s != (topic in i["labels"]):
                p = score.get((i["_set"], i["_title"], i["_summary"]), 0.0)
                print(f"trained {'FP' if s else 'FN'} {topic} {p:.2f}: [{i['_set']} "
                      f"{i['id']}] {i['title']} | {(i.get('summary') or '')[:140]}",
                      file=sys.stderr)
    return {group: {**_from_counts(c, len(runs)),
                    "ap": round(sum(ranked[group]) / len(ranked[group]), 3)}
            for group, c in sums.items()}


def groups_of(items: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The items of each set, and of each language of dev_ml (as `by_group` groups them)."""
    out: dict[str, list[int]] = {}
    for n, i in enumerate(items):
        out.setdefault(i["_set"], []).append(n)
        if i["_set"] == "dev_ml.jsonl":
            out.setdefault(f"dev_ml:{i['lang']}", []).append(n)
    return out


def average_precision(gold: list[bool], scores: list[float]) -> float:
    """Precision at each relevant item, ranked by score, averaged (1.0 with none relevant)."""
    hits, total = 0, 0.0
    for rank, (_, relevant) in enumerate(sorted(zip(scores, gold, strict=True),
                                                key=lambda p: -p[0]), 1):
        if relevant:
            hits += 1
            total += hits / rank
    return total / hits if hits else 1.0


def _from_counts(counts: dict[str, int], runs: int) -> dict[str, Any]:
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3),
            "tp": round(tp / runs), "fp": round(fp / runs), "fn": round(fn / runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "newswatch.yaml")
    parser.add_argument("--errors", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--new-languages", action="store_true",
                        help="also score dev_ml one language at a time by models that never "
                             "saw it (a few minutes more)")
    parser.add_argument("--lexical-only", action="store_true",
                        help="skip the model (it needs newswatch[semantic])")
    args = parser.parse_args()
    if not EVAL.is_dir():
        sys.exit(f"{EVAL}: not found (the labelled sets live in ../shared/eval/)")
    from worker.commands.topics import Item, _item_text

    items = []
    for name in SETS:
        for line in (EVAL / name).read_text().splitlines():
            if line.strip():
                item = json.loads(line)
                item["_set"] = name
                item["_title"], item["_summary"] = _item_text(Item.model_validate(item))
                items.append(item)
    topics = ["ceasefire-talks", "hostage-releases"]
    modes = {"lexical": ["--no-semantic"]}
    if not args.lexical_only:
        modes["similarity"] = ["--semantic", "--no-models"]
    results: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for mode, extra in modes.items():
        predicted: dict[str, set[str]] = {}
        for name in SETS:
            predicted.update({f"{name}:{k}": v for k, v in
                              classify(EVAL / name, args.config, extra).items()})
        results[mode] = {t: by_group(items, t, [t in predicted[f"{i['_set']}:{i['id']}"]
                                                for i in items]) for t in topics}
    if not args.lexical_only:
        results.update(trained(args.config, topics, items, args.errors, args.new_languages))
    if args.json:
        print(json.dumps({"items": len(items), **results}))
        return
    print(f"{len(items)} labelled items: " + ", ".join(
        f"{name} {sum(1 for i in items if i['_set'] == name)}" for name in SETS))
    print(f"{'decision':17}{'topic':18}{'set':16}{'P':>7}{'R':>7}{'F1':>7}{'tp':>5}{'fp':>5}"
          f"{'fn':>5}{'AP':>7}")
    for mode, per_topic in results.items():
        for topic, groups in per_topic.items():
            for group, f in groups.items():
                if group.startswith("dev_ml:") and mode == "lexical":
                    continue
                print(f"{mode:17}{topic:18}{group.removesuffix('.jsonl'):16}"
                      f"{f['precision']:>7.3f}{f['recall']:>7.3f}{f['f1']:>7.3f}{f['tp']:>5}"
                      f"{f['fp']:>5}{f['fn']:>5}" + (f"{f['ap']:>7.3f}" if "ap" in f else ""))


if __name__ == "__main__":
    main()
