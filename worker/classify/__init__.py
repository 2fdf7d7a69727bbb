"""Match texts against watch topics, keeping the evidence of each match."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, cast

from ..errors import QueryError
from ..models import Match
from .compile import Test, compile_holds
from .index import TopicIndex
from .learned import TopicModel
from .query import And, Field, Hits, Near, Node, Not, Or, Phrase, Prefix, Term, parse_query
from .scoring import Assessment, EmbedderLike, Miss, Reference, Scorer, SemanticTopic
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
    @property
    def examples(self) -> tuple[str, ...]: ...
    @property
    def counterexamples(self) -> tuple[str, ...]: ...


# An item's text as the classifier reads it: (title, summary) or (title, summary, language).
Text = tuple[str, str] | tuple[str, str, str | None]


@dataclass(frozen=True, slots=True)
class Decision:
    """What the topics made of one item: its matches (config order), and how near it came to
    the topics that scored it under their thresholds (`missed`, by topic id)."""

    matches: list[Match]
    missed: dict[str, Miss]


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

    The rule (docs/queries.md): a topic matches when its query holds and its exclude does not.
    With the embedding model (scoring.py), a topic with a trained model is decided by it (the
    query's signals are among its evidence), and one without matches by its query or by
    similarity to its description or examples. Lexical matches carry their similarity too."""

    def __init__(self, topics: Mapping[str, TopicLike], embedder: EmbedderLike | None = None,
                 models: Mapping[str, TopicModel] | None = None,
                 labelled: Mapping[str, tuple[Reference, ...]] | None = None) -> None:
        self.topics = tuple(compile_topic(tid, t) for tid, t in topics.items())
        self.index = TopicIndex(t.query for t in self.topics)
        # The gates' prefixes are tracked too: a Doc knows only the prefixes its lexicon
        # tracks, and a gate's own (detain*, releas*) held for no word otherwise.
        gates = {tid: parse_query(gate) for tid, t in topics.items() if embedder is not None
                 and (gate := getattr(getattr(t, "semantic", None), "gate", None))}
        self.lexicon = Lexicon(
            (leaf.prefix for node in (*(n for t in self.topics for n in (t.query, t.exclude)),
                                      *gates.values()) if node
             for leaf in _all_leaves(node) if isinstance(leaf, Prefix)), self.index)
        self.embedder = embedder
        self.scorer: Scorer | None = None
        if embedder is not None:
            semantic = []
            for number, (topic_id, topic) in enumerate(topics.items()):
                model = (models or {}).get(topic_id)
                texts = tuple(getattr(topic, "semantic_texts", ()))
                if not texts and model is None:
                    continue
                settings = cast(SemanticLike, topic).semantic
                gate = gates.get(topic_id) or Or(tuple(_all_leaves(self.topics[number].query)))
                # "like:" picks from the examples the model was fitted on, when they are
                # known (`labelled`: in the order of the vectors its file keeps), else from
                # the topic's own examples and counterexamples
                references = (labelled or {}).get(topic_id, ())
                vectors = None
                if references and model is not None and model.kernel_weights:
                    vectors = model.reference_vectors()[:len(references)]
                else:
                    references = tuple(Reference(text, True) for text in
                                       getattr(topic, "examples", ())) + \
                        tuple(Reference(text, False) for text in
                              getattr(topic, "counterexamples", ()))
                semantic.append(SemanticTopic(number, texts, settings.threshold,
                                              compile_holds(gate), model, references, vectors))
            self.scorer = Scorer(embedder, semantic)

    @property
    def semantic(self) -> list[SemanticTopic]:
        return self.scorer.topics if self.scorer else []

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

    def assess(self, topic_id: str, title: str, summary: str = "", lang: str | None = None
               ) -> Assessment | None:
        """What the model makes of a text for one topic, whether or not it matches (explain's
        account); None where the topic has no semantic side or the text was not worth it."""
        st = self.semantic_for(topic_id)
        if st is None or self.scorer is None:
            return None
        doc = self.doc(title, summary, lang)
        k = self.scorer.topics.index(st)
        if k not in self.scorer.worth(doc, self.topics):
            return Assessment(False, None, None)
        vector = self.scorer.embedder.embed([embedding_text(title, summary)])[0]
        return self.scorer.assess(k, self.topics[st.number], doc, vector)

    def doc(self, title: str, summary: str = "", lang: str | None = None) -> Doc:
        """The text as this classifier's topics read it (stemmed in `lang` too)."""
        return Doc.of_fields(title, summary, self.lexicon, lang)

    def classify(self, title: str, summary: str = "", lang: str | None = None, *,
                 naive: bool = False) -> list[Match]:
        """The topics the text matches, in config order. `naive` checks every topic (benches)."""
        return self.classify_many([(title, summary, lang)], naive=naive)[0]

    def classify_many(self, items: Sequence[Text], *, naive: bool = False
                      ) -> list[list[Match]]:
        """Many texts at once, so that semantic scoring embeds them in batches."""
        return [d.matches for d in self.decide_many(items, naive=naive)]

    def decide_many(self, items: Sequence[Text], *, naive: bool = False) -> list[Decision]:
        """`classify_many`, with each item's near misses. Each Doc is let go once classified
        unless the model will read it: holding a large batch's Docs made the garbage
        collector walk them over and over (half the time at 20,000 items)."""
        results = []
        wanted: dict[int, tuple[Doc, list[int]]] = {}    # doc -> semantic topics to score
        scorer = self.scorer
        for i, item in enumerate(items):
            doc = self.doc(item[0], item[1], item[2] if len(item) > 2 else None)
            results.append(Decision(self._lexical(doc, naive), {}))
            if scorer is not None and (worth := scorer.worth(doc, self.topics)):
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
                      results: list[Decision]) -> None:
        scorer = self.scorer
        assert scorer is not None
        order = sorted(wanted)
        vectors = scorer.embedder.embed([embedding_text(wanted[i][0].title,
                                                        wanted[i][0].summary) for i in order])
        rank = {t.id: n for n, t in enumerate(self.topics)}
        for row, i in zip(vectors, order, strict=True):
            doc, worth = wanted[i]
            found = {m.topic_id: m for m in results[i].matches}
            missed: dict[str, Miss] = {}
            for k in worth:
                topic = self.topics[scorer.topics[k].number]
                decided = scorer.decide(k, topic, doc, row, found.get(topic.id))
                if isinstance(decided, Match):
                    found[topic.id] = decided
                    continue
                found.pop(topic.id, None)
                if isinstance(decided, Miss):
                    missed[topic.id] = decided
            results[i] = Decision(sorted(found.values(), key=lambda m: rank[m.topic_id]),
                                  missed)


def embedding_text(title: str, summary: str) -> str:
    """What the model reads of an item (the same for classifying, training and stories)."""
    return f"{title}. {summary}".strip(" .") if summary else title.strip()


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
                if leaf.exact:
                    self.by_word.setdefault(leaf.key, []).append(leaf)
                else:
                    for key in leaf.stems:
                        self.by_key.setdefault(key, []).append(leaf)
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
