"""Presearch: index topics by the terms that must occur for them to match (Lucene Monitor's
idea), so that an item is only checked against topics that could match it."""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter

from .query import And, Field, Near, Node, Not, Or, Phrase, Prefix, Term
from .text import Doc, Lexicon

Keys = tuple[frozenset[str], frozenset[str], frozenset[str]]   # words, stems, prefixes


def required(node: Node) -> Keys | None:
    """Terms of which at least one occurs in every text the node matches; None: any text."""
    if isinstance(node, Term):
        words = frozenset(node.heads) | ({node.key} if node.exact else set())
        return words, frozenset() if node.exact else node.stems, frozenset()
    if isinstance(node, Prefix):
        return frozenset(), frozenset(), frozenset({node.prefix})
    if isinstance(node, Phrase):
        phrase = {node.words[0]}
        if len(node.words) == 2:
            phrase.add(node.words[0] + node.words[1])
        return frozenset(phrase), frozenset(), frozenset()
    if isinstance(node, Field):
        return required(node.part)
    if isinstance(node, And | Near):
        parts = node.parts if isinstance(node, And) else (node.left, node.right)
        options = [k for k in map(required, parts) if k is not None]
        return min(options, key=lambda k: sum(map(len, k))) if options else None
    if isinstance(node, Or):
        union: list[set[str]] = [set(), set(), set()]
        for part in node.parts:
            keys = required(part)
            if keys is None:
                return None
            for mine, theirs in zip(union, keys, strict=True):
                mine |= theirs
        return frozenset(union[0]), frozenset(union[1]), frozenset(union[2])
    assert isinstance(node, Not)
    return None


def conjuncts(node: Node) -> list[Keys]:
    """Required term sets that must *each* be met (one per AND branch that has one)."""
    if isinstance(node, And):
        return [keys for part in node.parts for keys in conjuncts(part)]
    if isinstance(node, Near):
        return conjuncts(node.left) + conjuncts(node.right)
    if isinstance(node, Field):
        return conjuncts(node.part)
    keys = required(node)
    return [keys] if keys is not None else []


def _size(keys: Keys) -> int:
    return sum(map(len, keys))


class _Table:
    """Topic numbers by word, stem and prefix."""

    def __init__(self) -> None:
        self.words: dict[str, set[int]] = {}
        self.stems: dict[str, set[int]] = {}
        self.prefixes: dict[str, set[int]] = {}

    def add(self, number: int, keys: Keys) -> None:
        for table, values in zip((self.words, self.stems, self.prefixes), keys, strict=True):
            for value in values:
                table.setdefault(value, set()).add(number)

    def topics(self, word: str, roots: tuple[str, ...],
               prefixes: tuple[str, ...]) -> frozenset[int]:
        """The topics this word holds a term of (as itself, by a stem or a prefix)."""
        found = self.words.get(word, set()) | self.stems.get(roots[0], set())
        for root in roots[1:]:
            found |= self.stems.get(root, set())
        for prefix in prefixes:
            found |= self.prefixes.get(prefix, set())
        return frozenset(found) if found else _NONE


_NONE: frozenset[int] = frozenset()
_FIRST, _SECOND = itemgetter(2), itemgetter(3)       # of a word's facts (text.Lexicon)


class TopicIndex:
    """Each topic is indexed under the two most selective conjuncts of its query: it is a
    candidate for a doc only when the doc has a term of each (Lucene Monitor's "multipass
    presearcher"). Topics with a single conjunct need only that one; pure NOT queries are
    always candidates.

    Which topics a word admits is worked out once per word and remembered with its other facts
    (`text.Lexicon`), so an item's presearch is two unions of its words' topic sets and one
    intersection, all in C."""

    def __init__(self, queries: Iterable[Node]) -> None:
        self.first, self.second = _Table(), _Table()
        always: set[int] = set()
        needs_second: set[int] = set()
        for number, query in enumerate(queries):
            options = sorted(conjuncts(query), key=_size)
            if not options:
                always.add(number)
                continue
            self.first.add(number, options[0])
            if len(options) > 1:
                self.second.add(number, options[1])
                needs_second.add(number)
        self.always = frozenset(always)
        self.needs_second = frozenset(needs_second)
        self._lexicon = Lexicon(self.first.prefixes.keys() | self.second.prefixes.keys(), self)

    def admits(self, word: str, roots: tuple[str, ...],
               prefixes: tuple[str, ...]) -> tuple[frozenset[int], frozenset[int]]:
        """The topics whose first required terms this word holds, and those whose second."""
        return (self.first.topics(word, roots, prefixes),
                self.second.topics(word, roots, prefixes))

    def candidates(self, doc: Doc) -> set[int]:
        """Topic numbers that could match `doc`."""
        if doc.lexicon.index is self:
            facts = doc.facts
        else:               # a Doc made without this index's lexicon: work its words out here
            facts = list(map(self._lexicon.for_lang(doc.lang).facts, doc.wordset))
        first: set[int] = set().union(*map(_FIRST, facts))
        if self.needs_second:
            second: set[int] = set().union(*map(_SECOND, facts))
            first = (first - self.needs_second) | (first & second)
        return first | self.always if self.always else first

