"""Text as the matcher sees it: folded words with positions, stems and fields.

Folding: Unicode NFC, case folding, accents removed (Türkiye = turkiye), curly quotes and
dashes made plain, possessives dropped (Israel's = Israel). Stems are English Snowball (PyStemmer).
Each field gets its own position range, so a phrase or NEAR never spans title and summary.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import Stemmer

FIELDS = ("title", "summary")
FIELD_GAP = 1000                     # positions between fields (Lucene's position gap)
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_POSSESSIVE = re.compile(r"['’]s$")
_APOSTROPHES = str.maketrans("", "", "'’")
_stemmer = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def fold(word: str) -> str:
    """A word as compared: case-folded, accents removed, possessive and apostrophes dropped."""
    word = word.casefold()
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFKD", word)
                       if not unicodedata.combining(c))
    if "'" in word or "’" in word:
        word = _POSSESSIVE.sub("", word).translate(_APOSTROPHES)
    return word


def stem(word: str) -> str:
    """The Snowball English stem of a folded word (PyStemmer caches its results)."""
    return str(_stemmer.stemWord(word))


def words_of(text: str) -> list[str]:
    """The folded words of a query fragment or text."""
    return [fold(m.group()) for m in _TOKEN.finditer(unicodedata.normalize("NFC", text))]


@dataclass
class Doc:
    """One item's text, tokenised once; every query reads it through these lookups."""

    text: str
    words: list[str] = field(default_factory=list)
    stems: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    fields: list[int] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    by_word: dict[str, list[int]] = field(default_factory=dict)
    by_stem: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, text: str) -> Doc:
        return cls.of_fields(text)

    @classmethod
    def of_fields(cls, *texts: str) -> Doc:
        """Several fields (title, summary) as one document, each in its own position range."""
        joined = ""
        doc = cls("")
        for number, raw in enumerate(texts):
            text = unicodedata.normalize("NFC", raw.strip()) if raw else ""
            if not text:
                continue
            if joined:
                joined += " · "
            base, offset = number * FIELD_GAP, len(joined)
            for n, m in enumerate(_TOKEN.finditer(text)):
                word = fold(m.group())
                index = len(doc.words)
                doc.words.append(word)
                doc.positions.append(base + n)
                doc.fields.append(number)
                doc.spans.append((offset + m.start(), offset + m.end()))
                doc.by_word.setdefault(word, []).append(index)
            joined += text
        doc.text = joined
        unique = list(doc.by_word)
        for word, st in zip(unique, _stemmer.stemWords(unique), strict=True):
            doc.by_stem.setdefault(st, []).extend(doc.by_word[word])
        doc.stems = [""] * len(doc.words)
        for st, indexes in doc.by_stem.items():
            for i in indexes:
                doc.stems[i] = st
        return doc

    def adjacent(self, i: int) -> bool:
        """Whether word i + 1 follows word i in the same field."""
        return i + 1 < len(self.words) and self.positions[i + 1] == self.positions[i] + 1

    def surface(self, indexes: Sequence[int]) -> list[str]:
        return [self.text[self.spans[i][0]:self.spans[i][1]] for i in indexes]
