"""Where a topic model cuts: the score above which an item is relevant, chosen on scores it was
not fitted on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figures:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int

    @classmethod
    def of(cls, gold: Sequence[bool], predicted: Sequence[bool]) -> Figures:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g and p)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if p and not g)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g and not p)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        return cls(round(precision, 3), round(recall, 3), round(f1, 3), tp, fp, fn)


def choose_threshold(scores: Sequence[float], gold: Sequence[bool],
                     weights: Sequence[float] | None = None) -> float:
    """The cut with the best F1 (to three places) on held-out scores, ties to the higher, more
    precise one, placed halfway to the next score below so that small shifts do not cross
    it. `weights`: how much each item counts (one each by default; readers' unjudged items
    count for what they stand for, `learned.Unjudged`)."""
    import numpy

    if not len(scores):
        return 0.5
    s = numpy.asarray(scores, dtype=numpy.float64)
    order = numpy.argsort(-s, kind="stable")
    s = s[order]
    g = numpy.asarray(gold, dtype=bool)[order]
    w = (numpy.ones(len(s)) if weights is None else
         numpy.asarray(weights, dtype=numpy.float64)[order])
    tp = numpy.cumsum(w * g)
    fp = numpy.cumsum(w * ~g)
    fn = (w * g).sum() - tp
    cuts = numpy.flatnonzero(numpy.append(s[1:] != s[:-1], True))   # each score's last place
    f1 = [round(float(2 * t / (2 * t + f + n)), 3) if t > 0 else 0.0
          for t, f, n in zip(tp[cuts], fp[cuts], fn[cuts], strict=True)]
    best = int(cuts[f1.index(max(f1))])                     # the first best: the highest cut
    below = float(s[best + 1]) if best + 1 < len(s) else 0.0
    return min(max((float(s[best]) + below) / 2, 0.05), 0.95)
