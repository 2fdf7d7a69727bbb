"""Presearch: index topics by the terms that must occur for them to match (Lucene Monitor's
idea), so that an item is only checked against topics that could match it."""

from __future__ import annotations

from collections.abc import Iterable

from .query import And, Field, Near, Node, Not, Or, Phrase, Prefix, Term
from .text import Doc

Keys = tuple[frozenset[str], frozenset[str], frozenset[str]]   # words, stems, prefixes


def required(node: Node) -> Keys | None:
    """Terms of which at least one occurs in every text the node matches; None: any text."""
    if isinstance(node, Term):
        words = frozenset(node.heads) | ({node.key} if node.exact else set())
        return words, frozenset() if node.exact else frozenset({node.key}), frozenset()
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
        self.words: dict[str, list[int]] = {}
        self.stems: dict[str, list[int]] = {}
        self.prefixes: dict[str, list[int]] = {}

    def add(self, number: int, keys: Keys) -> None:
        for table, values in zip((self.words, self.stems, self.prefixes), keys, strict=True):
            for value in values:
                table.setdefault(value, []).append(number)

    def freeze(self) -> None:
        self.frozen = tuple({key: frozenset(numbers) for key, numbers in table.items()}
                            for table in (self.words, self.stems, self.prefixes))

    def lookup(self, doc: Doc) -> set[int]:
        words, stems, prefixes = self.frozen
        return set().union(*[words[k] for k in words.keys() & doc.wordset],
                           *[stems[k] for k in stems.keys() & doc.stemset],
                           *[prefixes[k] for k in prefixes.keys() & doc.prefixes])


class TopicIndex:
    """Each topic is indexed under the two most selective conjuncts of its query: it is a
    candidate for a doc only when the doc has a term of each (Lucene Monitor's "multipass
    presearcher"). Topics with a single conjunct need only that one; pure NOT queries are
    always candidates."""

    def __init__(self, queries: Iterable[Node]) -> None:
        self.first = _Table()
        self.always: set[int] = set()
        self.second: dict[int, Keys] = {}    # topics that also need a second conjunct
        for number, query in enumerate(queries):
            options = sorted(conjuncts(query), key=_size)
            if not options:
                self.always.add(number)
                continue
            self.first.add(number, options[0])
            if len(options) > 1:
                self.second[number] = options[1]
        self.first.freeze()

    def candidates(self, doc: Doc) -> set[int]:
        """Topic numbers that could match `doc`. The second conjunct is checked only for the
        few topics the first lets through (cheaper than a second table lookup per doc)."""
        found = self.first.lookup(doc)
        second = self.second
        if second:
            found = {n for n in found if (keys := second.get(n)) is None or _meets(keys, doc)}
        return found | self.always if self.always else found


def _meets(keys: Keys, doc: Doc) -> bool:
    words, stems, prefixes = keys
    return not (words.isdisjoint(doc.wordset) and stems.isdisjoint(doc.stemset)
                and prefixes.isdisjoint(doc.prefixes))
