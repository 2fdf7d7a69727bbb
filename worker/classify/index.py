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


class TopicIndex:
    """Topic numbers by required word, stem and prefix."""

    def __init__(self, queries: Iterable[Node]) -> None:
        self.words: dict[str, list[int]] = {}
        self.stems: dict[str, list[int]] = {}
        self.prefixes: dict[str, list[int]] = {}
        self.always: list[int] = []
        for number, query in enumerate(queries):
            keys = required(query)
            if keys is None:
                self.always.append(number)
                continue
            for table, values in zip((self.words, self.stems, self.prefixes), keys, strict=True):
                for value in values:
                    table.setdefault(value, []).append(number)

    def candidates(self, doc: Doc) -> set[int]:
        """Topic numbers that could match `doc` (set intersections in C, then a union)."""
        found = set(self.always)
        for table, present in ((self.words, doc.wordset), (self.stems, doc.stemset),
                               (self.prefixes, doc.prefixes)):
            for key in table.keys() & present:
                found.update(table[key])
        return found
