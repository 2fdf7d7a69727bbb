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
from collections.abc import Iterable, Iterator
from functools import cached_property, lru_cache
from itertools import islice
from operator import itemgetter
from typing import Protocol

import Stemmer

from . import languages

FIELDS = ("title", "summary")
FIELD_GAP = 1000                     # positions between fields (Lucene's position gap)
MIN_PREFIX = 3                       # letters before a wildcard
_CACHE_LIMIT = 200_000               # words whose stem / prefixes are remembered
# Apostrophes: ' and ’, and ‘ (often typed for one: "Israel‘s"). Inside a word too: Persian's
# zero-width non-joiner (گروگان‌ها), the joiner and the Arabic tatweel that stretches a word;
# `fold` drops them, so the word is the same whether its writer used them or not, while the
# text shown in evidence keeps them (right-to-left text intact).
_JOINERS = "\u200c\u200d\u0640"
_TOKEN = re.compile(rf"[^\W_]+(?:(?:['’‘]|[{_JOINERS}]+)[^\W_]+)*")
_POSSESSIVE = re.compile(r"['’‘]s$")
_APOSTROPHES = str.maketrans("", "", "'’‘")
# PyStemmer's own cache off (size 0): `_stems` remembers every word already, and the cache, a
# dict kept in Python code, tripled the cost of a new word (1.0 against 0.35 µs).
_stemmer = Stemmer.Stemmer("english", 0)
_span = re.Match.span


# Arabic-script letters written several ways (Arabic and Persian yeh and kaf, taa marbuta,
# alef maqsura); hamza and madda on alef are combining marks, dropped with the accents.
_LETTERS = str.maketrans({"ة": "ه", "ى": "ي", "ی": "ي", "ک": "ك", "ۀ": "ه"})


@lru_cache(maxsize=200_000)
def fold(word: str) -> str:
    """A word as compared: case-folded, accents and vowel marks removed (Arabic harakat,
    Hebrew niqqud), Arabic-script letter variants made one, possessive and apostrophes
    dropped."""
    word = word.casefold()
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFKD", word)
                       if not unicodedata.combining(c) and c not in _JOINERS
                       ).translate(_LETTERS)
    if "'" in word or "’" in word or "‘" in word:
        word = _POSSESSIVE.sub("", word).translate(_APOSTROPHES)
    return word


_stems: dict[str, str] = {}


def stem(word: str) -> str:
    """The Snowball English stem of a folded word."""
    found = _stems.get(word)
    return found if found is not None else stems([word])[0]


def stems(words: list[str]) -> list[str]:
    """`stem` of each word; those not remembered stemmed in one call."""
    found = list(map(_stems.get, words))
    if None in found:
        new = [w for w, f in zip(words, found, strict=True) if f is None]
        if len(_stems) > _CACHE_LIMIT:
            _stems.clear()
        made = dict(zip(new, _stemmer.stemWords(new), strict=True))
        _stems.update(made)
        found = [f if f is not None else made[w] for w, f in zip(words, found, strict=True)]
    return found  # type: ignore[return-value]


class Lexicon:
    """What the topics need to know of each word, remembered per word: its stem, the wildcard
    prefixes some query uses that it starts with, and (with a presearch index) the topics whose
    required terms it holds.

    A Doc built with one records exactly the tracked prefixes its words have, which is all a
    presearch or a compiled query asks of it, at a fraction of the cost of every prefix; and
    the presearch becomes a union of the words' remembered topic sets, in C."""

    def __init__(self, prefixes: Iterable[str] | None = None,
                 index: Presearch | None = None, lang: str | None = None) -> None:
        """`prefixes`: those to track (None: every prefix of MIN_PREFIX letters or more).
        `lang`: the language of the texts it reads; their words get that language's tagged
        stems besides the English one (languages.py)."""
        self.known = None if prefixes is None else frozenset(prefixes)
        self.lengths = sorted({len(p) for p in self.known or ()})
        self.starts = frozenset(p[:MIN_PREFIX] for p in self.known or ())   # a quick "none"
        self.index = index
        self.lang = lang if languages.known(lang) else None
        self.tag = languages.tag(self.lang)
        self.words: dict[str, Facts] = {}
        self.others: dict[str | None, Lexicon] = {self.lang: self}

    def for_lang(self, lang: str | None) -> Lexicon:
        """The lexicon of the same topics for texts in `lang` (made once, then kept)."""
        key = lang if languages.known(lang) else None
        found = self.others.get(key)
        if found is None:
            found = Lexicon(self.known, self.index, key)
            found.others = self.others
            self.others[key] = found
        return found

    def facts(self, word: str) -> Facts:
        """(stem, keys, topics admitted, topics whose second terms it meets) of a word. Its
        keys are its stem and each tracked prefix it has, marked `prefix*`: one set of a Doc
        answers both bare terms and wildcards."""
        found = self.words.get(word)
        return found if found is not None else self.learn([word])[0]

    def learn(self, words: list[str]) -> list[Facts]:
        """The facts of words not seen before, worked out together and remembered (their
        English stems in one call to the stemmer)."""
        if len(self.words) > _CACHE_LIMIT:
            self.words.clear()
        lang, known, lengths, starts = self.lang, self.known, self.lengths, self.starts
        admits = self.index.admits if self.index else None
        out = []
        for word, root in zip(words, stems(words), strict=True):
            roots = (root, *languages.stemmed(lang, word)) if lang else (root,)
            if known is None:
                prefixes = _all_prefixes(word)
            elif word[:MIN_PREFIX] in starts:
                prefixes = tuple(p for n in lengths
                                 if n <= len(word) and (p := word[:n]) in known)
            else:
                prefixes = ()
            first, second = admits(word, roots, prefixes) if admits else (_NONE, _NONE)
            keys = (*roots, *(p + "*" for p in prefixes)) if prefixes else roots
            out.append(found := (root, keys, first, second))
            self.words[word] = found
        return out


class Presearch(Protocol):
    def admits(self, word: str, roots: tuple[str, ...],
               prefixes: tuple[str, ...]) -> tuple[frozenset[int], frozenset[int]]: ...


# A tuple of keys, not a frozenset: a remembered word costs ~150 bytes less (200,000 of them)
Facts = tuple[str, tuple[str, ...], frozenset[int], frozenset[int]]
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


# ASCII, as bytes: letters lowered, and every character that cannot be inside a token becomes
# a space, so that split() cuts the same tokens as _TOKEN does (apostrophes stay, for the
# chunks that need _TOKEN). bytes.translate is a table lookup per byte: ~5x str.lower +
# str.translate.
_ASCII_FOLD = bytes(ord(chr(c).lower()) if chr(c).isalnum() or chr(c) == "'" else ord(" ")
                    for c in range(128)) + bytes(range(128, 256))


def _fold_all(text: str) -> list[str]:
    """The folded words of a text. Plain ASCII (after typographic quotes and dashes) is
    lowered and cut in C (translate + split: the tokens _TOKEN finds, several times faster);
    anything else word by word through `fold`."""
    plain = _plain(text) if not text.isascii() else text
    if plain.isascii():
        cut = plain.encode("ascii").translate(_ASCII_FOLD).decode("ascii")
        if "'" not in cut:
            return cut.split()
        cut += " "
        if not ("''" in cut or " 's" in cut or "'s'" in cut or cut.startswith("'s")):
            # Apostrophes inside or around words, no possessive standing alone: _TOKEN's
            # rules come down to dropping each word's final 's, then every apostrophe.
            return cut.replace("'s ", " ").replace("'", "").split()
        words: list[str] = []
        for chunk in cut.split():        # the rare rest: _TOKEN's rules, chunk by chunk
            if "'" not in chunk:
                words.append(chunk)
            else:
                words += [fold(w) for w in _TOKEN.findall(chunk)]
        return words
    return list(map(fold, _TOKEN.findall(text)))


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def words_of(text: str) -> list[str]:
    """The folded words of a query fragment or text."""
    return [fold(w) for w in _TOKEN.findall(_nfc(text))]


_KEYS = itemgetter(1)
_EVERY_PREFIX = Lexicon()        # for a Doc made without a classifier's lexicon


class Doc:
    """One item's title and summary, tokenised once for every query to read."""

    def __init__(self, title: str, summary: str = "", lexicon: Lexicon | None = None,
                 lang: str | None = None) -> None:
        self.title = _nfc(title.strip())
        self.summary = _nfc(summary.strip())
        self.lang = lang
        title_words = _fold_all(self.title)
        self.split = len(title_words)          # words before it are the title's
        self.words = title_words + _fold_all(self.summary)
        self.wordset = set(self.words)
        self._unique = list(self.wordset)
        self.lexicon = lexicon = (lexicon or _EVERY_PREFIX).for_lang(lang)
        # One cache entry per word holds all the topics need to know of it.
        found = list(map(lexicon.words.get, self._unique))      # C-level loops
        if None in found:                      # new words: worked out together
            new = iter(lexicon.learn([w for w, f in zip(self._unique, found, strict=True)
                                      if f is None]))
            found = [f if f is not None else next(new) for f in found]
        self.facts: list[Facts] = found  # type: ignore[assignment]
        self.keys: set[str] = set().union(*map(_KEYS, self.facts))
        self.tag = lexicon.tag                 # its stemmer, when not English

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
    def by_key(self) -> dict[str, list[int]]:
        """Key (a stem, or a tracked prefix as `prefix*`) -> word indexes; built only for the
        hits of topics that match."""
        out: dict[str, list[int]] = {}
        by_word = self.by_word
        for w, facts in zip(self._unique, self.facts, strict=True):
            indexes = by_word[w]
            for key in facts[1]:
                out[key] = out[key] + indexes if key in out else indexes
        return out

    @cached_property
    def keys_of(self) -> dict[str, tuple[str, ...]]:
        """Word -> its keys (stem and tracked `prefix*`)."""
        return dict(zip(self._unique, map(_KEYS, self.facts), strict=True))

    @classmethod
    def of(cls, text: str, lang: str | None = None) -> Doc:
        return cls(text, lang=lang)

    @classmethod
    def of_fields(cls, title: str, summary: str = "", lexicon: Lexicon | None = None,
                  lang: str | None = None) -> Doc:
        return cls(title, summary, lexicon, lang)

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

    _spans: list[tuple[int, int]] | None = None
    _span_finder: Iterator[re.Match[str]] | None = None

    def spans_to(self, last: int) -> list[tuple[int, int]]:
        """Each word's (start, end) in `text`, at least up to word `last`: found on demand, as
        far as a snippet reads (no token crosses the " · " between the fields)."""
        if self._spans is None:
            self._spans, self._span_finder = [], _TOKEN.finditer(self.text)
        spans = self._spans
        if len(spans) <= last:
            assert self._span_finder is not None
            spans += map(_span, islice(self._span_finder, last + 1 - len(spans)))
        return spans

    def surface(self, indexes: list[int]) -> list[str]:
        spans, text = self.spans_to(max(indexes, default=0)), self.text
        return [text[spans[i][0]:spans[i][1]] for i in indexes]
