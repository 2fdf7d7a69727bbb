"""What a report numbers and dates ("group#2", "weekday#mon", "mar#21"): two reports that
number or date one thing differently report two events, however alike their words."""

from __future__ import annotations

import re

from ..classify.text import stem, words_of
from .words import _NUMBERS, _ORDINAL, _ORDINALS, _SERIES, _STOP


def counted(text: str) -> frozenset[str]:
    """What the text numbers and dates, as "noun#n": "the second group of hostages" -> "group#2",
    "day 3 of the truce" -> "day#3", "on Monday" -> "weekday#mon", "March 21" -> "mar#21". News
    counts its rounds, phases and days ("third group of hostages freed", "second round of
    talks", "phase two") and dates what it reports ("freed on Monday", "landed in France on
    Tuesday"): two reports that number or date the same thing differently report two events,
    however alike their words."""
    return _counted_text(text, words_of(text))


def _counted(words: list[str]) -> frozenset[str]:
    out = set()
    for i in [i for i, w in enumerate(words) if w in _MARKERS or w[-2:] in _SUFFIXES]:
        word = words[i]
        after = words[i + 1] if i + 1 < len(words) else ""
        ordinal = _ORDINAL.fullmatch(word)
        nth = _ORDINALS.get(word) or (str(int(ordinal[1])) if ordinal else None)
        if word in _WEEKDAYS:
            if not _named_day(words, i):
                out.add(f"weekday#{_WEEKDAYS[word]}")
        elif word in _MONTHS and (word != "may" or _day_of_month(after)):     # "may" is a verb
            day = _day_of_month(after) or (_day_of_month(words[i - 1]) if i else None)
            if day:
                out.add(f"{_MONTHS[word]}#{day}")
        elif (nth is not None and after and after not in _STOP and not after.isdigit()
              and after not in _MONTHS):      # "21st March": the month's, as "March 21"
            out.add(f"{stem(after)}#{nth}")
        elif word in _SERIES:
            n = _NUMBERS.get(after, after)
            if n.isdigit() and (len(n) < 4 or n[0] == _GROUPED_MARK):   # "day 2024": a year
                out.add(f"{word}#{int(n)}")
    return frozenset(out)


_WEEKDAYS = {d: d[:3] for d in "monday tuesday wednesday thursday friday saturday sunday".split()}
_MONTHS = {m: m[:3] for m in ("january february march april may june july august september "
                              "october november december").split()}
_MONTHS |= {m[:3]: m[:3] for m in _MONTHS} | {"sept": "sep"}
# The words `_counted` reads on from (most words are none of them), and ordinals' endings.
_MARKERS = frozenset(_WEEKDAYS) | frozenset(_MONTHS) | frozenset(_ORDINALS) | _SERIES
_SUFFIXES = frozenset("st nd rd th".split())


# A weekday that names something else: "Good Friday agreement", "Black Friday", "the Sunday
# Times", "Mail on Sunday".
_DAY_NAMED_BY = frozenset("good black bloody super ash palm easter cyber holy maundy".split())
_DAY_NAMES = frozenset("times telegraph mirror express post herald people mail independent "
                       "world sport star observer".split())


def _named_day(words: list[str], i: int) -> bool:
    return ((i > 0 and words[i - 1] in _DAY_NAMED_BY)
            or (i + 1 < len(words) and words[i + 1] in _DAY_NAMES)
            or words[max(0, i - 2):i] == ["mail", "on"])


def _day_of_month(word: str) -> int | None:
    """21 from "21" or "21st"; None unless a day of a month."""
    ordinal = _ORDINAL.fullmatch(word)
    n = int(ordinal[1]) if ordinal else int(word) if word.isdigit() and len(word) < 3 else 0
    return n if 1 <= n <= 31 else None


# "day 1,027" would read as day 1 ("1", "027"): a number written in groups is one word here.
_GROUPED = re.compile(r"(?<![\d.,])\d{1,3}(?:[,.\u202f\u00a0 ]\d{3})+(?![\d]|[.,]\d)")
_GROUPED_MARK = "0"        # "01027": unlike any year, and read back as 1027


def _counted_text(text: str, words: list[str]) -> frozenset[str]:
    """`_counted` of a text whose words (`words_of`) are given, reading grouped numbers whole."""
    if not _GROUPED.search(text):
        return _counted(words)
    return _counted(words_of(_GROUPED.sub(lambda m: _GROUPED_MARK + re.sub(r"\D", "", m[0]),
                                          text)))


def numbered_apart(a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether two reports number or date one thing differently: the third group against the
    second, Monday against Tuesday (a report of both rounds or days numbers it as either does,
    so it is no conflict)."""
    if not a or not b:
        return False
    mine = _by_noun(a)
    return any(noun in mine and ns.isdisjoint(mine[noun]) for noun, ns in _by_noun(b).items())


def _by_noun(marks: frozenset[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mark in marks:
        noun, _, n = mark.rpartition("#")
        out.setdefault(noun, set()).add(n)
    return out

