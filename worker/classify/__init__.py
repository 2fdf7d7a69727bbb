"""Match texts against watch topics, keeping the evidence of each match."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, Protocol, cast

from ..errors import QueryError
from ..models import Match
from .compile import Test, compile_holds
from .index import TopicIndex
from .query import And, Field, Hits, Near, Node, Not, Or, Phrase, Prefix, Term, parse_query
from .text import Doc, Lexicon

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


class SemanticLike(Protocol):
    """What semantic scoring needs of a topic (config.TopicConfig has it)."""

    @property
    def semantic_texts(self) -> tuple[str, ...]: ...
    @property
    def semantic(self) -> Any: ...          # .threshold: float, .gate: str | None


class EmbedderLike(Protocol):
    def embed(self, texts: list[str]) -> Any: ...     # (n, d) unit vectors (numpy)


@dataclass(frozen=True)
class SemanticTopic:
    number: int                     # index into Classifier.topics
    texts: tuple[str, ...]          # description and examples
    threshold: float
    gate: Test                      # which items are worth embedding for this topic


@dataclass(frozen=True)
class CompiledTopic:
    id: str
    name: str
    query: Node
    exclude: Node | None
    holds: Test                     # compiled query.holds
    excluded: Test | None           # compiled exclude.holds
    accepts: Test                   # compiled: the query holds and the exclude does not
    leaves: LeafTable               # for the clauses of a match


def compile_topic(topic_id: str, topic: TopicLike) -> CompiledTopic:
    try:
        query = parse_query(topic.query)
        exclude = parse_query(topic.exclude) if topic.exclude else None
    except QueryError as exc:
        raise exc.for_topic(topic_id) from None
    holds = compile_holds(query)
    return CompiledTopic(topic_id, topic.name, query, exclude, holds,
                         compile_holds(exclude) if exclude else None,
                         compile_holds(And((query, Not(exclude)))) if exclude else holds,
                         LeafTable(query))


class Classifier:
    """Every topic, compiled and indexed once; classifying is a pure function of the texts.

    The rule (docs/queries.md): a topic matches when its query holds and its exclude does not;
    with semantic scoring on, it also matches when the item passes the topic's gate, its
    exclude does not hold, and its similarity to the topic's description or an example reaches
    the topic's threshold. Lexical matches then carry their similarity as well."""

    def __init__(self, topics: Mapping[str, TopicLike],
                 embedder: EmbedderLike | None = None) -> None:
        self.topics = tuple(compile_topic(tid, t) for tid, t in topics.items())
        self.index = TopicIndex(t.query for t in self.topics)
        self.lexicon = Lexicon(
            (leaf.prefix for t in self.topics for node in (t.query, t.exclude) if node
             for leaf in _all_leaves(node) if isinstance(leaf, Prefix)), self.index)
        self.embedder = embedder
        self.semantic: list[SemanticTopic] = []
        self._vectors: list[Any] = []
        if embedder is not None:
            for number, topic in enumerate(topics.values()):
                texts = getattr(topic, "semantic_texts", ())
                if not texts:
                    continue
                settings = cast(SemanticLike, topic).semantic
                gate = parse_query(settings.gate) if settings.gate else \
                    Or(tuple(_all_leaves(self.topics[number].query)))
                self.semantic.append(SemanticTopic(number, texts, settings.threshold,
                                                   compile_holds(gate)))
                self._vectors.append(embedder.embed(list(texts)))

    @cached_property
    def vocabulary(self) -> tuple[frozenset[str], tuple[str, ...]]:
        """The words the topics look for: stems of bare terms, exact and phrase words as
        folded, and wildcard prefixes (story clustering weighs them down: every item a topic
        matches shares them, so they do not tell one event from another)."""
        words: set[str] = set()
        prefixes: set[str] = set()
        for topic in self.topics:
            for leaf in topic.query.leaves():
                if isinstance(leaf, Term):
                    words.add(leaf.key)
                elif isinstance(leaf, Phrase):
                    words.update(leaf.words)
                elif isinstance(leaf, Prefix):
                    prefixes.add(leaf.prefix)
        return frozenset(words), tuple(sorted(prefixes))

    def semantic_for(self, topic_id: str) -> SemanticTopic | None:
        """The semantic scoring of a topic, when it has some."""
        return next((st for st in self.semantic if self.topics[st.number].id == topic_id),
                    None)

    def doc(self, title: str, summary: str = "") -> Doc:
        """The text as this classifier's topics read it."""
        return Doc.of_fields(title, summary, self.lexicon)

    def classify(self, title: str, summary: str = "", *, naive: bool = False) -> list[Match]:
        """The topics the text matches, in config order. `naive` checks every topic (benches)."""
        return self.classify_many([(title, summary)], naive=naive)[0]

    def classify_many(self, items: list[tuple[str, str]], *,
                      naive: bool = False) -> list[list[Match]]:
        """Many texts at once, so that semantic scoring embeds them in batches. Each Doc is let
        go once classified unless the model will read it: holding a large batch's Docs made
        the garbage collector walk them over and over (half the time at 20,000 items)."""
        results = []
        wanted: dict[int, tuple[Doc, list[int]]] = {}    # doc -> semantic topics to score
        for i, (title, summary) in enumerate(items):
            doc = self.doc(title, summary)
            results.append(self._lexical(doc, naive))
            if self.semantic:
                worth = [k for k, st in enumerate(self.semantic)
                         if st.gate(doc) and not _excluded(self.topics[st.number], doc)]
                if worth:
                    wanted[i] = (doc, worth)
        if wanted:
            self._add_semantic(wanted, results)
        return results

    def _lexical(self, doc: Doc, naive: bool) -> list[Match]:
        numbers = range(len(self.topics)) if naive else self.index.candidates(doc)
        topics = self.topics
        matched = [n for n in numbers if topics[n].accepts(doc)]
        matches = []
        for number in sorted(matched):              # config order
            topic = topics[number]
            hits = topic.query.match(doc)
            assert hits is not None
            matches.append(Match(topic.id, topic.name, 1.0, snippets(doc, hits),
                                 clauses(topic.query, doc, hits, topic.leaves)))
        return matches


    def _add_semantic(self, wanted: dict[int, tuple[Doc, list[int]]],
                      results: list[list[Match]]) -> None:
        if self.embedder is None:
            return
        order = sorted(wanted)
        vectors = self.embedder.embed([f"{wanted[i][0].title}. {wanted[i][0].summary}".strip(" .")
                                       for i in order])
        rank = {t.id: n for n, t in enumerate(self.topics)}
        for row, i in zip(vectors, order, strict=True):
            found = {m.topic_id: m for m in results[i]}
            for k in wanted[i][1]:
                st = self.semantic[k]
                topic = self.topics[st.number]
                similarities = self._vectors[k] @ row
                best = int(similarities.argmax())
                score = round(float(similarities[best]), 3)
                lexical = found.get(topic.id)
                if lexical is not None:
                    found[topic.id] = replace(lexical, semantic=score)
                elif score >= st.threshold:
                    found[topic.id] = Match(
                        topic.id, topic.name, score,
                        (f'semantic {score:.2f}: close to "{st.texts[best]}"',),
                        (f"semantic similarity {score:.2f} >= {st.threshold:.2f}",), score)
            results[i] = sorted(found.values(), key=lambda m: rank[m.topic_id])


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
    """A query's evidence leaves by the word or key (stem, `prefix*`) that can satisfy them."""

    def __init__(self, query: Node) -> None:
        self.by_word: dict[str, list[Node]] = {}
        self.by_key: dict[str, list[Node]] = {}
        self.order = {id(leaf): n for n, leaf in enumerate(query.leaves())}
        for leaf in query.leaves():
            if isinstance(leaf, Term):
                table = self.by_word if leaf.exact else self.by_key
                table.setdefault(leaf.key, []).append(leaf)
                for head in leaf.heads:
                    self.by_word.setdefault(head, []).append(leaf)
            elif isinstance(leaf, Prefix):
                self.by_key.setdefault(leaf.key, []).append(leaf)
            elif isinstance(leaf, Phrase):
                self.by_word.setdefault(leaf.words[0], []).append(leaf)
                self.by_word.setdefault("".join(leaf.words), []).append(leaf)

    def candidates(self, words: set[str], keys: set[str]) -> list[Node]:
        found: dict[int, Node] = {}
        for table, present in ((self.by_word, words), (self.by_key, keys)):
            for key in present & table.keys():
                found.update((id(leaf), leaf) for leaf in table[key])
        return sorted(found.values(), key=lambda leaf: self.order[id(leaf)])


def clauses(query: Node, doc: Doc, hits: Hits, table: LeafTable | None = None) -> tuple[str, ...]:
    """The query's terms that found words in the text and took part in the match."""
    hit_words = {doc.words[i] for i in hits}
    keys_of = doc.keys_of
    hit_keys: set[str] = set().union(*(keys_of[w] for w in hit_words))
    out = []
    for leaf in (table or LeafTable(query)).candidates(hit_words, hit_keys):
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
    spans, text = doc.spans_to(min(positions[-1] + _CONTEXT_WORDS, len(doc.words) - 1)), doc.text
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
