"""Clause-by-clause account of why a text matches a topic or not."""

from __future__ import annotations

from .query import And, Field, Near, Node, Not, Or
from .text import Doc


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
