"""The topic query language's AST, each node a matcher over a `Doc` (query.py parses text
into it). See docs/queries.md.

Bare terms match by English stem (`negotiations` finds "negotiate"); a "quoted phrase" matches
its exact words in order; `negotiat*` is a prefix; `cease-fire` (or `ceasefire`) also matches
"cease fire", "cease-fire" and "ceasefires". Operators are case-insensitive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import languages
from .text import FIELDS, Doc, stem

Hits = frozenset[int]     # indexes of the doc's words that made a clause hold
DEFAULT_NEAR = 10
MAX_NEAR = 500            # words; fields are FIELD_GAP apart, so NEAR never spans them
MAX_DEPTH = 50            # nested parentheses, NOTs and fields: deeper is an error, not a crash


class Node:
    def holds(self, doc: Doc, scope: int | None = None) -> bool:
        """Whether the clause holds (within field `scope`): the fast path, no hit sets."""
        return self.match(doc, scope) is not None

    def match(self, doc: Doc, scope: int | None = None) -> Hits | None:
        """The words that satisfy this clause (within field `scope`), or None if it fails."""
        raise NotImplementedError

    def leaves(self) -> list[Node]:
        return [self]


def _scoped(doc: Doc, hits: set[int] | list[int], scope: int | None) -> Hits | None:
    if scope is not None:
        hits = [i for i in hits if doc.field(i) == scope]
    return frozenset(hits) or None


@dataclass(frozen=True)
class Term(Node):
    """A word: by stem when bare (its English stem, and its stem in every other language of its
    script: languages.py), exactly when quoted; compounds written apart match too."""

    word: str
    exact: bool = False
    key: str = field(init=False)
    # stemmer tag -> this term's stem by it: a text in that language is looked up by one key
    foreign: dict[str, str] = field(init=False, repr=False, compare=False)
    heads: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.word if self.exact else stem(self.word))
        object.__setattr__(self, "foreign", {} if self.exact else
                           languages.term_keys(self.word))
        # "ceasefire" is also written "cease fire" / "cease-fire": try each split whose head
        # the doc contains (checked lazily, so plain items pay nothing for it).
        heads = frozenset(self.word[:k] for k in range(3, len(self.word) - 2)) \
            if len(self.word) >= 6 else frozenset()
        object.__setattr__(self, "heads", heads)

    @property
    def stems(self) -> frozenset[str]:
        """Every key this term matches by: its English stem and its stems elsewhere."""
        return frozenset({self.key, *self.foreign.values()})

    def keys_in(self, doc: Doc) -> tuple[str, ...]:
        """The keys this term is looked up by in `doc` (its language's stem too)."""
        other = self.foreign.get(doc.lexicon.tag) if doc.lexicon.tag else None
        return (self.key, other) if other else (self.key,)

    def holds(self, doc: Doc, scope: int | None = None) -> bool:
        present = self.key in doc.wordset if self.exact else \
            any(key in doc.keys for key in self.keys_in(doc))
        if not present and (not self.heads or self.heads.isdisjoint(doc.wordset)):
            return False
        if scope is None:
            return present or self._joined(doc)
        return self.match(doc, scope) is not None

    def _joined(self, doc: Doc) -> bool:
        """Whether the word is written in two ("cease fire"): one pass over the words, no
        positions built ("agree" is a head of "agreement", and common)."""
        words = doc.words
        for head in self.heads.intersection(doc.wordset):
            i = -1
            for _ in range(words.count(head)):      # scans in C, no exception at the end
                i = words.index(head, i + 1)
                if doc.adjacent(i):
                    joined = head + words[i + 1]
                    if (joined if self.exact else stem(joined)) == self.key:
                        return True
        return False

    def match(self, doc: Doc, scope: int | None = None) -> Hits | None:
        if self.exact:
            hits = set(doc.by_word.get(self.key, ()))
        else:
            by_key = doc.by_key
            hits = {i for key in self.keys_in(doc) for i in by_key.get(key, ())}
        for head in self.heads & doc.wordset:
            for i in doc.by_word[head]:
                if doc.adjacent(i):
                    joined = head + doc.words[i + 1]
                    if (joined if self.exact else stem(joined)) == self.key:
                        hits.update((i, i + 1))
        return _scoped(doc, hits, scope)

    def __str__(self) -> str:
        return f'"{self.word}"' if self.exact else self.word


@dataclass(frozen=True)
class Prefix(Node):
    prefix: str

    @property
    def key(self) -> str:
        """As a Doc's keys hold it."""
        return self.prefix + "*"

    def holds(self, doc: Doc, scope: int | None = None) -> bool:
        if self.key not in doc.keys:
            return False
        return scope is None or self.match(doc, scope) is not None

    def match(self, doc: Doc, scope: int | None = None) -> Hits | None:
        return _scoped(doc, doc.by_key.get(self.key, []), scope)

    def __str__(self) -> str:
        return self.prefix + "*"


@dataclass(frozen=True)
class Phrase(Node):
    """Exact words in order; a two-word phrase also matches the words written as one."""

    words: tuple[str, ...]

    def match(self, doc: Doc, scope: int | None = None) -> Hits | None:
        n = len(self.words)
        if not doc.wordset.issuperset(self.words) and (
                n != 2 or self.words[0] + self.words[1] not in doc.wordset):
            return None           # no positions built for a phrase whose words are absent
        hits: set[int] = set()
        for start in doc.by_word.get(self.words[0], ()):
            i = start
            for w in self.words[1:]:
                if not doc.adjacent(i) or doc.words[i + 1] != w:
                    break
                i += 1
            else:
                hits.update(range(start, start + n))
        if n == 2:
            hits.update(doc.by_word.get(self.words[0] + self.words[1], ()))
        return _scoped(doc, hits, scope)

    def __str__(self) -> str:
        return '"' + " ".join(self.words) + '"'


@dataclass(frozen=True)
class And(Node):
    parts: tuple[Node, ...]

    def holds(self, doc: Doc, scope: int | None = None) -> bool:
        return all(part.holds(doc, scope) for part in self.parts)

    def match(self, doc: Doc, scope: int | None = None) -> Hits | None:
        hits: set[int] = set()
        for part in self.parts:
            got = part.match(doc, scope)
            if got is None:
                return None
            hits |= got
        return frozenset(hits)

    def leaves(self) -> list[Node]:
        return [leaf for p in self.parts for leaf in p.leaves()]

    def __str__(self) -> str:
        return "(" + " AND ".join(map(str, self.parts)) + ")"


@dataclass(frozen=True)
class Or(Node):
    parts: tuple[Node, ...]
    # Fast path: the plain alternatives as sets, tested against the doc's sets in C.
    keys: frozenset[str] = field(init=False, repr=False, compare=False)   # stems, prefix*
    # stemmer tag -> the alternatives' stems by it, for texts in that language
    foreign: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    words: frozenset[str] = field(init=False, repr=False, compare=False)  # exact words
    rest: tuple[Node, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys: set[str] = set()
        words: set[str] = set()
        foreign: dict[str, set[str]] = {}
        rest: list[Node] = []
        for part in self.parts:
            if isinstance(part, Term):
                if part.exact:
                    words.add(part.key)
                else:
                    keys.add(part.key)
                    for tag, key in part.foreign.items():
                        foreign.setdefault(tag, set()).add(key)
                if part.heads:
                    rest.append(part)          # its compound spellings need the slow check
            elif isinstance(part, Prefix):
                keys.add(part.key)
            else:
                rest.append(part)
        object.__setattr__(self, "keys", frozenset(keys))
        object.__setattr__(self, "foreign", {t: frozenset(k) for t, k in foreign.items()})
        object.__setattr__(self, "words", frozenset(words))
        object.__setattr__(self, "rest", tuple(rest))

    def _keys_in(self, doc: Doc) -> frozenset[str]:
        tag = doc.lexicon.tag
        return self.keys | self.foreign[tag] if tag and tag in self.foreign else self.keys

    def holds(self, doc: Doc, scope: int | None = None) -> bool:
        plain = not self._keys_in(doc).isdisjoint(doc.keys) or \
            not self.words.isdisjoint(doc.wordset)
        if scope is None:
            return plain or any(part.holds(doc) for part in self.rest)
        if not plain and not self.rest:
            return False
        return any(part.holds(doc, scope) for part in self.parts)

    def match(self, doc: Doc, scope: int | None = None) -> Hits | None:
        hits: set[int] = set()
        if scope is None:             # plain alternatives straight from the doc's tables
            for key in self._keys_in(doc) & doc.keys:         # stems and prefixes
                hits.update(doc.by_key[key])
            for key in self.words & doc.wordset:
                hits.update(doc.by_word[key])
            held = bool(hits)
            for part in self.rest:
                got = part.match(doc)
                if got is not None:
                    held = True
                    hits |= got
            return frozenset(hits) if held else None
        held = False
        for part in self.parts:
            got = part.match(doc, scope)
            if got is not None:
                held = True
                hits |= got
        return frozenset(hits) if held else None

    def leaves(self) -> list[Node]:
        return [leaf for p in self.parts for leaf in p.leaves()]

    def __str__(self) -> str:
        return "(" + " OR ".join(map(str, self.parts)) + ")"


@dataclass(frozen=True)
class Not(Node):
    part: Node

    def holds(self, doc: Doc, scope: int | None = None) -> bool:
        return not self.part.holds(doc, scope)

    def match(self, doc: Doc, scope: int | None = None) -> Hits | None:
        return None if self.part.holds(doc, scope) else frozenset()

    def leaves(self) -> list[Node]:
        return []

    def __str__(self) -> str:
        return f"NOT {self.part}"


@dataclass(frozen=True)
class Near(Node):
    """Both sides hold with some word of each at most `distance` words apart, in one field."""

    left: Node
    right: Node
    distance: int

    def holds(self, doc: Doc, scope: int | None = None) -> bool:
        return self.left.holds(doc, scope) and self.right.holds(doc, scope) \
            and self.match(doc, scope) is not None

    def match(self, doc: Doc, scope: int | None = None) -> Hits | None:
        left = self.left.match(doc, scope)
        right = self.right.match(doc, scope) if left else None
        if not left or not right:
            return None
        lefts, rights = sorted(left), sorted(right)
        near_left = _within(lefts, rights, self.distance, doc)
        if not near_left:
            return None
        return frozenset(near_left + _within(rights, lefts, self.distance, doc))

    def leaves(self) -> list[Node]:
        return self.left.leaves() + self.right.leaves()

    def __str__(self) -> str:
        return f"({self.left} NEAR/{self.distance} {self.right})"


def _within(these: list[int], those: list[int], far: int, doc: Doc) -> list[int]:
    """The words of `these` with some word of `those` at most `far` positions away: one
    merge of the two sorted lists (a doc's positions grow with its word indexes), so that
    `aaa* NEAR/50 bbb*` costs the text's length, not its square."""
    pos = doc.position
    out, j, n = [], 0, len(those)
    for a in these:
        p = pos(a)
        while j < n and pos(those[j]) < p - far:
            j += 1
        if j < n and pos(those[j]) <= p + far:
            out.append(a)
    return out


@dataclass(frozen=True)
class Field(Node):
    name: str
    part: Node

    def holds(self, doc: Doc, scope: int | None = None) -> bool:
        return self.part.holds(doc, FIELDS.index(self.name))

    def match(self, doc: Doc, scope: int | None = None) -> Hits | None:
        return self.part.match(doc, FIELDS.index(self.name))

    def leaves(self) -> list[Node]:
        return self.part.leaves()

    def __str__(self) -> str:
        return f"{self.name}:{self.part}"
