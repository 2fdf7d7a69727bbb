"""The decision: is this report the same story as one we have, related to one (alerted, and
threaded under it), or a new story?

Resemblance of headline and summary, lexical or embedded, cannot reliably tell one war's
different events apart (the same day's strikes and talks, two truces "extended by two
months"). So a report is folded into a story only when newswatch is sure; when it only
resembles one, it is alerted and threaded under it. A crisis desk forgives a second alert in a
thread; it does not forgive a hidden one.

The resemblance: TF-IDF cosine of the two reports' words (headline words weigh `TITLE_WEIGHT`
times, the topics' own words `TOPIC_WEIGHT`), plus `SEMANTIC_WEIGHT * (cosine - SEMANTIC_PIVOT)`
of their sentence embeddings when both carry one (its evidence for fading over `SEMANTIC_DAYS`
between them), against a threshold that rises with the time between them (`Rule`). A story is
compared through its first `MAX_MEMBERS` copies, so it cannot drift from one event to the next.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from ..models import Entry
from .background import lift
from .counted import numbered_apart
from .fingerprint import DocFreq, Fingerprint, Member, _cosine, semantic_cosine, weights
from .words import terms


@dataclass(frozen=True)
class Rule:
    """How much resemblance makes the same story."""
    threshold: float      # mean similarity to a story's copies, published at the same moment
    per_day: float        # added per day between the two entries
    undated: float        # when either entry has no date


# Tuned on ../shared/eval/dev.jsonl (bench/stories.py): a narrow optimum for words alone
# (0.10 merges 5 more wrong pairs, 0.15 finds 9 fewer); with the model, flat from 0.06 to 0.12.
# `undated` chosen by folds grouped by event over dev, dev2 and dev_ml (best thread F1 on the
# other folds, of 0.4-0.7: 0.6 in all five): held out, dev2 thread P / R 0.908 / 0.929 at
# 0.4, 0.987 / 0.918 at 0.6; dev 0.961 / 0.845 and 0.960 / 0.828 (one more unthreaded alert
# of 84 events). An undated report could be of any year: the words of one war's events
# (names, places) recur in all of them.
RULE = Rule(threshold=0.12, per_day=0.2, undated=0.6)
SEMANTIC_WEIGHT = 2.0
SEMANTIC_PIVOT = 0.88     # embedding cosine that neither helps nor hurts (multilingual-e5)
# The model's evidence for the same story fades to nothing over this many days between two
# reports (its evidence against stays). It reads the next day's news of the same process as the
# same ("talks resume" / "talks stall", cosine 0.75-0.8, the day's rewrites 0.55-0.8); what
# follows a story days later shares its names and facts, which the words weigh.
SEMANTIC_DAYS = 1.5
# Two reports in different languages share no words: the model alone says whether one is
# threaded under the other, never that they are the same story. Its raw cosine cannot say it
# (on dev_ml's cross-language pairs within 3 days, same-event cosines run 0.82-0.91, other
# events' up to 0.86, and each language has its own level), so the evidence is the pair's
# `background.lift`: its cosine over how alike each report usually is to news. Threaded at
# lift 0 and above (more alike than usual; -0.005 and 0 thread the same on dev_ml, +0.005 loses
# a cross-language event in seven); an undated pair needs what undated reports need in one
# language (`RULE.undated`): the model cannot tell this week's talks from last year's.
ACROSS_PIVOT = 0.0
MAX_MEMBERS = 8           # copies a story is compared through (and indexed by)
LOOKUP_TERMS = 12         # an entry's heaviest words: it finds stories by them, they find it
MAX_CANDIDATES = 20       # stories scored in full per entry: those sharing most words
STORIES_READ_PER_WORD = 200   # the most recent stories a word finds (the worker's index too)


class Outcome(StrEnum):
    SAME = "same"           # folded into the story ("also reported by"), no alert
    RELATED = "related"     # alerted, threaded under the story it resembles
    NEW = "new"             # a story of its own


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    story: str | None       # same: the story joined; related: the story resembled; new: None
    margin: float | None = None     # the best margin found (None: no candidate in the window)


@dataclass(frozen=True)
class Policy:
    """The margins (mean similarity over threshold, `Scorer.margin`) the outcomes need."""
    same: float             # at or over: the same story (merge precision >= 0.98 measured)
    related: float          # at or over (and under `same`): related, threaded


# Measured with bench/threads.py on dev, dev2, dev_ml and the real feeds (lexical and with the
# model, in publication order and shuffled): at `same` 0.5 no pair was merged wrongly on any
# set (0.2: 0.69-0.96; 0.35: 0.90 on the real feeds) and 1 event of 977 in the real feeds was
# hidden (0.2: 9-14); `related` above 0 loses thread recall (0.1: dev 0.48-0.57), below it
# threads more wrongly (-0.05: real feeds thread precision 0.09-0.24 from 0.22-0.28).
POLICY = Policy(same=0.5, related=0.0)


def days_apart(a: Fingerprint, b: Member) -> float | None:
    """Days between the two reports; None when either is undated."""
    if a.published is None or b.published is None:
        return None
    return abs(a.published - b.published) / 86400


def threshold(a: Fingerprint, b: Member, rule: Rule) -> float:
    days = days_apart(a, b)
    return rule.undated if days is None else rule.threshold + rule.per_day * days


def in_window(a: Fingerprint, b: Member, window_hours: float) -> bool:
    return (a.published is None or b.published is None
            or abs(a.published - b.published) <= window_hours * 3600)


class Scorer:
    """Resemblance of one new entry to stories, under the word counts of the moment."""

    def __init__(self, fp: Fingerprint, df: DocFreq, window_hours: float = 72) -> None:
        self.fp, self.window_hours = fp, window_hours
        self.member = Member(weights(fp, df), fp.published, fp.vector, fp.counted, fp.lang)
        self.specific = fp.words - fp.topical

    def similarity(self, other: Member) -> float:
        """TF-IDF cosine, plus the semantic evidence when both carry an embedding (for the same
        story: fading over `SEMANTIC_DAYS`, none when either is undated: it could be of any
        year, and the model cannot tell this year's talks from another's); 0 when the two
        share no word but the topics' (two releases of hostages in two countries share
        "kidnapped", "freed", "released": nothing that makes them one event)."""
        if self.specific.isdisjoint(other.weights):
            return 0.0
        score = _cosine(self.member.weights, other.weights)
        if self.fp.vector is not None and other.vector is not None:
            cosine = semantic_cosine(self.fp.vector, other.vector)
            evidence = SEMANTIC_WEIGHT * (cosine - SEMANTIC_PIVOT)
            if evidence > 0:
                days = days_apart(self.fp, other)
                evidence *= 0.0 if days is None else max(0.0, 1 - days / SEMANTIC_DAYS)
            score += evidence
        return score

    def margin(self, members: Sequence[Member]) -> tuple[float, bool, bool] | None:
        """Mean of (similarity - threshold) over the story's copies inside the window (at or
        above 0: alike enough to be one story), and whether a copy numbers or dates something
        otherwise (`numbered_apart`: the second group of hostages freed is not the first,
        however alike the reports: never the same story, at most a related one) or is in
        another language (`across`: the same); None when no copy is inside the window."""
        near = [m for m in members[:MAX_MEMBERS] if in_window(self.fp, m, self.window_hours)]
        if not near:
            return None
        apart = any(numbered_apart(self.fp.counted, m.counted) for m in near)
        across = False
        total = 0.0
        for m in near:
            if self.across(m):          # no shared words to weigh: the model alone, and only
                assert self.fp.vector is not None and m.vector is not None     # for a thread
                total += SEMANTIC_WEIGHT * (lift(self.fp.vector, m.vector) - ACROSS_PIVOT)
                if self.fp.published is None or m.published is None:
                    total -= RULE.undated - RULE.threshold
                across = True
            else:
                total += self.similarity(m) - threshold(self.fp, m, RULE)
        return total / len(near), apart, across

    def across(self, other: Member) -> bool:
        """Whether the two are in different languages and both carry an embedding: compared by
        the multilingual model alone."""
        return (self.fp.lang is not None and other.lang is not None
                and self.fp.lang != other.lang
                and self.fp.vector is not None and other.vector is not None)

    def decide(self, candidates: Iterable[tuple[str, Sequence[Member]]],
               policy: Policy | None = None) -> Decision:
        """Same story when sure (the best margin at or over `policy.same`, nothing numbered
        apart); related to the story it resembles most when that margin clears
        `policy.related`; else a new story. Doubt costs a threaded alert, never a hidden one."""
        policy = policy or POLICY
        same: tuple[float, str] | None = None
        near: tuple[float, str] | None = None
        for story_id, members in candidates:
            found = self.margin(members)
            if found is None:
                continue
            margin, apart, across = found
            if not apart and not across and (same is None or margin >= same[0]):
                same = (margin, story_id)
            if near is None or margin >= near[0]:      # numbered apart: threaded, not folded
                near = (margin, story_id)
        if same is not None and same[0] >= policy.same:
            return Decision(Outcome.SAME, same[1], same[0])
        if near is not None and near[0] >= policy.related:
            return Decision(Outcome.RELATED, near[1], near[0])
        return Decision(Outcome.NEW, None, near[0] if near else None)

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

