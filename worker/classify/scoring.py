"""What the embedding model adds to a topic's decision.

A topic with a trained model (learned.py) is decided by it: the probability that the item is
relevant, from its vector and the query's signals, against the threshold its training chose.
A topic without one keeps the rule of docs/queries.md: its query, or (for an item that passes
its gate) a similarity to its description or examples reaching its threshold.

Which items are embedded at all: those some topic's words could concern (its gate or its query
holds), and every item not in English, where the topics' English words say nothing. A match
the model decided shows the probability, the clauses that held, and the two labelled examples
of the topic it is most alike ("like: ..."); a match by similarity, the example or
description it is closest to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from ..models import Match
from .compile import Test
from .learned import SIGNALS, TopicModel
from .text import Doc

if TYPE_CHECKING:
    import numpy as np


class TopicLike(Protocol):
    """What scoring reads of a compiled topic (classify.CompiledTopic)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def excluded(self) -> Any: ...               # Test | None

    def holds(self, doc: Doc) -> bool: ...


class EmbedderLike(Protocol):
    name: str

    def embed(self, texts: list[str], prefix: str = ...) -> Any: ...   # (n, d) unit vectors


@dataclass(frozen=True)
class Reference:
    """A labelled example of a topic, shown as "like: ..." beside a model's decision."""

    text: str
    relevant: bool


@dataclass(frozen=True)
class SemanticTopic:
    number: int                       # index into Classifier.topics
    texts: tuple[str, ...]            # description and examples: "close to ..."
    threshold: float                  # similarity for a match without a model
    gate: Test                        # which English items are worth embedding for it
    model: TopicModel | None = None
    references: tuple[Reference, ...] = ()      # what "like:" picks from
    reference_vectors: Any = None               # theirs, when known (else embedded)


@dataclass(frozen=True)
class Assessment:
    """The semantic side's reading of one item for one topic (explain shows it)."""

    embedded: bool                    # the item was worth embedding for this topic
    similarity: float | None          # to the closest description or example
    probability: float | None         # the topic's model, where it has one


@dataclass(frozen=True)
class Miss:
    """The item was scored for a topic and came under its threshold: not a match, but how
    near it came (a digest may show the nearest as "maybe" lines, for readers to judge). By
    the topic's model (a probability), or by similarity to its description and examples
    where it has no model."""

    topic_id: str
    score: float
    threshold: float
    by: str = "model"                 # model | similarity


class Scorer:
    """The semantic side of a classifier: the topics it can score, their vectors."""

    def __init__(self, embedder: EmbedderLike, topics: Sequence[SemanticTopic]) -> None:
        import numpy

        self.np = numpy
        self.embedder = embedder
        self.topics = list(topics)
        self.vectors = [embedder.embed(list(t.texts)) if t.texts else None for t in topics]
        self.reference_vectors = [
            t.reference_vectors if t.reference_vectors is not None
            else embedder.embed([r.text for r in t.references]) if t.references else None
            for t in topics]

    def worth(self, doc: Doc, topics: Sequence[TopicLike]) -> list[int]:
        """The semantic topics (indexes into self.topics) worth embedding this item for."""
        english = doc.lang in (None, "en")
        out = []
        for k, st in enumerate(self.topics):
            topic = topics[st.number]
            if not english:
                out.append(k)                      # the topics' words say nothing here
            elif (st.gate(doc) or topic.holds(doc)) and (
                    st.model is not None or not (topic.excluded and topic.excluded(doc))):
                out.append(k)
        return out

    def decide(self, k: int, topic: TopicLike, doc: Doc, vector: np.ndarray[Any, Any],
               lexical: Match | None) -> Match | Miss | None:
        """The topic's match for this item, by its model or by similarity; a `Miss` where
        its model scored it under the threshold."""
        st = self.topics[k]
        similarities = self.vectors[k] @ vector if self.vectors[k] is not None else None
        closest = int(similarities.argmax()) if similarities is not None else -1
        semantic = round(float(similarities[closest]), 3) if similarities is not None else None
        if st.model is not None:
            return self._by_model(k, topic, doc, vector, lexical, semantic, closest)
        if lexical is not None:
            return replace(lexical, semantic=semantic)
        if semantic is None:
            return None
        if semantic < st.threshold:
            return Miss(topic.id, semantic, st.threshold, "similarity")
        return Match(topic.id, topic.name, semantic,
                     (f'semantic {semantic:.2f}: close to "{st.texts[closest]}"',),
                     (f"semantic similarity {semantic:.2f} >= {st.threshold:.2f}",), semantic)

    def assess(self, k: int, topic: TopicLike, doc: Doc,
               vector: np.ndarray[Any, Any]) -> Assessment:
        st = self.topics[k]
        similarity = float((self.vectors[k] @ vector).max()) if self.vectors[k] is not None \
            else None
        probability = None
        if st.model is not None:
            probability = float(st.model.score(vector[None, :],
                                               signals(topic, doc)[None, :])[0])
        return Assessment(True, similarity, probability)

    def _by_model(self, k: int, topic: TopicLike, doc: Doc, vector: np.ndarray[Any, Any],
                  lexical: Match | None, semantic: float | None, closest: int) -> Match | Miss:
        st = self.topics[k]
        assert st.model is not None
        probability = float(st.model.score(vector[None, :], signals(topic, doc)[None, :])[0])
        if probability < st.model.threshold:
            return Miss(topic.id, round(probability, 3), st.model.threshold)
        p = round(probability, 3)
        decided = f"model {p:.2f} >= {st.model.threshold:.2f}"
        like = self._like(k, vector)
        if lexical is not None:
            return replace(lexical, score=p, clauses=(*lexical.clauses, decided),
                           semantic=semantic, model=p, like=like)
        evidence = (f'model {p:.2f}: close to "{st.texts[closest]}"',) if closest >= 0 else ()
        return Match(topic.id, topic.name, p, evidence, (decided,), semantic, p, like)

    def _like(self, k: int, vector: np.ndarray[Any, Any]) -> tuple[tuple[str, bool], ...]:
        """The two labelled examples of the topic this item is most alike."""
        vectors, references = self.reference_vectors[k], self.topics[k].references
        if vectors is None:
            return ()
        nearest = self.np.argsort(-(vectors @ vector))[:2]
        return tuple((references[i].text, references[i].relevant) for i in nearest)


def signals(topic: TopicLike, doc: Doc) -> np.ndarray[Any, Any]:
    """The query's signals for a topic's model (learned.SIGNALS, in order)."""
    import numpy

    title = Doc(doc.title, "", doc.lexicon, doc.lang) if doc.summary else doc
    values = (topic.holds(doc), topic.holds(title),
              topic.excluded is not None and topic.excluded(doc), doc.lang in (None, "en"))
    assert len(values) == len(SIGNALS)
    return numpy.asarray(values, dtype=numpy.float64)
