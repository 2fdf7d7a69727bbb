"""The words a report is compared by: content words (folded, stemmed, stop words of its
language dropped, "four" = "4"), and the words the watch topics look for (`Vocabulary`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from ..classify.text import stem, words_of

# Words that say nothing about which event a report is about.
_STOP = frozenset("""
a about after also amid an and are as at be been being but by can could did do does for from had
has have he her his how i if in into is it its just live may might more most new news no not of on
or our over report reports said say says she should so than that the their them then there these
they this those to up update updates us was we were what when where which who why will with would
you
""".split())
_NUMBERS = dict(zip("one two three four five six seven eight nine ten eleven twelve".split(),
                    map(str, range(1, 13)), strict=True))
_ORDINALS = dict(zip("first second third fourth fifth sixth seventh eighth ninth tenth eleventh "
                     "twelfth".split(), map(str, range(1, 13)), strict=True))
_ORDINAL = re.compile(r"(\d{1,3})(?:st|nd|rd|th)")
_SERIES = frozenset("day round phase stage week".split())     # "day 3", "phase two"


def terms(text: str) -> frozenset[str]:
    """The content words of a text as compared: folded, stemmed, numbers as digits."""
    return frozenset(stem(w) for w in _content(text))


def _content(text: str | list[str], lang: str | None = None) -> list[str]:
    """Content words of a text, or of its words as `words_of` gives them; the function
    words of its language dropped too (two French reports share "de", "les", "selon" as two
    English ones share "the": nothing that makes them one event)."""
    stop = _STOP | stopwords(lang) if lang and lang != "en" else _STOP
    return [_NUMBERS.get(w, w) for w in (words_of(text) if isinstance(text, str) else text)
            if w not in stop and (len(w) > 1 or w.isdigit())]


@lru_cache(maxsize=64)
def stopwords(lang: str) -> frozenset[str]:
    """A language's function words as newswatch folds words (stopwords-iso: 58 languages)."""
    try:
        import stopwordsiso
    except ImportError:
        return frozenset()
    if not stopwordsiso.has_lang(lang):
        return frozenset()
    return frozenset(w for word in stopwordsiso.stopwords(lang) for w in words_of(word))


@dataclass(frozen=True)
class Vocabulary:
    """The words the watch topics look for. Every entry a topic matches uses some of them
    ("ceasefire", "hostage*"), so they say little about which event it reports: they weigh
    `TOPIC_WEIGHT` as much as other words."""
    words: frozenset[str] = frozenset()      # stems, and exact words as folded
    prefixes: tuple[str, ...] = ()

    def topical(self, text: str) -> frozenset[str]:
        """The stems of the text's words the topics look for."""
        return self.among(_content(text))

    def among(self, words: Iterable[str]) -> frozenset[str]:
        """The stems of these content words (as `_content` gives them) the topics look for."""
        return frozenset(stem(w) for w in words
                         if w in self.words or stem(w) in self.words
                         or w.startswith(self.prefixes))

