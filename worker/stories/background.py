"""How alike two reports in different languages are, beyond how alike news usually is.

Two reports in different languages share no word, so the multilingual model alone says whether
one belongs in the other's thread. Its raw cosine says it badly: each language, and each kind
of news, sits in its own dense corner of the model's space (an Arabic report of any Gaza
event is ~0.83 alike to most Arabic news, an English one ~0.85), so a single bar on the cosine
either misses events told across languages or threads different events of one war together.
The remedy is the one cross-lingual retrieval uses against such "hubs" (CSLS, Conneau et al.
2018): a pair's cosine less the mean of how alike each report usually is to news, read as the
mean cosine of its nearest seventh (`SHARE`) of a fixed background of labelled news in
twelve languages (`usual`). "More alike than either usually is" (`lift` >= 0) is the evidence.

The background is ours: the vectors of `config/labelled/written.jsonl` (items we wrote, in
twelve languages; no lent text, no item of the sets the benches measure on), int8, built by
`scripts/background.py` and shipped in the package with the hash of the model
and of the file it was built from. Measured on ../shared/eval (bench/threads.py): cross-language
pairs within three days, average precision 0.57 by raw cosine, 0.79 by lift.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..classify.kernel import nearest_mean
from ..errors import NewswatchError

if TYPE_CHECKING:
    import numpy as np

BANK = Path(__file__).with_name("background.i8")
SOURCE = "config/labelled/written.jsonl"
# The share of the background a report's usual likeness is read from: its nearest seventh.
# Chosen as 50 of 348 reports (20: AP 0.77, 50: 0.79, 100: 0.78); a share, not a count, so
# that a larger background means the same: with 429 reports, 50 (an eighth) threaded 0.87 of
# the cross-language events of dev_ml, 61 (a seventh) 0.93, as 50 of 348 did.
SHARE = 1 / 7


class BackgroundError(NewswatchError):
    """The shipped background vectors are missing or damaged (a broken install)."""


def build(texts: Sequence[str], embed: Callable[[list[str]], list[bytes]], *, model: str,
          source_sha256: str) -> bytes:
    """The bank file: one JSON header line (model, dimensions, count, source hash), then each
    text's int8 vector."""
    vectors = embed(list(texts))
    dim = len(vectors[0]) if vectors else 0
    if any(len(v) != dim for v in vectors):
        raise ValueError("vectors of different lengths")
    header = {"model": model, "dim": dim, "count": len(vectors), "source": SOURCE,
              "source_sha256": source_sha256}
    return json.dumps(header, sort_keys=True).encode() + b"\n" + b"".join(vectors)


def read(data: bytes, where: Path | str = BANK) -> tuple[dict[str, Any], np.ndarray[Any, Any]]:
    """The header and the unit vectors (float32, one row each) of a bank file."""
    import numpy as np

    head, _, body = data.partition(b"\n")
    try:
        header = json.loads(head)
        dim, count = int(header["dim"]), int(header["count"])
    except (ValueError, KeyError, TypeError) as e:
        raise BackgroundError(f"{where}: not a background file ({e})") from None
    if dim <= 0 or len(body) != dim * count:
        raise BackgroundError(f"{where}: {len(body)} bytes of vectors, the header says "
                              f"{count} of {dim}")
    rows = np.frombuffer(body, dtype=np.int8).reshape(count, dim).astype(np.float32)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9)
    return header, rows


@lru_cache(maxsize=1)
def bank() -> np.ndarray[Any, Any]:
    try:
        data = BANK.read_bytes()
    except OSError as e:
        raise BackgroundError(f"{BANK}: cannot read the background vectors "
                              f"({e.strerror}); reinstall newswatch") from None
    return read(data)[1]


@lru_cache(maxsize=4096)
def usual(vector: bytes) -> float:
    """How alike this report is to news, usually: the mean cosine of its nearest background
    reports, a `SHARE` of them."""
    import numpy as np

    rows = bank()
    x = np.frombuffer(vector, dtype=np.int8).astype(np.float32)
    if x.shape[0] != rows.shape[1]:
        raise BackgroundError(f"{BANK}: vectors of {rows.shape[1]} dimensions, the model "
                              f"gives {x.shape[0]}")
    x /= float(np.linalg.norm(x)) or 1.0
    if not len(rows):
        return 0.0
    return float(nearest_mean((rows @ x)[None, :], max(1, round(len(rows) * SHARE)))[0])


def lifts(a: bytes, others: Sequence[bytes]) -> list[float]:
    """`lift` of `a` with each of `others`, in one product (a report against the recent
    stories' sketches: 500 one by one took 3.4 ms); minus infinity for one of another
    dimension (made by another model: nothing to compare)."""
    import numpy as np

    out = [-math.inf] * len(others)
    same = [n for n, b in enumerate(others) if len(b) == len(a)]
    if not same:
        return out
    x = np.frombuffer(a, dtype=np.int8).astype(np.float32)
    rows = np.frombuffer(b"".join(others[n] for n in same), dtype=np.int8)
    rows = rows.reshape(len(same), -1).astype(np.float32)
    norms = np.linalg.norm(rows, axis=1) * float(np.linalg.norm(x))
    cosines = (rows @ x) / np.where(norms == 0, 1.0, norms)
    mine = usual(a)
    for n, cosine in zip(same, cosines.tolist(), strict=True):
        out[n] = cosine - (mine + usual(others[n])) / 2
    return out


def lift(a: bytes, b: bytes) -> float:
    """The two reports' cosine less the mean of their usual likeness (half of CSLS): above 0,
    they are more alike than either usually is to news."""
    from .fingerprint import semantic_cosine

    return semantic_cosine(a, b) - (usual(a) + usual(b)) / 2
