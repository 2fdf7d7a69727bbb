"""Match texts against watch topics, keeping the evidence of each match."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import QueryError
from ..models import Match
from .index import TopicIndex
from .query import Hits, Node, parse_query
from .text import Doc

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


def compile_topic(topic_id: str, topic: TopicLike) -> CompiledTopic:
    try:
        query = parse_query(topic.query)
        exclude = parse_query(topic.exclude) if topic.exclude else None
    except QueryError as exc:
        raise exc.for_topic(topic_id) from None
    return CompiledTopic(topic_id, topic.name, query, exclude)


class Classifier:
    """Every topic, compiled and indexed once; `classify` is a pure function of the text."""

    def __init__(self, topics: Mapping[str, TopicLike]) -> None:
        self.topics = tuple(compile_topic(tid, t) for tid, t in topics.items())
        self.index = TopicIndex(t.query for t in self.topics)

    def classify(self, title: str, summary: str = "", *, naive: bool = False) -> list[Match]:
        """The topics the text matches, in config order. `naive` checks every topic (benches)."""
        doc = Doc.of_fields(title, summary)
        numbers = range(len(self.topics)) if naive else self.index.candidates(doc)
        matches = []
        for number in numbers:
            topic = self.topics[number]
            hits = topic.query.match(doc)
            if hits is None:
                continue
            if topic.exclude is not None and topic.exclude.match(doc) is not None:
                continue
            matches.append(Match(topic.id, topic.name, 1.0, snippets(doc, hits),
                                 clauses(topic.query, doc, hits)))
        return matches


def clauses(query: Node, doc: Doc, hits: Hits) -> tuple[str, ...]:
    """The query's terms that found words in the text and took part in the match."""
    out = []
    for leaf in query.leaves():
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
        if doc.fields[index] == doc.fields[last] and index - last <= 2 * _CONTEXT_WORDS:
            groups[-1].append(index)
        else:
            groups.append([index])
    out = []
    for group in groups[:_MAX_SNIPPETS]:
        field_words = [i for i in range(len(doc.words)) if doc.fields[i] == doc.fields[group[0]]]
        lo, hi = field_words[0], field_words[-1]
        first = max(lo, group[0] - _CONTEXT_WORDS)
        last = min(hi, group[-1] + _CONTEXT_WORDS)
        text, cursor = [], doc.spans[first][0]
        for i in range(first, last + 1):
            a, b = doc.spans[i]
            text.append(doc.text[cursor:a])
            word = doc.text[a:b]
            text.append(f"*{word}*" if i in hits else word)
            cursor = b
        snippet = " ".join("".join(text).split())
        prefix = "... " if first > lo else ""
        suffix = " ..." if last < hi else ""
        out.append(prefix + snippet + suffix)
    return tuple(out)
