"""Classifier quality on labelled news: precision, recall and F1 per topic.

    python bench/eval.py [--data ../shared/eval/dev.jsonl] [--config config/newswatch.yaml]
                         [--errors] [--json]

Runs `newswatch classify` (the real CLI, as a user would) on the labelled items and compares its
topics with the labels, lexical only and with semantic scoring (`--semantic`; it needs
`pip install 'newswatch[semantic]'`). `--errors` lists the false positives and negatives.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ("ceasefire-talks", "hostage-releases")


def classify(data: Path, config: Path, extra: list[str]) -> dict[str, set[str]]:
    out = subprocess.run([sys.executable, "-m", "worker.cli", "classify", "--config",
                          str(config), *extra, str(data)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return {str(row["id"]): set(row["topics"])
            for row in map(json.loads, out.stdout.splitlines())}


def scores(items: list[dict], predicted: dict[str, set[str]], topic: str) -> dict[str, float]:
    tp = sum(1 for i in items if topic in i["labels"] and topic in predicted[i["id"]])
    fp = sum(1 for i in items if topic not in i["labels"] and topic in predicted[i["id"]])
    fn = sum(1 for i in items if topic in i["labels"] and topic not in predicted[i["id"]])
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3),
            "tp": tp, "fp": fp, "fn": fn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "eval" / "dev.jsonl")
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "newswatch.yaml")
    parser.add_argument("--errors", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lexical-only", action="store_true",
                        help="skip semantic scoring (it needs newswatch[semantic])")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data}: not found (the labelled set lives in ../shared/eval/)")
    items = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    modes = {"lexical": ["--no-semantic"]}
    if not args.lexical_only:
        modes["semantic"] = ["--semantic"]
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for mode, extra in modes.items():
        predicted = classify(args.data, args.config, extra)
        figures[mode] = {t: scores(items, predicted, t) for t in TOPICS}
        if args.errors:
            for item in items:
                for t in TOPICS:
                    got, want = t in predicted[item["id"]], t in item["labels"]
                    if got != want:
                        kind = "FP" if got else "FN"
                        print(f"{mode} {kind} {t}: [{item['id']}] {item['title']} | "
                              f"{(item.get('summary') or '')[:160]}", file=sys.stderr)
    if args.json:
        print(json.dumps({"items": len(items), **figures}))
        return
    print(f"{len(items)} labelled items from {args.data.name}")
    print(f"{'mode':10}{'topic':20}{'precision':>10}{'recall':>8}{'F1':>7}{'tp':>5}{'fp':>5}"
          f"{'fn':>5}")
    for mode, per_topic in figures.items():
        for t, s in per_topic.items():
            print(f"{mode:10}{t:20}{s['precision']:>10.3f}{s['recall']:>8.3f}{s['f1']:>7.3f}"
                  f"{s['tp']:>5}{s['fp']:>5}{s['fn']:>5}")


if __name__ == "__main__":
    main()
