"""Story clustering: is this entry another outlet's report of a story we already have?

Outlets rewrite: "Israel and Hamas reach a Gaza ceasefire agreement" and "Hamas accepts draft
ceasefire agreement and release of some hostages" share few words, and those they share are the
words every story of that week uses. So an entry is a bag of content words (folded, stemmed,
stop words dropped, "four" = "4") from its headline and summary, weighted by how rare each word is
among the entries clustered lately (TF-IDF: in a week of Gaza news "gaza" weighs little and
"Gershkovich" a lot); headline words count `TITLE_WEIGHT` times.

An entry joins the story whose copies it resembles most, on average, if that resemblance clears a
threshold which rises with the time between them (`Rule`; an undated pair needs more). A story is
compared through its first `MAX_MEMBERS` copies, so a long story cannot drift from one event to
the next. With the semantic extra, each entry also carries a sentence embedding, and
`SEMANTIC_WEIGHT * (cosine - SEMANTIC_PIVOT)` is added to the resemblance: paraphrases with few
shared words come together, same-topic stories with different facts stay apart. The model reads
a process's next day ("talks stall" after "talks resume") as the same story, so its evidence for
fades over `SEMANTIC_DAYS` between two reports.

Words and embeddings cannot tell a truce's daily handovers apart ("Hamas frees second group of
hostages" reads like the first: cosine 0.9), nor a hostage's release from his return home the
next day, but the reports do: news numbers its rounds and dates its events. A story with a copy
that numbers or dates something otherwise ("group#1" against "group#2", "weekday#mon" against
"weekday#tue", `counted`) is not joined, however alike.

Pure: fingerprints, weights, the decision. The store keeps fingerprints and word counts in Redis
(pipeline.assign_story); `cluster` runs the same rule offline for `newswatch stories`.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .classify.text import stem, words_of
from .models import Entry

if TYPE_CHECKING:
    import numpy as np



@dataclass(frozen=True)
class Rule:
    """How much resemblance makes the same story."""
    threshold: float      # mean similarity to a story's copies, published at the same moment
    per_day: float        # added per day between the two entries
    undated: float        # when either entry has no date


# Tuned on ../shared/eval/dev.jsonl (bench/stories.py): a narrow optimum for words alone
# (0.10 merges 5 more wrong pairs, 0.15 finds 9 fewer); with the model, flat from 0.06 to 0.12.
RULE = Rule(threshold=0.12, per_day=0.2, undated=0.4)
TITLE_WEIGHT = 1.5
TOPIC_WEIGHT = 0.5
SEMANTIC_WEIGHT = 2.0
SEMANTIC_PIVOT = 0.88     # embedding cosine that neither helps nor hurts (multilingual-e5)
# The model's evidence for the same story fades to nothing over this many days between two
# reports (its evidence against stays). It reads the next day's news of the same process as the
# same ("talks resume" / "talks stall", cosine 0.75-0.8, the day's rewrites 0.55-0.8); what
# follows a story days later shares its names and facts, which the words weigh.
SEMANTIC_DAYS = 1.5
MAX_MEMBERS = 8           # copies a story is compared through (and indexed by)
LOOKUP_TERMS = 12         # an entry's heaviest words: it finds stories by them, they find it
MAX_CANDIDATES = 20       # stories scored in full per entry: those sharing most words
STORIES_READ_PER_WORD = 200   # the most recent stories a word finds (the worker's index too)

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


@dataclass(frozen=True)
class Fingerprint:
    title: frozenset[str]
    summary: frozenset[str]          # summary words not in the title
    published: float | None          # epoch seconds
    vector: bytes | None = None      # int8 sentence embedding (semantic extra)
    topical: frozenset[str] = frozenset()   # words the topics look for
    counted: frozenset[str] = frozenset()   # what it numbers ("group#2"): `counted`

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

    def dumps(self) -> str:
        vector = base64.b64encode(self.vector).decode() if self.vector is not None else None
        fields: list[Any] = [{w: round(x, 4) for w, x in self.weights.items()}, self.published,
                             vector]
        if self.counted:         # most copies number nothing: their signature stays as it was
            fields.append(sorted(self.counted))
        return json.dumps(fields, sort_keys=True)

    @classmethod
    def loads(cls, raw: str) -> Member:
        """Parsed once per process: a story's copies are read again for every entry that might
        join it, and a stored fingerprint never changes."""
        found = _parsed.get(raw)
        if found is None:
            weights, published, vector, *counted = json.loads(raw)
            found = cls(weights, published,
                        base64.b64decode(vector) if vector is not None else None,
                        frozenset(counted[0]) if counted else frozenset())
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
                       | _counted_text(entry.summary, summary_words))


def embedding_text(entry: Entry) -> str:
    return f"{entry.title}. {entry.summary}".strip(" .")


def quantize(vector: np.ndarray[Any, Any]) -> bytes:
    """A unit vector as int8 (384 bytes for MiniLM): cosines stay within ~0.01."""
    import numpy as np

    return bytes(np.clip(np.rint(vector * 127), -127, 127).astype(np.int8).tobytes())


def _semantic(a: bytes, b: bytes) -> float:
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


def threshold(a: Fingerprint, b: Member, rule: Rule) -> float:
    if a.published is None or b.published is None:
        return rule.undated
    return rule.threshold + rule.per_day * abs(a.published - b.published) / 86400


def in_window(a: Fingerprint, b: Member, window_hours: float) -> bool:
    return (a.published is None or b.published is None
            or abs(a.published - b.published) <= window_hours * 3600)


class Scorer:
    """Resemblance of one new entry to stories, under the word counts of the moment."""

    def __init__(self, fp: Fingerprint, df: DocFreq, window_hours: float = 72) -> None:
        self.fp, self.window_hours = fp, window_hours
        self.member = Member(weights(fp, df), fp.published, fp.vector, fp.counted)
        self.specific = fp.words - fp.topical

    def similarity(self, other: Member) -> float:
        """TF-IDF cosine, plus the semantic evidence when both carry an embedding (for the same
        story: fading over `SEMANTIC_DAYS`); 0 when the two share no word but the topics' (two
        releases of hostages in two countries share "kidnapped", "freed", "released": nothing
        that makes them one event)."""
        if self.specific.isdisjoint(other.weights):
            return 0.0
        score = _cosine(self.member.weights, other.weights)
        if self.fp.vector is not None and other.vector is not None:
            evidence = SEMANTIC_WEIGHT * (_semantic(self.fp.vector, other.vector) - SEMANTIC_PIVOT)
            if evidence > 0 and self.fp.published is not None and other.published is not None:
                days = abs(self.fp.published - other.published) / 86400
                evidence *= max(0.0, 1 - days / SEMANTIC_DAYS)
            score += evidence
        return score

    def margin(self, members: Sequence[Member]) -> float | None:
        """Mean of (similarity - threshold) over the story's copies inside the window; None
        when none is, or when a copy numbers something otherwise (`numbered_apart`: the
        second group of hostages freed is not the first, however alike the reports). At or
        above 0: the same story."""
        near = [m for m in members[:MAX_MEMBERS] if in_window(self.fp, m, self.window_hours)]
        if not near or any(numbered_apart(self.fp.counted, m.counted) for m in near):
            return None
        return sum(self.similarity(m) - threshold(self.fp, m, RULE) for m in near) / len(near)

    def best(self, candidates: Iterable[tuple[str, Sequence[Member]]]) -> str | None:
        """The candidate story with the highest margin at or over 0, if any."""
        best, best_margin = None, 0.0
        for story_id, members in candidates:
            m = self.margin(members)
            if m is not None and m >= best_margin:
                best, best_margin = story_id, m
        return best

    def lookup_words(self) -> list[str]:
        """The entry's heaviest words (rare, in the headline). Candidate stories are those
        whose copies' heaviest words share one with the entry's: two reports of one event
        share their names and facts, the words that weigh most in both."""
        w = self.member.weights
        return sorted(w, key=lambda word: (-w[word], word))[:LOOKUP_TERMS]


def candidates(hits: Mapping[str, int]) -> list[str]:
    """The stories worth scoring, from how many of the entry's heaviest words find each. One
    shared word is enough to be scored: asking for two lost a fifth of the dev rewrites."""
    return sorted(hits, key=lambda s: -hits[s])[:MAX_CANDIDATES]


UPDATE_TITLE_OVERLAP = 0.6    # a copy's headline sharing less than this with the alerted one
MAX_UPDATES = 3               # update alerts per story and subscriber


def material_update(alerted: Entry, alerted_topics: set[str], copy: Entry,
                    copy_topics: set[str]) -> bool:
    """Whether a later copy of an alerted story says something new: it matches a topic the
    alert did not name, or its headline moved on ("talks resume" -> "deal agreed")."""
    if copy_topics - alerted_topics:
        return True
    a, b = terms(alerted.title), terms(copy.title)
    shortest = min(len(a), len(b))
    return bool(shortest) and len(a & b) / shortest < UPDATE_TITLE_OVERLAP


def cluster(items: Iterable[tuple[str, Entry]], *, window_hours: float = 72,
            embed: Callable[[list[str]], Sequence[bytes]] | None = None,
            vocabulary: Vocabulary | None = None) -> list[str]:
    """Offline clustering in input order, by the worker's rule: the story id (its first item's
    id) of each item. Word counts are those of the items before it and itself, as the worker's
    are those of the entries it clustered. `embed` turns texts into quantized embeddings."""
    items = list(items)
    vectors: Sequence[bytes | None] = [None] * len(items)
    if embed is not None:
        vectors = embed([embedding_text(e) for _, e in items])
    df = DocFreq()
    by_url: dict[str, str] = {}
    stories: dict[str, list[Member]] = {}
    by_word: dict[str, list[str]] = {}
    out = []
    for (item_id, entry), vector in zip(items, vectors, strict=True):
        fp = fingerprint(entry, vector, vocabulary)
        df.add(fp.words)
        story = by_url.get(entry.link) if entry.link else None
        if story is None:           # a copy of a page already seen adds nothing to compare
            scorer = Scorer(fp, df, window_hours)
            index = scorer.lookup_words()
            hits: Counter[str] = Counter()
            for word in index:      # as the worker reads them: the most recent few per word
                hits.update(set(by_word.get(word, ())[-STORIES_READ_PER_WORD:]))
            found = candidates(Counter({sid: n for sid, n in hits.items() if any(
                in_window(fp, m, window_hours) for m in stories[sid])}))
            story = scorer.best((sid, stories[sid]) for sid in found)
            if story is None:
                story = item_id
                stories[story] = []
            if len(stories[story]) < MAX_MEMBERS:
                stories[story].append(scorer.member)
                for word in index:
                    by_word.setdefault(word, []).append(story)
        if entry.link:
            by_url.setdefault(entry.link, story)
        out.append(story)
    return out


def embedder_of(embedder: Any = None) -> Callable[[list[str]], list[bytes]]:
    """Texts -> quantized embeddings, with this embedder or a new one (semantic extra)."""
    if embedder is None:
        from .classify.semantic import shared

        embedder = shared()

    def embed(texts: list[str]) -> list[bytes]:
        return [quantize(v) for v in embedder.embed(texts)] if texts else []
    return embed
