"""The presearch index and compiled tests are optimisations: they must never change a result."""

from __future__ import annotations

import random

from tests.conftest import DATA, SEEDS
from worker.classify import Classifier
from worker.classify.text import Lexicon, words_of
from worker.config import TopicConfig
from worker.parse import parse_feed

VOCAB = ("ceasefire truce talks negotiations hostages released freed army rebels deal "
         "agreement gaza doha israel hamas sudan prisoners exchange mediators peace war "
         "fighting captives kidnapped tariff trade football derby earthquake").split()


def texts() -> list[tuple[str, str]]:
    out = []
    for path in [*SEEDS.glob("*.*"), DATA / "broken.xml", DATA / "noguid.xml"]:
        if path.suffix in (".xml", ".atom", ".json"):
            out += [(e.title, e.summary) for e in parse_feed(
                path.read_bytes(), url=path.as_uri(), feed_id="f", feed_name="")]
    rng = random.Random(7)
    out += [(" ".join(rng.choices(VOCAB, k=6)), " ".join(rng.choices(VOCAB, k=20)))
            for _ in range(300)]
    return out


def topics(n: int, seed: int) -> dict[str, TopicConfig]:
    rng = random.Random(seed)

    def w() -> str:
        return rng.choice(VOCAB)

    forms = [
        lambda: f"({w()} OR {w()} OR {w()[:4]}*) AND ({w()} OR \"{w()} {w()}\")",
        lambda: f"{w()} NEAR/3 ({w()} OR {w()})",
        lambda: f"\"{w()} {w()}\" OR ({w()} AND {w()} AND NOT {w()})",
        lambda: f"title:({w()} OR {w()}) AND summary:{w()[:4]}*",
        lambda: f"({w()} OR {w()}) {w()} NOT ({w()} OR {w()})",
        lambda: f"NOT {w()}",
        lambda: f"cease-fire AND ({w()} OR {w()}*)",
    ]
    return {f"t{i}": TopicConfig(name=f"T{i}", query=rng.choice(forms)(),
                                 exclude=w() if rng.random() < 0.3 else None)
            for i in range(n)}


def test_index_and_compiled_tests_match_checking_every_topic() -> None:
    corpus = texts()
    for seed in range(3):
        classifier = Classifier(topics(300, seed))
        matched = 0
        for title, summary in corpus:
            fast = classifier.classify(title, summary)
            slow = classifier.classify(title, summary, naive=True)
            assert fast == slow, (title, summary)
            matched += len(fast)
        assert matched > 100          # the comparison is not vacuous


def test_words_learned_together_have_the_facts_of_words_learned_one_by_one() -> None:
    """A Doc works out its new words in one batch (one call to the stemmer): each word's
    stem, keys, tracked prefixes and admitted topics are what it gets alone, in every
    language a lexicon stems and with every prefix tracked."""
    classifier = Classifier(topics(300, 1))
    words = sorted({w for t, s in texts() for w in words_of(f"{t} {s}")})
    words += words_of("الرهائن والأسرى otages libérés Geiseln freigelassen заложники "
                      "החטופים שוחררו rehenes liberados")
    known = classifier.lexicon.known
    assert known                                   # the topics track some prefixes
    for lang in (None, "fr", "ar", "de", "ru", "he", "es"):
        for prefixes in (known, None):
            together = Lexicon(prefixes, classifier.index, lang).learn(words)
            alone = [Lexicon(prefixes, classifier.index, lang).learn([w])[0] for w in words]
            assert together == alone, lang
    held = [f for f in together if f[2] or f[3]]
    assert 0 < len(held) < len(words)              # the comparison is not vacuous
    assert any(k.endswith("*") for f in together for k in f[1])


def test_compiled_tests_agree_with_the_query_tree() -> None:

    classifier = Classifier(topics(300, 11))
    for title, summary in texts():
        doc = classifier.doc(title, summary)
        for topic in classifier.topics:
            assert topic.holds(doc) == (topic.query.match(doc) is not None), topic.query
            assert topic.holds(doc) == topic.query.holds(doc)
