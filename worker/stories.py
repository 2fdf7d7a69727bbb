"""Near-duplicate detection across outlets: is this entry a copy of a story we already have?

Pure: a fingerprint of an entry, a similarity between fingerprints, and the decision. The store
keeps fingerprints of recent stories; pipeline.assign_story ties the two together. The rule is
deliberately conservative: merging two different stories hides news, a missed merge only costs
one extra alert.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .models import Entry

_WORD = re.compile(r"[^\W_]+")
# Words that say nothing about which event a headline reports.
_STOP = frozenset("""
a an and are as at be been being but by can could did do does for from had has have he her his
how i in into is it its live may might more most new news no not of on or our over says said say
she should so than that the their them then there these they this those to up updates us was we
were what when where which who why will with would you after amid as about report reports
""".split())
TITLE_OVERLAP = 0.7      # share of the shorter title's words found in the other
TITLE_MIN_SHARED = 4
TEXT_JACCARD = 0.45      # title + summary words
TEXT_MIN_TITLE_SHARED = 3
# Neither rule can hold with fewer shared headline words: candidates are found by them.
MIN_SHARED = min(TITLE_MIN_SHARED, TEXT_MIN_TITLE_SHARED)


@dataclass(frozen=True)
class Fingerprint:
    title: frozenset[str]
    text: frozenset[str]

    def dumps(self) -> str:
        return json.dumps([sorted(self.title), sorted(self.text - self.title)])

    @classmethod
    def loads(cls, raw: str) -> Fingerprint:
        title, rest = json.loads(raw)
        return cls(frozenset(title), frozenset(title) | frozenset(rest))


def _words(text: str) -> frozenset[str]:
    out = set()
    for w in _WORD.findall(text.casefold()):
        if w in _STOP or len(w) < 2:
            continue
        # crude plural/possessive folding: "hostages" ~ "hostage", "israel's" -> "israel"
        if len(w) > 4 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        out.add(w)
    return frozenset(out)


UPDATE_TITLE_OVERLAP = 0.6    # a copy's headline sharing less than this with the alerted one
MAX_UPDATES = 3               # update alerts per story and subscriber


def material_update(alerted: Entry, alerted_topics: set[str], copy: Entry,
                    copy_topics: set[str]) -> bool:
    """Whether a later copy of an alerted story says something new: it matches a topic the
    alert did not name, or its headline moved on ("talks resume" -> "deal agreed")."""
    if copy_topics - alerted_topics:
        return True
    a, b = fingerprint(alerted).title, fingerprint(copy).title
    shortest = min(len(a), len(b))
    return bool(shortest) and len(a & b) / shortest < UPDATE_TITLE_OVERLAP


def index_words(fp: Fingerprint) -> list[str]:
    """The headline words a story is found by."""
    return sorted(fp.title)


def fingerprint(entry: Entry) -> Fingerprint:
    title = _words(entry.title)
    return Fingerprint(title, title | _words(entry.summary))


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """1.0 or more for the same story told twice, near 0 for unrelated ones."""
    shared = len(a.title & b.title)
    shortest = min(len(a.title), len(b.title))
    title = shared / shortest if shortest and shared >= TITLE_MIN_SHARED else 0.0
    union = len(a.text | b.text)
    text = len(a.text & b.text) / union if union else 0.0
    # Summaries alone share generic words ("abducted", "released") across different events:
    # the text rule also needs the headlines to share words.
    if shared < TEXT_MIN_TITLE_SHARED:
        text = 0.0
    return max(title / TITLE_OVERLAP, text / TEXT_JACCARD)


def best_story(fp: Fingerprint, candidates: Iterable[tuple[str, Fingerprint]]) -> str | None:
    """The most similar candidate story at or over the threshold, if any."""
    best, best_score = None, 1.0
    for story_id, other in candidates:
        score = similarity(fp, other)
        if score >= best_score:
            best, best_score = story_id, score
    return best


def cluster(items: Iterable[tuple[str, Entry]], *, window_hours: float = 72) -> list[str]:
    """Offline clustering in input order: the story id (its first item's id) of each item."""
    window = window_hours * 3600
    by_url: dict[str, str] = {}
    known: list[tuple[str, Fingerprint, datetime | None]] = []
    out = []
    for item_id, entry in items:
        story = by_url.get(entry.link) if entry.link else None
        if story is None:
            fp = fingerprint(entry)
            near = ((sid, other) for sid, other, when in known
                    if when is None or entry.published is None
                    or abs((when - entry.published).total_seconds()) <= window)
            story = best_story(fp, near)
            if story is None:
                story = item_id
                known.append((story, fp, entry.published))
        if entry.link:
            by_url.setdefault(entry.link, story)
        out.append(story)
    return out
