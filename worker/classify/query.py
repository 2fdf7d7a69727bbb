"""Topic query language: text -> tokens -> AST (nodes.py). See docs/queries.md.

    query   := or EOF
    or      := and ("OR" and)*
    and     := near (["AND"] near)*            adjacent clauses are ANDed
    near    := unary ("NEAR/n" unary)*         within n words, in the same field
    unary   := "NOT" unary | primary
    primary := FIELD ":" primary | "(" or ")" | PHRASE | TERM
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import QueryError
from .nodes import (
    DEFAULT_NEAR,
    MAX_DEPTH,
    MAX_NEAR,
    And,
    Field,
    Hits,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Term,
)
from .text import FIELDS, MIN_PREFIX, Doc, fold, words_of

_QUOTES = {'"': '"', "“": "”", "”": "”", "„": "“"}
_DASHES = str.maketrans({c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"})
_OPERATORS = {"AND", "OR", "NOT"}
_NEAR = re.compile(r"^NEAR(?:/(\d+))?$", re.IGNORECASE)
_OPERATOR_LIKE = re.compile(r"^(?:AND|OR|NOT|NEAR|W|PRE)/", re.IGNORECASE)


@dataclass(frozen=True)
class _Token:
    kind: str      # "(", ")", "phrase", "word", "op", "near", "field", "end"
    text: str
    column: int    # 1-based
    distance: int = 0


def _tokens(query: str) -> list[_Token]:
    query = query.translate(_DASHES)
    out: list[_Token] = []
    i = 0
    while i < len(query):
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            out.append(_Token(ch, ch, i + 1))
            i += 1
        elif ch in _QUOTES:
            end = query.find(_QUOTES[ch], i + 1)
            if end < 0 and ch in "“”":
                end = query.find('"', i + 1)
            if end < 0:
                raise QueryError(f"unclosed quote {ch}: expected a closing quote", i + 1)
            out.append(_Token("phrase", query[i + 1:end], i + 1))
            i = end + 1
        else:
            j = i
            while j < len(query) and not query[j].isspace() and query[j] not in "():" \
                    and query[j] not in _QUOTES:
                j += 1
            text = query[i:j]
            if j < len(query) and query[j] == ":":
                if text.lower() not in FIELDS:
                    raise QueryError(f"unknown field {text!r}: expected title: or summary:",
                                     i + 1)
                out.append(_Token("field", text.lower(), i + 1))
                i = j + 1
                continue
            near = _NEAR.match(text)
            if near:
                distance = int(near.group(1)) if near.group(1) else DEFAULT_NEAR
                if not 0 < distance <= MAX_NEAR:
                    raise QueryError(f"{text}: the distance must be 1 to {MAX_NEAR} words",
                                     i + 1)
                out.append(_Token("near", "NEAR", i + 1, distance))
            elif _OPERATOR_LIKE.match(text):
                raise QueryError(f"malformed operator {text!r}: expected NEAR/n (n a number "
                                 "of words), AND, OR or NOT", i + 1)
            elif text.upper() in _OPERATORS:
                out.append(_Token("op", text.upper(), i + 1))
            else:
                out.append(_Token("word", text, i + 1))
            i = j
    out.append(_Token("end", "", len(query) + 1))
    return out


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = _tokens(query)
        self.pos = 0
        self.depth = 0

    def deeper(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise QueryError(f"nested more than {MAX_DEPTH} levels deep (parentheses, NOT and "
                             "fields)", tok.column)

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def is_op(self, name: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text == name

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise QueryError("empty query: expected a term, a \"phrase\" or (", 1)
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise QueryError(f"unexpected {tok.text!r}: expected AND, OR, NEAR or the end",
                             tok.column)
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.is_op("OR"):
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self) -> Node:
        parts = [self.near()]
        while True:
            if self.is_op("AND"):
                self.take()
            elif not (self.peek().kind in ("word", "phrase", "(", "field") or self.is_op("NOT")):
                break
            parts.append(self.near())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def near(self) -> Node:
        node = self.unary()
        while self.peek().kind == "near":
            tok = self.take()
            right = self.unary()
            for side in (node, right):
                if _has_not(side):
                    raise QueryError("NEAR needs words on both sides, not NOT", tok.column)
            node = Near(node, right, tok.distance)
        return node

    def unary(self) -> Node:
        if self.is_op("NOT"):
            tok = self.take()
            self.deeper(tok)
            node: Node = Not(self.unary())
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "field":
            if self.peek().kind in ("end", ")"):
                raise QueryError(f"expected a term after {tok.text}:", self.peek().column)
            self.deeper(tok)
            node: Node = Field(tok.text, self.primary())
            self.depth -= 1
            return node
        if tok.kind == "(":
            self.deeper(tok)
            node = self.or_()
            close = self.take()
            if close.kind != ")":
                raise QueryError(f"expected ) to close the ( at column {tok.column}",
                                 close.column)
            self.depth -= 1
            return node
        if tok.kind == "phrase":
            words = tuple(words_of(tok.text))
            if not words:
                raise QueryError("empty phrase: expected words between the quotes", tok.column)
            return Phrase(words) if len(words) > 1 else Term(words[0], exact=True)
        if tok.kind == "word":
            return _word(tok)
        what = "end of the query" if tok.kind == "end" else repr(tok.text)
        raise QueryError(f"unexpected {what}: expected a term, a \"phrase\" or (", tok.column)


def _has_not(node: Node) -> bool:
    if isinstance(node, Not):
        return True
    if isinstance(node, And | Or):
        return any(_has_not(p) for p in node.parts)
    if isinstance(node, Near):
        return _has_not(node.left) or _has_not(node.right)
    if isinstance(node, Field):
        return _has_not(node.part)
    return False


def _word(tok: _Token) -> Node:
    text = tok.text
    star = text.find("*")
    if star >= 0 and star != len(text) - 1:
        raise QueryError("a wildcard * is only allowed at the end of a term",
                         tok.column + star)
    words = words_of(text)
    if not words:
        raise QueryError(f"{text!r} has no letters or digits: expected a term", tok.column)
    if star >= 0:
        if len(words) > 1:
            raise QueryError("a wildcard cannot end a hyphenated term", tok.column + star)
        if len(words[0]) < MIN_PREFIX:
            raise QueryError(f"a wildcard needs at least {MIN_PREFIX} letters before *",
                             tok.column)
        return Prefix(words[0])
    return Term("".join(words))     # cease-fire -> ceasefire (matches all three spellings)


def parse_query(query: str) -> Node:
    """Parse a topic query; raise QueryError with the column of the first problem."""
    return _Parser(query).parse()


__all__ = ["And", "Doc", "Field", "Hits", "Near", "Node", "Not", "Or", "Phrase", "Prefix",
           "Term", "fold", "parse_query"]
