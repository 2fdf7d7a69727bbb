"""Wall time of `newswatch run --once` on the offline seeds: cold (fresh data dir) and warm.

    python bench/run_once.py [--runs N] [--json]

Cold: a new data folder, so the embedded Redis starts empty and every entry is new.
Warm: the same folder again, so every feed answers 304-equivalent and nothing is alerted.
Both include interpreter start-up, the embedded Redis and the in-process Celery worker.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def config_in(folder: Path) -> Path:
    text = (ROOT / "config" / "newswatch.yaml").read_text()
    text = text.replace("../seeds/", f"{ROOT / 'seeds'}/")
    text = text.replace("../var/outbox", str(folder / "outbox"))
    path = folder / "newswatch.yaml"
    path.write_text(text)
    return path


def timed(folder: Path, config: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "worker.cli", "run", "--once", "--config",
                    str(config)], cwd=folder, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = config_in(folder)
            cold.append(timed(folder, config))
            warm.append(timed(folder, config))
    figures = {"runs": args.runs, "cold_s_median": round(statistics.median(cold), 3),
               "cold_s_min": round(min(cold), 3),
               "warm_s_median": round(statistics.median(warm), 3),
               "warm_s_min": round(min(warm), 3)}
    if args.json:
        print(json.dumps(figures))
        return
    print("newswatch run --once on seeds/ (3 feeds, 12 entries, 5 alerts when cold)")
    print(f"{'':8}{'median s':>10}{'min s':>10}")
    print(f"{'cold':8}{figures['cold_s_median']:>10.3f}{figures['cold_s_min']:>10.3f}")
    print(f"{'warm':8}{figures['warm_s_median']:>10.3f}{figures['warm_s_min']:>10.3f}")


if __name__ == "__main__":
    main()
