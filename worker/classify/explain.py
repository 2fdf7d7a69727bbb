"""Clause-by-clause account of why a text matches a topic or not."""

from __future__ import annotations

from .query import And, Doc, Node, Not, Or, Phrase, Prefix, Term


def explain(node: Node, doc: Doc, depth: int = 0) -> list[str]:
    """One line per clause: ✓ or ✗, the clause, and the words in the text that satisfied it."""
    hits = node.match(doc)
    mark = "✓" if hits is not None else "✗"
    pad = "  " * depth
    if isinstance(node, Term | Prefix | Phrase):
        found = sorted({doc.text[doc.spans[i][0]:doc.spans[i][1]] for i in hits or ()})
        why = f"  found: {', '.join(found)}" if found else "  not in the text"
        return [f"{pad}{mark} {node}{why}"]
    if isinstance(node, Not):
        return [f"{pad}{mark} NOT (holds when the clause below does not)",
                *explain(node.part, doc, depth + 1)]
    assert isinstance(node, And | Or)
    label = "ALL of" if isinstance(node, And) else "ANY of"
    lines = [f"{pad}{mark} {label}:"]
    for part in node.parts:
        lines += explain(part, doc, depth + 1)
    return lines
