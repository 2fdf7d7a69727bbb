"""Clause-by-clause account of why a text matches a topic or not."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import NewswatchError
from ..models import Match
from .query import And, Field, Near, Node, Not, Or
from .text import Doc

if TYPE_CHECKING:
    from . import Classifier


def explain(node: Node, doc: Doc, depth: int = 0, scope: int | None = None) -> list[str]:
    """One line per clause: ✓ or ✗, the clause, and the words of the text that satisfied it."""
    hits = node.match(doc, scope)
    mark = "✓" if hits is not None else "✗"
    pad = "  " * depth
    if isinstance(node, Not):
        return [f"{pad}{mark} NOT (holds when the clause below does not)",
                *explain(node.part, doc, depth + 1, scope)]
    if isinstance(node, Field):
        from .text import FIELDS

        return [f"{pad}{mark} in the {node.name} only:",
                *explain(node.part, doc, depth + 1, FIELDS.index(node.name))]
    if isinstance(node, Near):
        return [f"{pad}{mark} both within {node.distance} words of each other:",
                *explain(node.left, doc, depth + 1, scope),
                *explain(node.right, doc, depth + 1, scope)]
    if isinstance(node, Or) and hits is None and all(_is_leaf(p) for p in node.parts):
        return [f"{pad}✗ ANY of: {', '.join(map(str, node.parts))}  (none in the text)"]
    if isinstance(node, And | Or):
        label = "ALL of" if isinstance(node, And) else "ANY of"
        lines = [f"{pad}{mark} {label}:"]
        for part in node.parts:
            lines += explain(part, doc, depth + 1, scope)
        return lines
    found = list(dict.fromkeys(doc.surface(sorted(hits or ()))))
    why = f"  found: {', '.join(found)}" if found else "  not in the text"
    return [f"{pad}{mark} {node}{why}"]


def _is_leaf(node: Node) -> bool:
    return not isinstance(node, And | Or | Not | Near | Field)


@dataclass(frozen=True)
class Explanation:
    """Why one topic matches a title and summary or not, with the classifier's own verdict."""

    topic_id: str
    match: Match | None          # what `classify` gives for this topic (None: no match)
    excluded: bool               # the query held but the exclude vetoed it
    lines: tuple[str, ...]       # clause by clause, the verdict last

    @property
    def matched(self) -> bool:
        return self.match is not None


def explain_topic(classifier: Classifier, topic_id: str, title: str,
                  summary: str = "") -> Explanation:
    """The classifier's verdict for one topic (the very call `classify` makes, so the two
    never disagree), and the account of each clause of its query and exclude."""
    topic = next((t for t in classifier.topics if t.id == topic_id), None)
    if topic is None:
        known = ", ".join(sorted(t.id for t in classifier.topics))
        raise NewswatchError(f"unknown topic {topic_id!r} (known: {known})")
    match = next((m for m in classifier.classify(title, summary) if m.topic_id == topic_id),
                 None)
    doc = classifier.doc(title, summary)
    lines = [f"topic {topic.id} ({topic.name}): query {topic.query}", *explain(topic.query,
                                                                               doc, 1)]
    hits = topic.query.match(doc)
    excluded = False
    if topic.exclude is not None:
        excluded = hits is not None and topic.exclude.match(doc) is not None
        lines += [f"exclude: {topic.exclude}", *explain(topic.exclude, doc, 1)]
    semantic = classifier.semantic_for(topic_id)
    if semantic is not None:
        score = match.semantic if match is not None else None
        lines.append(f"semantic: {score if score is not None else 'below the threshold'} "
                     f"(threshold {semantic.threshold:.2f})")
    if match is None:
        verdict = "excluded" if excluded else "no match"
    else:
        verdict = "MATCHES" if hits is not None and not excluded else "MATCHES (semantic)"
    lines.append(f"=> {verdict}")
    if match is not None:
        lines += [f"   {s}" for s in match.evidence]
    return Explanation(topic_id, match, excluded, tuple(lines))
