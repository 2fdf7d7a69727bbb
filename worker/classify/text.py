"""Text as the matcher sees it: folded words with positions, stems and fields.

Folding: Unicode NFC, case folding, accents removed (Türkiye = turkiye), curly quotes and
dashes made plain, possessives dropped (Israel's = Israel). Stems are English Snowball (PyStemmer).
A document has two fields, title and summary; each has its own position range, so a phrase or
NEAR never spans them. Building a Doc is the per-item cost of classification: it keeps only
what every query needs and computes character spans (for snippets) on demand.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import cached_property, lru_cache
from operator import itemgetter
from typing import Protocol, cast

import Stemmer

FIELDS = ("title", "summary")
FIELD_GAP = 1000                     # positions between fields (Lucene's position gap)
MIN_PREFIX = 3                       # letters before a wildcard
_CACHE_LIMIT = 200_000               # words whose stem / prefixes are remembered
# Apostrophes: ' and ’, and ‘ (often typed for one: "Israel‘s").
_TOKEN = re.compile(r"[^\W_]+(?:['’‘][^\W_]+)*")
_POSSESSIVE = re.compile(r"['’‘]s$")
_APOSTROPHES = str.maketrans("", "", "'’‘")
_stemmer = Stemmer.Stemmer("english")
_span = re.Match.span


@lru_cache(maxsize=200_000)
def fold(word: str) -> str:
    """A word as compared: case-folded, accents removed, possessive and apostrophes dropped."""
    word = word.casefold()
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFKD", word)
                       if not unicodedata.combining(c))
    if "'" in word or "’" in word or "‘" in word:
        word = _POSSESSIVE.sub("", word).translate(_APOSTROPHES)
    return word


_stems: dict[str, str] = {}


def stem(word: str) -> str:
    """The Snowball English stem of a folded word."""
    found = _stems.get(word)
    if found is None:
        if len(_stems) > _CACHE_LIMIT:
            _stems.clear()
        found = _stems[word] = str(_stemmer.stemWord(word))
    return found


class Lexicon:
    """What the topics need to know of each word, remembered per word: its stem, the wildcard
    prefixes some query uses that it starts with, and (with a presearch index) the topics whose
    required terms it holds.

    A Doc built with one records exactly the tracked prefixes its words have, which is all a
    presearch or a compiled query asks of it, at a fraction of the cost of every prefix; and
    the presearch becomes a union of the words' remembered topic sets, in C."""

    def __init__(self, prefixes: Iterable[str] | None = None,
                 index: Presearch | None = None) -> None:
        """`prefixes`: those to track (None: every prefix of MIN_PREFIX letters or more)."""
        self.known = None if prefixes is None else frozenset(prefixes)
        self.lengths = sorted({len(p) for p in self.known or ()})
        self.index = index
        self.words: dict[str, Facts] = {}

    def tracks(self, prefix: str) -> bool:
        return self.known is None or prefix in self.known

    def facts(self, word: str) -> Facts:
        """(stem, keys, topics admitted, topics whose second terms it meets) of a word. Its
        keys are its stem and each tracked prefix it has, marked `prefix*`: one set of a Doc
        answers both bare terms and wildcards."""
        if len(self.words) > _CACHE_LIMIT:
            self.words.clear()
        root = stem(word)
        if self.known is None:
            prefixes = _all_prefixes(word)
        else:
            known = self.known
            prefixes = tuple(p for n in self.lengths
                             if n <= len(word) and (p := word[:n]) in known)
        first, second = self.index.admits(word, root, prefixes) if self.index else (_NONE, _NONE)
        found = self.words[word] = (root, frozenset((root, *(p + "*" for p in prefixes))),
                                    first, second)
        return found


class Presearch(Protocol):
    def admits(self, word: str, root: str,
               prefixes: tuple[str, ...]) -> tuple[frozenset[int], frozenset[int]]: ...


Facts = tuple[str, frozenset[str], frozenset[int], frozenset[int]]
_NONE: frozenset[int] = frozenset()


def _all_prefixes(word: str) -> tuple[str, ...]:
    return tuple(word[:n] for n in range(MIN_PREFIX, len(word) + 1))


_PLAIN = {"’": "'", "‘": "'", "\u2013": "-", "\u2014": "-", "“": '"', "”": '"',
          # symbols of English news copy that are never inside a word: as spaces the text
          # stays ASCII and takes the fast path
          **dict.fromkeys("£€…\xa0·•«»°", " ")}


def _plain(text: str) -> str:
    """Typographic quotes, dashes and symbols made plain. A replace per character present:
    str.translate looks every character of a non-ASCII text up in a dict (10x slower)."""
    for char, plain in _PLAIN.items():
        if char in text:
            text = text.replace(char, plain)
    return text


# ASCII: every character that cannot be inside a token becomes a space, so that split() cuts
# the same tokens as _TOKEN does (apostrophes stay, for the chunks that need _TOKEN).
_ASCII_GAPS = str.maketrans({chr(c): " " for c in range(128)
                             if not chr(c).isalnum() and chr(c) != "'"})


def _fold_all(text: str) -> list[str]:
    """The folded words of a text. Plain ASCII (after typographic quotes and dashes) is
    lowered and cut in C (translate + split: the tokens _TOKEN finds, several times faster);
    anything else word by word through `fold`."""
    plain = _plain(text) if not text.isascii() else text
    if plain.isascii():
        chunks = plain.lower().translate(_ASCII_GAPS).split()
        if "'" not in plain:
            return chunks
        words: list[str] = []
        for chunk in chunks:        # apostrophes: _TOKEN's rules, within the chunk
            if "'" not in chunk:
                words.append(chunk)
            elif chunk[0] != "'" and chunk[-1] != "'" and "''" not in chunk:
                # one token ("israel's", "rock'n'roll"): fold's possessive and apostrophes
                words.append((chunk[:-2] if chunk.endswith("'s") else chunk).replace("'", ""))
            else:
                words += [fold(w) for w in _TOKEN.findall(chunk)]
        return words
    return list(map(fold, _TOKEN.findall(text)))


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def words_of(text: str) -> list[str]:
    """The folded words of a query fragment or text."""
    return [fold(w) for w in _TOKEN.findall(_nfc(text))]


_EVERY_PREFIX = Lexicon()        # for a Doc made without a classifier's lexicon


class Doc:
    """One item's title and summary, tokenised once for every query to read."""

    def __init__(self, title: str, summary: str = "", lexicon: Lexicon | None = None) -> None:
        self.title = _nfc(title.strip())
        self.summary = _nfc(summary.strip())
        title_words = _fold_all(self.title)
        self.split = len(title_words)          # words before it are the title's
        self.words = title_words + _fold_all(self.summary)
        self.wordset = set(self.words)
        self._unique = list(self.wordset)
        self.lexicon = lexicon = lexicon or _EVERY_PREFIX
        # One cache entry per word holds all the topics need to know of it.
        found = list(map(lexicon.words.get, self._unique))      # C-level loops
        self.facts = cast(list[Facts], found) if None not in found else [
            f if f is not None else lexicon.facts(w)
            for w, f in zip(self._unique, found, strict=True)]
        self.keys: set[str] = set().union(*map(itemgetter(1), self.facts))

    @cached_property
    def by_word(self) -> dict[str, list[int]]:
        """Word -> its indexes; built when a phrase, NEAR or a match's hits need positions."""
        out: dict[str, list[int]] = {}
        for i, w in enumerate(self.words):
            if w in out:
                out[w].append(i)
            else:
                out[w] = [i]
        return out

    @cached_property
    def stem_of(self) -> dict[str, str]:
        return dict(zip(self._unique, map(itemgetter(0), self.facts), strict=True))

    @cached_property
    def by_stem(self) -> dict[str, list[int]]:
        """Stem -> word indexes; needed only for the hits of topics that match."""
        out: dict[str, list[int]] = {}
        by_word = self.by_word
        for w, st in self.stem_of.items():
            out[st] = out[st] + by_word[w] if st in out else by_word[w]
        return out

    @cached_property
    def by_prefix(self) -> dict[str, list[int]]:
        """Tracked prefix, marked `prefix*` -> indexes of the words starting with it."""
        out: dict[str, list[int]] = {}
        by_word = self.by_word
        for w, facts in zip(self._unique, self.facts, strict=True):
            for key in facts[1]:
                if key[-1] == "*":
                    out[key] = out[key] + by_word[w] if key in out else by_word[w]
        return out

    def with_prefix(self, prefix: str) -> list[int]:
        """Indexes of the words that start with `prefix`."""
        if self.lexicon.tracks(prefix):
            return self.by_prefix.get(prefix + "*", [])
        return [i for w, idx in self.by_word.items() if w.startswith(prefix) for i in idx]

    @classmethod
    def of(cls, text: str) -> Doc:
        return cls(text)

    @classmethod
    def of_fields(cls, title: str, summary: str = "", lexicon: Lexicon | None = None) -> Doc:
        return cls(title, summary, lexicon)

    def field(self, i: int) -> int:
        return 0 if i < self.split else 1

    def position(self, i: int) -> int:
        return i if i < self.split else FIELD_GAP + i - self.split

    def adjacent(self, i: int) -> bool:
        """Whether word i + 1 follows word i in the same field."""
        return i + 1 < len(self.words) and i + 1 != self.split

    @cached_property
    def text(self) -> str:
        """Title and summary as shown in snippets."""
        return " · ".join(t for t in (self.title, self.summary) if t)

    @cached_property
    def spans(self) -> list[tuple[int, int]]:
        """Each word's (start, end) in `text`, computed only when a snippet needs them (no
        token crosses the " · " between the fields)."""
        return list(map(_span, _TOKEN.finditer(self.text)))

    def surface(self, indexes: list[int]) -> list[str]:
        return [self.text[self.spans[i][0]:self.spans[i][1]] for i in indexes]
