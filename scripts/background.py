"""Rebuild the stories' background vectors (worker/stories/background.i8) from the items we
wrote, after config/labelled/written.jsonl changes:

    python scripts/background.py [config/labelled/written.jsonl]

A test holds the shipped file to what this gives (tests/test_stories_across.py).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.classify import embedding_text  # noqa: E402
from worker.classify.semantic import MODEL_SHA256, shared  # noqa: E402
from worker.files import replace  # noqa: E402
from worker.stories import background, embedder_of  # noqa: E402


def texts_of(raw: bytes) -> list[str]:
    """What the model reads of each labelled item, in file order."""
    items = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    return [embedding_text(i["title"], i.get("summary") or "") for i in items]


def main() -> int:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / background.SOURCE
    raw = source.read_bytes()
    data = background.build(texts_of(raw), embedder_of(shared()), model=MODEL_SHA256,
                            source_sha256=hashlib.sha256(raw).hexdigest())
    replace(background.BANK, data)
    print(f"{background.BANK}: {len(texts_of(raw))} vectors from {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
