"""A report as compared: its fingerprint (headline and summary words, date, embedding, what it
numbers), and a story's copy as stored (`Member`: its unit TF-IDF vector under the word counts
of the moment it joined)."""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..classify.text import stem, words_of
from ..models import Entry
from .counted import _counted_text
from .words import Vocabulary, _content

if TYPE_CHECKING:
    import numpy as np

TITLE_WEIGHT = 1.5
TOPIC_WEIGHT = 0.5


@dataclass(frozen=True)
class Fingerprint:
    title: frozenset[str]
    summary: frozenset[str]          # summary words not in the title
    published: float | None          # epoch seconds
    vector: bytes | None = None      # int8 sentence embedding (semantic extra)
    topical: frozenset[str] = frozenset()   # words the topics look for
    counted: frozenset[str] = frozenset()   # what it numbers ("group#2"): `counted`
    lang: str | None = None

    @property
    def words(self) -> frozenset[str]:
        return self.title | self.summary


@dataclass(frozen=True, eq=False)
class Member:
    """A copy a story is compared through: its unit TF-IDF vector, weighed by the word counts
    of the moment it joined (so a lookup reads no counts for it), its date, its embedding,
    what it numbers."""
    weights: Mapping[str, float]
    published: float | None
    vector: bytes | None = None
    counted: frozenset[str] = frozenset()
    lang: str | None = None

    def dumps(self) -> str:
        vector = base64.b64encode(self.vector).decode() if self.vector is not None else None
        fields: list[Any] = [{w: round(x, 4) for w, x in self.weights.items()}, self.published,
                             vector]
        if self.counted or self.lang:   # most copies number nothing: kept out when empty
            fields.append(sorted(self.counted))
        if self.lang:
            fields.append(self.lang)
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def loads(cls, raw: str) -> Member:
        """Parsed once per process: a story's copies are read again for every entry that might
        join it, and a stored fingerprint never changes."""
        found = _parsed.get(raw)
        if found is None:
            weights, published, vector, *rest = json.loads(raw)
            found = cls(weights, published,
                        base64.b64decode(vector) if vector is not None else None,
                        frozenset(rest[0]) if rest else frozenset(),
                        rest[1] if len(rest) > 1 else None)
            if len(_parsed) >= _PARSED_LIMIT:
                _parsed.pop(next(iter(_parsed)))
            _parsed[raw] = found
        return found


_parsed: dict[str, Member] = {}
_PARSED_LIMIT = 2048          # ~10 MB (a 35-word member costs ~5 KB parsed and raw)


def fingerprint(entry: Entry, vector: bytes | None = None,
                vocabulary: Vocabulary | None = None) -> Fingerprint:
    title_words, summary_words = words_of(entry.title), words_of(entry.summary)  # tokenised once
    in_title = _content(title_words, entry.lang)
    in_summary = _content(summary_words, entry.lang)
    title = frozenset(map(stem, in_title))
    topical = vocabulary.among(in_title + in_summary) if vocabulary else frozenset()
    return Fingerprint(title, frozenset(map(stem, in_summary)) - title,
                       entry.published.timestamp() if entry.published else None, vector, topical,
                       _counted_text(entry.title, title_words)
                       | _counted_text(entry.summary, summary_words), entry.lang)


def embedding_text(entry: Entry) -> str:
    return f"{entry.title}. {entry.summary}".strip(" .")


def quantize(vector: np.ndarray[Any, Any]) -> bytes:
    """A unit vector as int8 (384 bytes for MiniLM): cosines stay within ~0.01."""
    import numpy as np

    return bytes(np.clip(np.rint(vector * 127), -127, 127).astype(np.int8).tobytes())


def semantic_cosine(a: bytes, b: bytes) -> float:
    import numpy as np

    x = np.frombuffer(a, dtype=np.int8).astype(np.float32)
    y = np.frombuffer(b, dtype=np.int8).astype(np.float32)
    return float(x @ y / ((float(np.linalg.norm(x)) * float(np.linalg.norm(y))) or 1.0))


class DocFreq:
    """How many of the recently clustered entries use each word: the IDF of TF-IDF.

    Smoothed as scikit-learn does (`ln((n + 1) / (df + 1)) + 1`), so with few entries
    seen every word weighs about the same and similarity is plain word overlap."""

    def __init__(self, n: int = 0, counts: Mapping[str, int] | None = None) -> None:
        self.n = n
        self.counts: Counter[str] = Counter(counts or {})

    def add(self, words: Iterable[str]) -> None:
        self.n += 1
        self.counts.update(words)

    def idf(self, word: str) -> float:
        return math.log((self.n + 1) / (self.counts.get(word, 0) + 1)) + 1


def weights(fp: Fingerprint, df: DocFreq) -> dict[str, float]:
    """The fingerprint's unit TF-IDF vector."""
    out = {w: TITLE_WEIGHT * df.idf(w) for w in fp.title}
    out.update((w, df.idf(w)) for w in fp.summary)
    for w in fp.topical & out.keys():
        out[w] *= TOPIC_WEIGHT
    norm = math.sqrt(sum(x * x for x in out.values())) or 1.0
    return {w: x / norm for w, x in out.items()}


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(x * b.get(w, 0.0) for w, x in a.items())



def embedder_of(embedder: Any = None) -> Callable[[list[str]], list[bytes]]:
    """Texts -> quantized embeddings, with this embedder or a new one (semantic extra)."""
    if embedder is None:
        from ..classify.semantic import shared

        embedder = shared()

    def embed(texts: list[str]) -> list[bytes]:
        return [quantize(v) for v in embedder.embed(texts)] if texts else []
    return embed
