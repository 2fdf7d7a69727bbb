"""Topic decisions learned from labelled examples: a model per topic over the item's
multilingual embedding and the query's own signals.

Two stages, both logistic. The first reads the e5 vector of "title. summary" (384 numbers, any
language) twice: a linear probe over it, and a kernel model over its likeness to every labelled
example (exp((lift - LIFT_FULL) / KERNEL_WIDTH), the lift being the pair's cosine over how alike
each usually is to the examples; one weight an example: what the item is most alike
counts, as a person judging by the examples would, and it can draw boundaries that no single
direction in the vector draws). The second weighs the first's two verdicts (their log-odds)
against four signals the topic's words give: the query holds, the query holds in the title
alone, the exclude holds, the item is in English (the language the words were written in). The
exclude stays a veto: an item it holds for is never relevant. The query is evidence the model
weighs, not a gate: "Hamas releases video of hostage" holds the query and is no release;
"Brittney Griner freed in prisoner exchange" holds none of it and is one; and an Arabic report,
which no English word matches, is judged by its vector without the absent words counting
against it as they would in one model (measured: one model over vector and signals lost 0.06 F1
on the other languages and on dev2, the stacked one gains).

The second stage is fitted on the first stage's held-out scores (stacking), so it learns how
far the vector is right on stories it never saw. Training is L2-regularised logistic
regression by Newton's method (exact steps, deterministic: the same data gives the same model
on any machine), cross-validated with folds grouped by story (two reports of one event never
sit on both sides of a fold); the threshold is chosen on the held-out scores for F1, ties to
precision. The artifact is JSON: the fitted numbers, the threshold, the cross-validated
figures, the hash of what it was trained on, and the examples' vectors (float16: the kernel
compares with them); never the items' text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import NewswatchError
from .kernel import KERNEL_L2, KERNEL_NEIGHBOURS, likeness, usual
from .thresholds import Figures, choose_threshold

if TYPE_CHECKING:
    import numpy as np

FORMAT = 3                 # 1: no kernel model; 2: raw likeness (both still read and scored)
SIGNALS = ("query", "query_in_title", "exclude", "english")
VECTOR_L2 = 0.03       # ridge on the first stage's weights (not its bias), when not chosen
# The first stage's ridge is chosen per topic among these, by the cross-validated F1 over all
# its examples (measured on the shipped topics: 0.003-0.03 best, 0.3 lost 0.03-0.07 F1 on the
# other languages; the figures reported are those of the chosen one, so slightly flattering).
VECTOR_L2_CHOICES = (0.003, 0.01, 0.03, 0.1, 0.3)
STACK_L2 = 0.01        # the second stage has six weights and plenty of examples per weight
FOLDS = 10
REPEATS = 5            # cross-validations, each with its own deal of stories into folds


@dataclass(frozen=True)
class Example:
    """One labelled item to train on."""

    title: str
    summary: str
    relevant: bool
    group: str                     # its story: examples of one story stay in one fold
    source: str = ""               # where it came from (a file's name, "examples", "feedback")
    lang: str | None = None


@dataclass(frozen=True)
class Unjudged:
    """Items of the stream the topic did not alert and no reader judged, presumed not
    relevant, that stand beside readers' verdicts when the threshold is chosen: readers judge
    only what they were sent, so verdicts alone are mostly "relevant" and pull the cut down
    (measured: a new topic's threshold fell from 0.40 to 0.08 on 15 relevant verdicts of 20,
    and the alerts that followed were 30% right). Each counts `weight`: the share of alerts
    that got a verdict, so that they stand to the verdicts as the unalerted part of the
    stream stands to the alerted part. The model is not fitted on them."""

    signals: np.ndarray[Any, Any]
    vectors: np.ndarray[Any, Any]
    weight: float


@dataclass(frozen=True)
class TopicModel:
    """A topic's fitted decision. `score` is the probability that an item is relevant."""

    topic: str
    vector_weights: tuple[float, ...]     # the first stage, over the embedding
    vector_bias: float
    stack_weights: tuple[float, ...]      # the second: the probe's and the kernel's log-odds
    stack_bias: float                     # (format 1: the probe's only), then SIGNALS
    threshold: float
    trained_on: str                # sha256 of the examples (text and labels) and settings
    trained_at: str
    embedding: str                 # the embedding model's name: vectors must come from it
    examples: dict[str, int] = field(default_factory=dict)     # relevant / not relevant
    cv: dict[str, dict[str, Any]] = field(default_factory=dict)    # per source: Figures
    vector_l2: float = VECTOR_L2                                    # the ridge it was fitted with
    kernel_weights: tuple[float, ...] = ()     # one per reference; () in format 1
    kernel_bias: float = 0.0
    references: str = ""           # the examples' vectors: float16, row by row, base64
    kernel_neighbours: int = 0     # likeness by lift over this many neighbours; 0: raw (format 2)
    words: str = ""                # words_hash of the query and exclude its signals came from;
                                   # "" in files written before it was kept: not known
    _arrays: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def reference_vectors(self) -> np.ndarray[Any, Any]:
        """The labelled examples' vectors the kernel model compares an item with."""
        return cast("np.ndarray[Any, Any]", self._made()["references"])

    def _made(self) -> dict[str, Any]:
        """The numbers as arrays, made once (the vectors decoded once): a model scores every
        item a worker embeds, and "like:" reads the same vectors."""
        import numpy

        a = self._arrays
        if not a:
            made = {"vector": numpy.asarray(self.vector_weights, dtype=numpy.float32),
                    "stack": numpy.asarray(self.stack_weights)}
            if self.kernel_weights:
                flat = numpy.frombuffer(base64.b64decode(self.references), dtype="<f2")
                made["kernel"] = numpy.asarray(self.kernel_weights, dtype=numpy.float32)
                made["references"] = flat.reshape(len(self.kernel_weights), -1).astype(
                    numpy.float32)
                if self.kernel_neighbours:
                    refs = made["references"]
                    made["usual"] = usual(refs @ refs.T, self.kernel_neighbours)
            a.update(made)         # at once: another thread sees all of it or none
        return a

    def _check_references(self) -> None:
        """The vector blob decodes to one float16 vector per kernel weight, each as long as
        the vector weights: checked without numpy, which a run that scores nothing never
        imports (0.08 s)."""
        if not self.kernel_weights:
            return
        size = len(base64.b64decode(self.references, validate=True))
        expected = 2 * len(self.kernel_weights) * len(self.vector_weights)
        if size != expected:
            raise ValueError(f"references hold {size} bytes, expected {expected}")

    def score(self, vectors: np.ndarray[Any, Any], signals: np.ndarray[Any, Any]
              ) -> np.ndarray[Any, Any]:
        """Probabilities for n vectors and their (n, len(SIGNALS)) signals."""
        import numpy

        a = self._made()
        first = [vectors @ a["vector"] + self.vector_bias]
        if "kernel" in a:
            first.append(likeness(vectors, a["references"], self.kernel_neighbours,
                                  a.get("usual")) @ a["kernel"] + self.kernel_bias)
        verdicts = numpy.clip(numpy.column_stack(first), -40, 40)
        z = numpy.hstack([verdicts, signals]) @ a["stack"] + self.stack_bias
        return vetoed(_probability(z), signals)

    def to_json(self) -> str:
        """One key a line (the weights on theirs), numbers rounded: a readable, diffable file."""
        data = {"format": FORMAT, "signals": list(SIGNALS), **asdict(self)}
        del data["_arrays"]
        for name in ("vector_weights", "stack_weights", "kernel_weights"):
            data[name] = [round(w, 6) for w in data[name]]
        for name in ("vector_bias", "stack_bias", "kernel_bias"):
            data[name] = round(data[name], 6)
        data["threshold"] = round(self.threshold, 4)
        lines = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                 for k, v in data.items()]
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str, origin: str = "model") -> TopicModel:
        try:
            data = json.loads(text)
            if data.get("format") not in (1, 2, FORMAT) or data.get("signals") != list(SIGNALS):
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            model = cls(str(data["topic"]), tuple(map(float, data["vector_weights"])),
                        float(data["vector_bias"]), tuple(map(float, data["stack_weights"])),
                        float(data["stack_bias"]), float(data["threshold"]),
                        str(data["trained_on"]), str(data["trained_at"]),
                        str(data["embedding"]), dict(data.get("examples", {})),
                        dict(data.get("cv", {})), float(data.get("vector_l2", VECTOR_L2)),
                        tuple(map(float, data.get("kernel_weights", ()))),
                        float(data.get("kernel_bias", 0.0)), str(data.get("references", "")),
                        int(data.get("kernel_neighbours", 0)), str(data.get("words", "")))
            verdicts = 2 if model.kernel_weights else 1
            if len(model.stack_weights) != verdicts + len(SIGNALS):
                raise ValueError(f"{len(model.stack_weights)} stack weights, expected "
                                 f"{verdicts + len(SIGNALS)}")
            model._check_references()      # a broken vector blob is named now, not later
            return model
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise NewswatchError(f"{origin}: not a topic model newswatch can read: {exc}"
                                 ) from None

    @classmethod
    def load(cls, path: Path) -> TopicModel:
        try:
            return cls.from_json(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise NewswatchError(f"{path}: cannot read the topic model: "
                                 f"{exc.strerror or exc}") from None


def fit(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any], l2: float = VECTOR_L2,
        steps: int = 50) -> tuple[np.ndarray[Any, Any], float]:
    """L2-regularised logistic regression by Newton's method, classes weighted to balance
    (weights, bias). Exact: each step solves the Hessian's system; stops when the step is
    below 1e-9."""
    import numpy

    x = numpy.asarray(x, dtype=numpy.float64)
    y = numpy.asarray(y, dtype=numpy.float64)
    n, d = x.shape
    positives = max(1.0, y.sum())
    negatives = max(1.0, n - y.sum())
    weight = numpy.where(y > 0, n / (2 * positives), n / (2 * negatives))
    a = numpy.hstack([x, numpy.ones((n, 1))])
    ridge = numpy.full(d + 1, l2)
    ridge[-1] = 0.0                                    # the bias is not shrunk
    beta = numpy.zeros(d + 1)
    for _ in range(steps):
        p = 1.0 / (1.0 + numpy.exp(-numpy.clip(a @ beta, -40, 40)))
        gradient = a.T @ (weight * (p - y)) + ridge * beta
        hessian = (a * (weight * p * (1 - p))[:, None]).T @ a + numpy.diag(ridge + 1e-9)
        step = numpy.linalg.solve(hessian, gradient)
        beta -= step
        if float(numpy.abs(step).max()) < 1e-9:
            break
    return beta[:-1], float(beta[-1])


def folds(groups: Sequence[str], k: int = FOLDS, deal: int = 0) -> list[int]:
    """A fold number per example; every example of one group in the same fold, groups dealt
    by a hash of their name and the deal's number (stable across runs and machines)."""
    return [int(hashlib.sha256(f"{deal}:{g}".encode()).hexdigest(), 16) % k for g in groups]


def cross_validated(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any],
                    groups: Sequence[str], l2: float = VECTOR_L2, k: int = FOLDS,
                    deal: int = 0, kernel: bool = False) -> np.ndarray[Any, Any]:
    """Each example's log-odds from a model that never saw its story: a linear one over x,
    or with `kernel` one over x's likeness to the training side's vectors."""
    import numpy

    fold = numpy.asarray(folds(groups, k, deal))
    out = numpy.zeros(len(y))
    for f in range(k):
        test = fold == f
        if not test.any() or test.all():
            continue
        train = ~test
        if y[train].min() == y[train].max():         # one class only: nothing to learn
            out[test] = 40.0 if y[train][0] else -40.0
            continue
        features = likeness(x, x[train]) if kernel else x
        w, b = fit(features[train], y[train], l2)
        out[test] = features[test] @ w + b
    return out


def training_hash(examples: Iterable[Example], embedding: str) -> str:
    """What a model was trained on: every example's text and label, and the embedding.
    Readers' feedback is counted apart (the model file says how much): it lives in Redis,
    where `check`, which reads only files, cannot see it."""
    digest = hashlib.sha256(f"format {FORMAT}\n{embedding}\n".encode())
    kept = [e for e in examples if e.source != "feedback"]
    for e in sorted(kept, key=lambda e: (e.source, e.group, e.title, e.summary)):
        digest.update(json.dumps([e.title, e.summary, e.relevant, e.group],
                                 ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def words_hash(query: str, exclude: str | None) -> str:
    """What a model's signals were computed with: the topic's query and exclude. The second
    stage weighs what they said of each example; other words say other things, and the
    weights no longer fit them."""
    return hashlib.sha256(f"{query}\n{exclude or ''}".encode()).hexdigest()


def train(topic: str, examples: Sequence[Example], signals: np.ndarray[Any, Any],
          vectors: np.ndarray[Any, Any], embedding: str, words: str = "",
          l2_choices: Sequence[float] = VECTOR_L2_CHOICES, unjudged: Unjudged | None = None
          ) -> TopicModel:
    """Fit a topic's two stages on all its examples; report the cross-validated figures per
    source, at the threshold the cross-validation chose (with `unjudged` beside it, scored by
    the fitted model). `words`: the words_hash of the query and exclude that gave `signals`;
    `l2_choices`: the first stage's ridges to choose from."""
    import numpy

    if not examples:
        raise NewswatchError(f"topic {topic!r}: no labelled examples to train on")
    y = numpy.asarray([e.relevant for e in examples], dtype=numpy.float64)
    if y.min() == y.max():
        raise NewswatchError(f"topic {topic!r}: the examples are all "
                             f"{'relevant' if y[0] else 'not relevant'}; a model needs both")
    # The vectors as the model file keeps them (float16), so that what it scores with is what
    # it was fitted on.
    kept = numpy.asarray(vectors, dtype="<f2")
    vectors = kept.astype(numpy.float64)
    signals = numpy.asarray(signals, dtype=numpy.float64)
    l2, threshold, runs = select(examples, signals, vectors, l2_choices)
    stacked = runs[0][1]
    vector_weights, vector_bias = fit(vectors, y, l2)
    kernel_weights, kernel_bias = fit(likeness(vectors, vectors), y, KERNEL_L2)   # lift
    stack_weights, stack_bias = fit(stacked, y, STACK_L2)
    counts = {"feedback": sum(1 for e in examples if e.source == "feedback")}
    model = TopicModel(topic, tuple(map(float, vector_weights)), vector_bias,
                      tuple(map(float, stack_weights)), stack_bias, threshold,
                      training_hash(examples, embedding),
                      datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), embedding,
                      {"relevant": int(y.sum()), "not relevant": int(len(y) - y.sum())}, {},
                      l2, tuple(map(float, kernel_weights)), kernel_bias,
                      base64.b64encode(kept.tobytes()).decode("ascii"), KERNEL_NEIGHBOURS,
                      words)
    held_out = [run for run, _ in runs]
    if unjudged is not None and unjudged.weight > 0:
        presumed = model.score(numpy.asarray(unjudged.vectors, dtype=numpy.float32),
                               numpy.asarray(unjudged.signals, dtype=numpy.float64)).tolist()
        threshold = choose_threshold(
            [p for run in held_out for p in run.tolist()] + presumed,
            [e.relevant for e in examples] * len(held_out) + [False] * len(presumed),
            [1.0] * len(examples) * len(held_out) + [unjudged.weight * len(held_out)]
            * len(presumed))
        counts["unjudged"] = len(presumed)
    return replace(model, threshold=threshold, cv=figures(examples, held_out, threshold),
                   examples={**model.examples, **counts})


def select(examples: Sequence[Example], signals: np.ndarray[Any, Any],
           vectors: np.ndarray[Any, Any], l2_choices: Sequence[float] = VECTOR_L2_CHOICES
           ) -> tuple[float, float, list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]]:
    """The first stage's ridge (of `l2_choices`) and the threshold with the best
    cross-validated F1 over all examples, and its REPEATS cross-validations (`evaluate`'s)."""
    gold = [e.relevant for e in examples] * REPEATS
    best: tuple[float, float, float, list[Any]] | None = None     # f1, l2, threshold, runs
    kernels = [kernel_verdicts(examples, vectors, deal) for deal in range(REPEATS)]
    for l2 in l2_choices:
        runs = [evaluate(examples, signals, vectors, deal, l2, kernels[deal])
                for deal in range(REPEATS)]
        held_out = [p for run, _ in runs for p in run.tolist()]
        threshold = choose_threshold(held_out, gold)
        f1 = Figures.of(gold, [p >= threshold for p in held_out]).f1
        if best is None or f1 > best[0] + 1e-9:
            best = (f1, l2, threshold, runs)
    assert best is not None
    return best[1], best[2], best[3]


def kernel_verdicts(examples: Sequence[Example], vectors: np.ndarray[Any, Any], deal: int = 0
                    ) -> np.ndarray[Any, Any]:
    """The kernel model's held-out log-odds of each example (folds as `evaluate` deals them)."""
    import numpy

    y = numpy.asarray([e.relevant for e in examples], dtype=numpy.float64)
    groups = [f"{e.source}:{e.group}" for e in examples]
    return cast("np.ndarray[Any, Any]", numpy.clip(
        cross_validated(vectors, y, groups, KERNEL_L2, deal=deal, kernel=True), -40, 40))


def evaluate(examples: Sequence[Example], signals: np.ndarray[Any, Any],
             vectors: np.ndarray[Any, Any], deal: int = 0, l2: float = VECTOR_L2,
             kernel: np.ndarray[Any, Any] | None = None
             ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each example's probability from models that never saw its story (both stages
    cross-validated by story, stories dealt into folds by `deal`), and the second stage's
    inputs (the first stage's held-out log-odds, probe and kernel, beside the signals).
    `kernel`: the kernel's verdicts for this deal, when already computed."""
    import numpy

    y = numpy.asarray([e.relevant for e in examples], dtype=numpy.float64)
    groups = [f"{e.source}:{e.group}" for e in examples]
    first = numpy.clip(cross_validated(vectors, y, groups, l2, deal=deal), -40, 40)
    if kernel is None:
        kernel = kernel_verdicts(examples, vectors, deal)
    stacked = numpy.hstack([first[:, None], kernel[:, None], signals])
    return vetoed(_probability(cross_validated(stacked, y, groups, STACK_L2, deal=deal)),
                  signals), stacked


def vetoed(probability: np.ndarray[Any, Any], signals: np.ndarray[Any, Any]
           ) -> np.ndarray[Any, Any]:
    """No item the topic's exclude holds for is relevant, whatever the model says: the
    exclude is the user's own veto (measured: as a weighed signal only, "Derby ends in
    goalless truce; talks of a signing" passed, and dev/dev2 F1 was 0.024/0.008 lower)."""
    import numpy

    exclude = SIGNALS.index("exclude")
    return cast("np.ndarray[Any, Any]", numpy.where(signals[:, exclude] > 0, 0.0, probability))


def figures(examples: Sequence[Example], runs: Sequence[np.ndarray[Any, Any]],
            threshold: float) -> dict[str, dict[str, Any]]:
    """Precision, recall and F1 per source and in all, over every cross-validation (counts
    are per run, rounded)."""
    out: dict[str, dict[str, Any]] = {}
    sources = [*dict.fromkeys(e.source for e in examples), "all"]
    for source in sources:
        chosen = [i for i, e in enumerate(examples) if source in ("all", e.source)]
        gold = [examples[i].relevant for i in chosen] * len(runs)
        said = [bool(run[i] >= threshold) for run in runs for i in chosen]
        f = Figures.of(gold, said)
        out[source] = {**asdict(f), "tp": round(f.tp / len(runs)), "fp": round(f.fp / len(runs)),
                       "fn": round(f.fn / len(runs))}
    return out


def _probability(log_odds: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import numpy

    return cast("np.ndarray[Any, Any]", 1.0 / (1.0 + numpy.exp(-numpy.clip(log_odds, -40, 40))))


