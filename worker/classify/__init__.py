"""Match texts against watch topics, keeping the evidence of each match."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import QueryError
from ..models import Match
from .query import Doc, Hits, Node, parse_query

_CONTEXT_WORDS = 6
_MAX_SNIPPETS = 3


@dataclass(frozen=True)
class CompiledTopic:
    id: str
    name: str
    query: Node
    exclude: Node | None


class TopicLike(Protocol):
    """What the classifier needs of a topic (config.TopicConfig has it)."""

    @property
    def name(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def exclude(self) -> str | None: ...


class Classifier:
    """Every topic, compiled once; `classify` is a pure function of the text."""

    def __init__(self, topics: Mapping[str, TopicLike]) -> None:
        compiled = []
        for topic_id, topic in topics.items():
            try:
                query = parse_query(topic.query)
                exclude = parse_query(topic.exclude) if topic.exclude else None
            except QueryError as exc:
                raise exc.for_topic(topic_id) from None
            compiled.append(CompiledTopic(topic_id, topic.name, query, exclude))
        self.topics = tuple(compiled)

    def classify(self, title: str, summary: str = "") -> list[Match]:
        doc = Doc.of_fields(title, summary)
        matches = []
        for topic in self.topics:
            hits = topic.query.match(doc)
            if hits is None:
                continue
            if topic.exclude is not None and topic.exclude.match(doc) is not None:
                continue
            matches.append(Match(topic.id, topic.name, 1.0, snippets(doc, hits)))
        return matches


def snippets(doc: Doc, hits: Hits) -> tuple[str, ...]:
    """Short passages around the hits, each hit word marked as `*word*`."""
    if not hits:
        return ()
    positions = sorted(hits)
    groups: list[list[int]] = [[positions[0]]]
    for pos in positions[1:]:
        if pos - groups[-1][-1] <= 2 * _CONTEXT_WORDS:
            groups[-1].append(pos)
        else:
            groups.append([pos])
    out = []
    for group in groups[:_MAX_SNIPPETS]:
        first = max(0, group[0] - _CONTEXT_WORDS)
        last = min(len(doc.words) - 1, group[-1] + _CONTEXT_WORDS)
        start, end = doc.spans[first][0], doc.spans[last][1]
        text, cursor = [], start
        for pos in range(first, last + 1):
            a, b = doc.spans[pos]
            text.append(doc.text[cursor:a])
            word = doc.text[a:b]
            text.append(f"*{word}*" if pos in hits else word)
            cursor = b
        snippet = " ".join("".join(text).split())
        prefix = "... " if start > 0 else ""
        suffix = " ..." if end < len(doc.text.rstrip(" .")) else ""
        out.append(prefix + snippet + suffix)
    return tuple(out)
