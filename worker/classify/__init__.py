"""Match texts against watch topics, keeping the evidence of each match."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import QueryError
from ..models import Match
from .compile import Test, compile_holds
from .index import TopicIndex
from .query import And, Field, Hits, Near, Node, Not, Or, Phrase, Prefix, Term, parse_query
from .text import Doc, PrefixSet

_CONTEXT_WORDS = 6
_MAX_SNIPPETS = 3


class TopicLike(Protocol):
    """What the classifier needs of a topic (config.TopicConfig has it)."""

    @property
    def name(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def exclude(self) -> str | None: ...


@dataclass(frozen=True)
class CompiledTopic:
    id: str
    name: str
    query: Node
    exclude: Node | None
    holds: Test                     # compiled query.holds
    excluded: Test | None           # compiled exclude.holds
    leaves: LeafTable               # for the clauses of a match


def compile_topic(topic_id: str, topic: TopicLike) -> CompiledTopic:
    try:
        query = parse_query(topic.query)
        exclude = parse_query(topic.exclude) if topic.exclude else None
    except QueryError as exc:
        raise exc.for_topic(topic_id) from None
    return CompiledTopic(topic_id, topic.name, query, exclude, compile_holds(query),
                         compile_holds(exclude) if exclude else None, LeafTable(query))


class Classifier:
    """Every topic, compiled and indexed once; `classify` is a pure function of the text."""

    def __init__(self, topics: Mapping[str, TopicLike]) -> None:
        self.topics = tuple(compile_topic(tid, t) for tid, t in topics.items())
        self.index = TopicIndex(t.query for t in self.topics)
        self.prefixes = PrefixSet(
            leaf.prefix for t in self.topics for node in (t.query, t.exclude) if node
            for leaf in _all_leaves(node) if isinstance(leaf, Prefix))

    def classify(self, title: str, summary: str = "", *, naive: bool = False) -> list[Match]:
        """The topics the text matches, in config order. `naive` checks every topic (benches)."""
        doc = Doc.of_fields(title, summary, self.prefixes)
        numbers = range(len(self.topics)) if naive else self.index.candidates(doc)
        topics = self.topics
        matched = [n for n in numbers if topics[n].holds(doc) and not _excluded(topics[n], doc)]
        matches = []
        for number in sorted(matched):              # config order
            topic = topics[number]
            hits = topic.query.match(doc)
            assert hits is not None
            matches.append(Match(topic.id, topic.name, 1.0, snippets(doc, hits),
                                 clauses(topic.query, doc, hits, topic.leaves)))
        return matches


def _excluded(topic: CompiledTopic, doc: Doc) -> bool:
    return topic.excluded is not None and topic.excluded(doc)


def _all_leaves(node: Node) -> list[Node]:
    """Every leaf, NOT branches included (unlike `leaves`, which lists evidence)."""
    if isinstance(node, Not):
        return _all_leaves(node.part)
    if isinstance(node, And | Or):
        return [leaf for p in node.parts for leaf in _all_leaves(p)]
    if isinstance(node, Near):
        return _all_leaves(node.left) + _all_leaves(node.right)
    if isinstance(node, Field):
        return _all_leaves(node.part)
    return [node]


class LeafTable:
    """A query's evidence leaves by the word, stem or prefix that can satisfy them."""

    def __init__(self, query: Node) -> None:
        self.by_word: dict[str, list[Node]] = {}
        self.by_stem: dict[str, list[Node]] = {}
        self.prefixes: list[Prefix] = []
        self.order = {id(leaf): n for n, leaf in enumerate(query.leaves())}
        for leaf in query.leaves():
            if isinstance(leaf, Term):
                table = self.by_word if leaf.exact else self.by_stem
                table.setdefault(leaf.key, []).append(leaf)
                for head in leaf.heads:
                    self.by_word.setdefault(head, []).append(leaf)
            elif isinstance(leaf, Prefix):
                self.prefixes.append(leaf)
            elif isinstance(leaf, Phrase):
                self.by_word.setdefault(leaf.words[0], []).append(leaf)
                self.by_word.setdefault("".join(leaf.words), []).append(leaf)

    def candidates(self, words: set[str], stems: set[str]) -> list[Node]:
        found: dict[int, Node] = {}
        for table, keys in ((self.by_word, words), (self.by_stem, stems)):
            for key in keys & table.keys():
                found.update((id(leaf), leaf) for leaf in table[key])
        for leaf in self.prefixes:
            if any(w.startswith(leaf.prefix) for w in words):
                found[id(leaf)] = leaf
        return sorted(found.values(), key=lambda leaf: self.order[id(leaf)])


def clauses(query: Node, doc: Doc, hits: Hits, table: LeafTable | None = None) -> tuple[str, ...]:
    """The query's terms that found words in the text and took part in the match."""
    hit_words = {doc.words[i] for i in hits}
    hit_stems = {doc.stem_of[w] for w in hit_words}
    out = []
    for leaf in (table or LeafTable(query)).candidates(hit_words, hit_stems):
        got = leaf.match(doc)
        if got and got & hits:
            found = ", ".join(dict.fromkeys(doc.surface(sorted(got & hits))))
            out.append(f"{leaf} = {found}")
    return tuple(dict.fromkeys(out))


def snippets(doc: Doc, hits: Hits) -> tuple[str, ...]:
    """Short passages around the hits, each hit word marked as `*word*`."""
    if not hits:
        return ()
    positions = sorted(hits)
    groups: list[list[int]] = [[positions[0]]]
    for index in positions[1:]:
        last = groups[-1][-1]
        if doc.field(index) == doc.field(last) and index - last <= 2 * _CONTEXT_WORDS:
            groups[-1].append(index)
        else:
            groups.append([index])
    out = []
    spans, text = doc.spans, doc.text
    for group in groups[:_MAX_SNIPPETS]:
        lo, hi = (0, doc.split - 1) if doc.field(group[0]) == 0 else (doc.split,
                                                                       len(doc.words) - 1)
        first = max(lo, group[0] - _CONTEXT_WORDS)
        last = min(hi, group[-1] + _CONTEXT_WORDS)
        pieces: list[str] = []
        cursor = spans[first][0]
        for i in group:
            a, b = spans[i]
            pieces += (text[cursor:a], "*", text[a:b], "*")
            cursor = b
        pieces.append(text[cursor:spans[last][1]])
        snippet = " ".join("".join(pieces).split())
        out.append(("... " if first > lo else "") + snippet + (" ..." if last < hi else ""))
    return tuple(out)
