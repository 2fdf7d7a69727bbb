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
                  summary: str = "", lang: str | None = None) -> Explanation:
    """The classifier's verdict for one topic (the very call `classify` makes, so the two
    never disagree), and the account of each clause of its query and exclude, then of the
    model where the topic has one."""
    topic = next((t for t in classifier.topics if t.id == topic_id), None)
    if topic is None:
        known = ", ".join(sorted(t.id for t in classifier.topics))
        raise NewswatchError(f"unknown topic {topic_id!r} (known: {known})")
    match = next((m for m in classifier.classify(title, summary, lang)
                  if m.topic_id == topic_id), None)
    doc = classifier.doc(title, summary, lang)
    lines = [f"topic {topic.id} ({topic.name}): query {topic.query}", *explain(topic.query,
                                                                               doc, 1)]
    hits = topic.query.match(doc)
    excluded = False
    if topic.exclude is not None:
        decided_by_model = getattr(classifier.semantic_for(topic_id), "model", None) is not None
        excluded = (hits is not None or decided_by_model) and \
            topic.exclude.match(doc) is not None       # a veto on the model's verdict too
        lines += [f"exclude: {topic.exclude}", *explain(topic.exclude, doc, 1)]
    lines += _semantic_lines(classifier, topic_id, title, summary, lang)
    if match is None:
        verdict = "excluded" if excluded else "no match"
    elif match.model is not None:
        verdict = "MATCHES (model)"
    else:
        verdict = "MATCHES" if hits is not None and not excluded else "MATCHES (semantic)"
    lines.append(f"=> {verdict}")
    if match is not None:
        lines += [f"   {s}" for s in match.evidence]
        lines += [f"   like: {text} ({'relevant' if relevant else 'not relevant'})"
                  for text, relevant in match.like]
    return Explanation(topic_id, match, excluded, tuple(lines))


def _semantic_lines(classifier: Classifier, topic_id: str, title: str, summary: str,
                    lang: str | None) -> list[str]:
    semantic = classifier.semantic_for(topic_id)
    assessed = classifier.assess(topic_id, title, summary, lang)
    if semantic is None or assessed is None:
        return []
    lines = [f"language: {lang or 'unknown'}"]
    if not assessed.embedded:
        return [*lines, "model: not consulted (an English text that neither the query nor "
                        "the topic's gate concerns)"]
    if semantic.model is not None and assessed.probability is not None:
        holds = ">=" if assessed.probability >= semantic.model.threshold else "<"
        lines.append(f"model: probability {assessed.probability:.2f} {holds} "
                     f"{semantic.model.threshold:.2f} (it decides this topic)")
    elif assessed.similarity is not None:
        holds = ">=" if assessed.similarity >= semantic.threshold else "<"
        lines.append(f"semantic: similarity {assessed.similarity:.2f} {holds} "
                     f"{semantic.threshold:.2f}")
    return lines
