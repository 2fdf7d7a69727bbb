"""Topic query language: parser -> AST -> matcher over a tokenised text.

Grammar (operators are case-insensitive; adjacent terms are ANDed):

    query   := or EOF
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*
    unary   := "NOT" unary | primary
    primary := "(" or ")" | PHRASE | TERM

A TERM is a word (`talks`), a prefix (`negotiat*`) or a hyphenated word (`cease-fire`, matched
as the phrase "cease fire"). A PHRASE is "quoted words", matched as consecutive words.
Matching is case-insensitive and on word boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import QueryError

WORD = re.compile(r"\w+")
_QUOTES = {'"': '"', "“": "”", "”": "”", "„": "“"}
_OPERATORS = {"AND", "OR", "NOT"}


@dataclass(frozen=True)
class Doc:
    """A text split into casefolded words, with each word's character span."""

    text: str
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]

    @classmethod
    def of(cls, text: str) -> Doc:
        found = list(WORD.finditer(text))
        return cls(text, tuple(m.group().casefold() for m in found),
                   tuple(m.span() for m in found))

    @classmethod
    def of_fields(cls, *fields: str) -> Doc:
        """Several fields as one text, with an empty word between them that nothing matches,
        so that a phrase never spans two fields (Lucene's position gap)."""
        text, words, spans = "", [], []
        for field in (f.strip() for f in fields):
            if not field:
                continue
            if text:
                words.append("")
                spans.append((len(text), len(text)))
                text += " · "
            for m in WORD.finditer(field):
                words.append(m.group().casefold())
                spans.append((len(text) + m.start(), len(text) + m.end()))
            text += field
        return cls(text, tuple(words), tuple(spans))


Hits = frozenset[int]   # word positions that made a clause hold


class Node:
    def match(self, doc: Doc) -> Hits | None:
        """The positions that satisfy this node, or None when it does not hold."""
        raise NotImplementedError


@dataclass(frozen=True)
class Term(Node):
    word: str

    def match(self, doc: Doc) -> Hits | None:
        hits = frozenset(i for i, w in enumerate(doc.words) if w == self.word)
        return hits or None

    def __str__(self) -> str:
        return self.word


@dataclass(frozen=True)
class Prefix(Node):
    stem: str

    def match(self, doc: Doc) -> Hits | None:
        hits = frozenset(i for i, w in enumerate(doc.words) if w.startswith(self.stem))
        return hits or None

    def __str__(self) -> str:
        return self.stem + "*"


@dataclass(frozen=True)
class Phrase(Node):
    words: tuple[str, ...]

    def match(self, doc: Doc) -> Hits | None:
        n = len(self.words)
        hits: set[int] = set()
        for i in range(len(doc.words) - n + 1):
            if doc.words[i:i + n] == self.words:
                hits.update(range(i, i + n))
        return frozenset(hits) or None

    def __str__(self) -> str:
        return '"' + " ".join(self.words) + '"'


@dataclass(frozen=True)
class And(Node):
    parts: tuple[Node, ...]

    def match(self, doc: Doc) -> Hits | None:
        hits: set[int] = set()
        for part in self.parts:
            got = part.match(doc)
            if got is None:
                return None
            hits |= got
        return frozenset(hits)

    def __str__(self) -> str:
        return "(" + " AND ".join(map(str, self.parts)) + ")"


@dataclass(frozen=True)
class Or(Node):
    parts: tuple[Node, ...]

    def match(self, doc: Doc) -> Hits | None:
        results = [got for part in self.parts if (got := part.match(doc)) is not None]
        return frozenset().union(*results) if results else None

    def __str__(self) -> str:
        return "(" + " OR ".join(map(str, self.parts)) + ")"


@dataclass(frozen=True)
class Not(Node):
    part: Node

    def match(self, doc: Doc) -> Hits | None:
        return frozenset() if self.part.match(doc) is None else None

    def __str__(self) -> str:
        return f"NOT {self.part}"


@dataclass(frozen=True)
class _Token:
    kind: str      # "(", ")", "phrase", "word", "op", "end"
    text: str
    column: int    # 1-based


def _tokens(query: str) -> list[_Token]:
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
            while j < len(query) and not query[j].isspace() and query[j] not in "()" \
                    and query[j] not in _QUOTES:
                j += 1
            text = query[i:j]
            kind = "op" if text.upper() in _OPERATORS else "word"
            out.append(_Token(kind, text.upper() if kind == "op" else text, i + 1))
            i = j
    out.append(_Token("end", "", len(query) + 1))
    return out


class _Parser:
    def __init__(self, query: str) -> None:
        self.tokens = _tokens(query)
        self.pos = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise QueryError("empty query: expected a term, a \"phrase\" or (", 1)
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise QueryError(f"unexpected {tok.text!r}: expected AND, OR or the end", tok.column)
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.peek().kind == "op" and self.peek().text == "OR":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self) -> Node:
        parts = [self.unary()]
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.text == "AND":
                self.take()
            elif not (tok.kind in ("word", "phrase", "(")
                      or (tok.kind == "op" and tok.text == "NOT")):
                break
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def unary(self) -> Node:
        if self.peek().kind == "op" and self.peek().text == "NOT":
            self.take()
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "(":
            node = self.or_()
            close = self.take()
            if close.kind != ")":
                raise QueryError(f"expected ) to close the ( at column {tok.column}",
                                 close.column)
            return node
        if tok.kind == "phrase":
            words = tuple(w.casefold() for w in WORD.findall(tok.text))
            if not words:
                raise QueryError("empty phrase: expected words between the quotes", tok.column)
            return Phrase(words) if len(words) > 1 else Term(words[0])
        if tok.kind == "word":
            return _word(tok)
        what = "the end of the query" if tok.kind == "end" else repr(tok.text)
        raise QueryError(f"unexpected {what}: expected a term, a \"phrase\" or (", tok.column)


def _word(tok: _Token) -> Node:
    text = tok.text
    star = text.find("*")
    if star >= 0 and star != len(text) - 1:
        raise QueryError("a wildcard * is only allowed at the end of a term",
                         tok.column + star)
    words = [w.casefold() for w in WORD.findall(text)]
    if not words:
        raise QueryError(f"{text!r} has no letters or digits: expected a term", tok.column)
    if star >= 0:
        if len(words) > 1:
            raise QueryError("a wildcard cannot end a hyphenated term", tok.column + star)
        if len(words[0]) < 3:
            raise QueryError("a wildcard needs at least 3 letters before *", tok.column)
        return Prefix(words[0])
    return Phrase(tuple(words)) if len(words) > 1 else Term(words[0])


def parse_query(query: str) -> Node:
    """Parse a topic query; raise QueryError with the column of the first problem."""
    return _Parser(query).parse()
