"""Story assignment, one algorithm behind one interface: the worker's index in Redis
(store/stories.py, shared by every worker, decided optimistically) and an in-memory one for
`newswatch stories` and the benches (`MemoryIndex`, `cluster`). Both answer the same questions:
the story a URL already has, the word counts of the window, the recent stories an entry's
heaviest words find, the thread a story is in; and both record a copy the same way."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import NewswatchError
from ..models import Entry
from .background import lifts
from .decide import (
    ACROSS_PIVOT,
    MAX_MEMBERS,
    STORIES_READ_PER_WORD,
    Decision,
    Outcome,
    Policy,
    Scorer,
    candidates,
)
from .fingerprint import DocFreq, Fingerprint, Member, embedding_text, fingerprint
from .words import Vocabulary

# (story id, its copies' fingerprints as stored, the thread it is in: its first story's id,
# None when it starts its own)
Found = list[tuple[str, list[str], str | None]]
Sketch = tuple[str, bytes]                 # a story's language and first copy's embedding

# Reports in another language share no word with a story, so no word finds it: the most
# recent stories' embeddings are compared instead (only for an entry that matched a topic).
SKETCHES = 500
ACROSS_CANDIDATES = 3


class Claim(Protocol):
    """What one decision read, held until its copy is recorded (or found stale)."""

    def read(self, choose: Callable[[dict[str, int]], list[str]], *, per_word: int = 200,
             also: Sequence[str] = ()) -> tuple[str | None, Found]: ...

    def thread_of(self, story_id: str) -> str | None: ...

    def commit(self, story_id: str, entry: Entry, *, entry_key: str, words: Sequence[str],
               signature: str | None = None, index: Sequence[str] = (),
               max_members: int = 8, thread: str | None = None,
               vector: Sketch | None = None) -> bool: ...


class Index(Protocol):
    def lookup(self, url: str | None, words: Iterable[str]
               ) -> tuple[str | None, int, dict[str, int]]: ...

    def sketches(self, limit: int) -> list[tuple[str, Sketch]]: ...

    def add_copy(self, story_id: str, entry: Entry, *, entry_key: str,
                 words: Sequence[str]) -> str | None: ...     # the story's thread

    def claim(self, url: str | None, words: Sequence[str]) -> AbstractContextManager[Claim]: ...


@dataclass(frozen=True)
class Assignment:
    """Where a report went: its story (the one it joined, or its own), the thread it is in
    (the first story of the thread; its own story when it starts one), what was decided, and
    the story it resembles when it is related."""

    story: str
    thread: str
    outcome: Outcome
    related_to: str | None = None


ATTEMPTS = 50       # each failed attempt means another worker's copy was recorded meanwhile


def assign(index: Index, entry_key: str, entry: Entry, fp: Fingerprint, *,
           window_hours: float, new_id: str, policy: Policy | None = None) -> Assignment:
    """The story of this entry: the one its URL already has; else the one it surely is
    (folded), or a new one threaded under the story it resembles, or a new one (`Scorer`).
    What the decision read is held (`Index.claim`): if another worker recorded a copy under
    the same words meanwhile, it is decided again with that copy in view, so two copies
    arriving at once cannot start two stories."""
    words = sorted(fp.words)
    across = _across(index, fp) if fp.vector is not None and fp.lang else []   # read once
    for _ in range(ATTEMPTS):
        known, seen, counts = index.lookup(entry.link, fp.words)
        if known is not None:                  # a copy of a page already seen
            thread = index.add_copy(known, entry, entry_key=entry_key, words=words)
            return Assignment(known, thread or known, Outcome.SAME)
        df = DocFreq(seen, counts)
        df.add(fp.words)
        scorer = Scorer(fp, df, window_hours)
        lookup = scorer.lookup_words()
        with index.claim(entry.link, lookup) as claim:
            known, found = claim.read(candidates, per_word=STORIES_READ_PER_WORD, also=across)
            decision = Decision(Outcome.SAME, known) if known else scorer.decide(
                ((sid, [Member.loads(raw) for raw in sigs]) for sid, sigs, _ in found), policy)
            threads = {sid: thread for sid, _, thread in found}
            related = decision.story if decision.outcome is Outcome.RELATED else None
            if known:                            # its page was placed meanwhile
                story, thread = known, claim.thread_of(known) or known
            elif decision.outcome is Outcome.SAME and decision.story:
                story = decision.story
                thread = threads.get(story) or story
            else:
                story = new_id
                thread = (threads.get(related) or related) if related else story
            if claim.commit(story, entry, entry_key=entry_key, words=words,
                            signature=None if known else scorer.member.dumps(),
                            index=() if known else lookup, max_members=MAX_MEMBERS,
                            thread=thread if thread != story else None,
                            vector=(fp.lang or "", fp.vector) if story == new_id
                            and fp.vector is not None else None):
                return Assignment(story, thread, decision.outcome, related)
    raise NewswatchError(f"entry {entry_key}: no story decided in {ATTEMPTS} attempts "
                         "(other workers kept changing its words' stories)")


def _across(index: Index, fp: Fingerprint) -> list[str]:
    """The recent stories in another language the entry's embedding is nearest to, more alike
    than either usually is (`background.lifts`)."""
    assert fp.vector is not None
    others = [(story_id, vector) for story_id, (lang, vector) in index.sketches(SKETCHES)
              if lang and lang != fp.lang]
    scored = list(zip(lifts(fp.vector, [vector for _, vector in others]),
                      [story_id for story_id, _ in others], strict=True))
    return [story_id for cosine, story_id in sorted(scored, reverse=True)[:ACROSS_CANDIDATES]
            if cosine >= ACROSS_PIVOT]


def new_story_id(entry_key: str) -> str:
    return "s" + hashlib.sha1(entry_key.encode()).hexdigest()[:16]


@dataclass
class MemoryIndex:
    """The index in memory, for replaying items offline in order. Its clock is the replayed
    item's date (`now`), as the worker's is the wall clock: a word finds the stories indexed
    under it within the window of that moment (undated ones always). Words are counted over
    everything replayed so far, where the worker counts the window's days: a labelled set
    holds a few items a window, too few to weigh words by (counted by day as the worker does,
    bench/threads.py thread recall fell on dev .828 -> .793 and dev2 .929 -> .835)."""

    window_hours: float = 72
    now: float | None = None
    seen: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    by_url: dict[str, str] = field(default_factory=dict)
    copies: dict[str, list[str]] = field(default_factory=dict)
    by_word: dict[str, list[tuple[float | None, str]]] = field(default_factory=dict)
    threads: dict[str, str] = field(default_factory=dict)
    recent: list[tuple[float | None, str, Sketch]] = field(default_factory=list)

    def lookup(self, url: str | None, words: Iterable[str]
               ) -> tuple[str | None, int, dict[str, int]]:
        return (self.by_url.get(url) if url else None), self.seen, \
            {w: self.counts[w] for w in words}

    def thread_of(self, story_id: str) -> str | None:
        return self.threads.get(story_id)

    def sketches(self, limit: int) -> list[tuple[str, Sketch]]:
        window = self.window_hours * 3600
        return [(sid, sketch) for at, sid, sketch in self.recent
                if at is None or self.now is None or abs(self.now - at) <= window][-limit:]

    def add_copy(self, story_id: str, entry: Entry, *, entry_key: str,
                 words: Sequence[str]) -> str | None:
        self._record(story_id, entry, words, None, (), MAX_MEMBERS, None)
        return self.thread_of(story_id)

    @contextmanager
    def claim(self, url: str | None, words: Sequence[str]) -> Iterator[Claim]:
        yield _MemoryClaim(self, url, words)

    def _recent(self, word: str, per_word: int) -> list[str]:
        window = self.window_hours * 3600
        hits = [sid for at, sid in self.by_word.get(word, ())
                if at is None or self.now is None or abs(self.now - at) <= window]
        return hits[-per_word:]

    def _record(self, story_id: str, entry: Entry, words: Sequence[str], signature: str | None,
                index: Sequence[str], max_members: int, thread: str | None,
                vector: Sketch | None = None) -> None:
        self.seen += 1
        if vector is not None:
            self.recent.append((self.now, story_id, vector))
        self.counts.update(words)
        if entry.link:
            self.by_url.setdefault(entry.link, story_id)
        if thread:
            self.threads.setdefault(story_id, thread)
        copies = self.copies.setdefault(story_id, [])
        if signature and len(copies) < max_members:
            copies.append(signature)
            for word in index:
                self.by_word.setdefault(word, []).append((self.now, story_id))


class _MemoryClaim:
    def __init__(self, index: MemoryIndex, url: str | None, words: Sequence[str]) -> None:
        self.index, self.url, self.words = index, url, words

    def read(self, choose: Callable[[dict[str, int]], list[str]], *, per_word: int = 200,
             also: Sequence[str] = ()) -> tuple[str | None, Found]:
        if self.url and self.url in self.index.by_url:
            return self.index.by_url[self.url], []
        hits: Counter[str] = Counter()
        for word in self.words:
            hits.update(set(self.index._recent(word, per_word)))
        chosen = list(dict.fromkeys([*choose(dict(hits)), *also]))
        return None, [(sid, self.index.copies[sid], self.index.thread_of(sid))
                      for sid in chosen if self.index.copies[sid]]

    def thread_of(self, story_id: str) -> str | None:
        return self.index.thread_of(story_id)

    def commit(self, story_id: str, entry: Entry, *, entry_key: str, words: Sequence[str],
               signature: str | None = None, index: Sequence[str] = (),
               max_members: int = 8, thread: str | None = None,
               vector: Sketch | None = None) -> bool:
        self.index._record(story_id, entry, words, signature, index, max_members, thread,
                           vector)
        return True


def cluster(items: Iterable[tuple[str, Entry]], *, window_hours: float = 72,
            embed: Callable[[list[str]], Sequence[bytes]] | None = None,
            vocabulary: Vocabulary | None = None,
            policy: Policy | None = None) -> list[Assignment]:
    """`newswatch stories`: the items assigned in input order, by the worker's algorithm on an
    in-memory index; a story's id is its first item's id."""
    items = list(items)
    vectors: Sequence[bytes | None] = [None] * len(items)
    if embed is not None:
        vectors = embed([embedding_text(e) for _, e in items])
    index = MemoryIndex(window_hours)
    out = []
    for (item_id, entry), vector in zip(items, vectors, strict=True):
        fp = fingerprint(entry, vector, vocabulary)
        index.now = fp.published          # undated: finds and is found by every story
        out.append(assign(index, item_id, entry, fp, window_hours=window_hours,
                          new_id=item_id, policy=policy))
    return out
