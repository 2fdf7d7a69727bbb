"""Wall time of `newswatch run --once` on the offline seeds: cold (fresh data dir) and warm.

    python bench/run_once.py [--runs N] [--json]

Cold: a new data folder, so the embedded Redis starts empty and every entry is new.
Warm: the same folder again, so every feed answers 304-equivalent and nothing is alerted.
Both include interpreter start-up, the embedded Redis and the in-process Celery worker.

Modules run byte-compiled, as `pip install` leaves them: where the environment says not to
write byte code (PYTHONDONTWRITEBYTECODE, as on our machines) an editable checkout would be
compiled anew on every run (0.2 s). The caches go to a folder of their own (PYTHONPYCACHEPREFIX),
written by one untimed run first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def config_in(folder: Path) -> Path:
    """The shipped config, written in `folder` with its data and outbox there and every other
    path it names (seeds, models, training files) made absolute, as it meant them."""
    import yaml

    shipped = ROOT / "config"
    data = yaml.safe_load((shipped / "newswatch.yaml").read_text())

    def absolute(path: str) -> str:
        return path if "://" in path else str((shipped / path).resolve())

    for feed in data["feeds"]:
        feed["url"] = absolute(feed["url"])
    for topic in data["topics"].values():
        if "model" in topic:
            topic["model"] = absolute(topic["model"])
        topic["training"] = [absolute(p) for p in topic.get("training", [])]
    for subscriber in data["subscribers"]:
        if "outbox" in subscriber:
            subscriber["outbox"] = str(folder / "outbox")
    data.setdefault("settings", {})["data_dir"] = str(folder / "var")
    path = folder / "newswatch.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    return path


def timed(folder: Path, config: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "worker.cli", "run", "--once", "--config",
                           str(config)], cwd=folder, capture_output=True, text=True, env=env)
    took = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"newswatch run --once failed: {done.stderr.strip()[-500:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cold, warm = [], []
    alerts = 0
    with tempfile.TemporaryDirectory() as caches:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = caches
        for run in range(-1, args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                config = config_in(folder)
                first = timed(folder, config, env)
                if run < 0:
                    continue                     # the untimed run that compiles
                cold.append(first)
                alerts = len(list((folder / "outbox").glob("*.json")))
                warm.append(timed(folder, config, env))
    feeds = len([p for p in (ROOT / "seeds").iterdir() if p.suffix in {".xml", ".atom", ".json"}])
    figures = {"runs": args.runs, "feeds": feeds, "alerts_cold": alerts,
               "cold_s_median": round(statistics.median(cold), 3),
               "cold_s_min": round(min(cold), 3),
               "warm_s_median": round(statistics.median(warm), 3),
               "warm_s_min": round(min(warm), 3)}
    if args.json:
        print(json.dumps(figures))
        return
    print(f"newswatch run --once on seeds/ ({feeds} feeds, {alerts} alerts when cold)")
    print(f"{'':8}{'median s':>10}{'min s':>10}")
    print(f"{'cold':8}{figures['cold_s_median']:>10.3f}{figures['cold_s_min']:>10.3f}")
    print(f"{'warm':8}{figures['warm_s_median']:>10.3f}{figures['warm_s_min']:>10.3f}")


if __name__ == "__main__":
    main()
