"""The kernel stage's inputs: an item's likeness to each labelled example.

Likeness is read from a pair's lift, not its raw cosine: the cosine less the mean of how alike
each of the two usually is to the labelled examples (its KERNEL_NEIGHBOURS nearest, itself left
out), as cross-lingual retrieval does against hubs (CSLS, Conneau et al. 2018). e5 puts each
language, and each kind of news, in its own dense corner: an Arabic report is ~0.83 alike to
most Arabic examples, whatever it says, so raw likeness to them says more about its language
than its news. Files of format 2 read the raw cosine (`neighbours` 0) and are scored so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import numpy as np

KERNEL_WIDTH = 0.1     # likeness exp((lift - LIFT_FULL) / width): 0.1 less lift counts e^-1
KERNEL_L2 = 0.03       # ridge on the kernel model's weights (one per example)
# Lift, measured (`bench/eval.py`): a model fitted on the items we wrote alone and scored on the
# lent sets it never saw went from F1 .943/.952/.591 to .982/.953/.836 (ceasefire-talks, dev/
# dev2/dev_ml) and from 1.0/.876/.809 to 1.0/.917/.902 (hostage-releases); cross-validated on
# everything, within -.016..+.003 (dev2 and dev_ml of hostage-releases lost the most).
KERNEL_NEIGHBOURS = 20
LIFT_FULL = 0.15       # the lift of an item to itself, about: likeness 1
SELF = 0.9999          # a cosine this high is the item itself (or its copy): not a neighbour
# Measured on the shipped topics (`newswatch train`'s cross-validation, lent sets): the kernel
# beside the probe moved F1 from .951/.979/.909 to .963/.982/.918 (ceasefire-talks, dev/dev2/
# dev_ml) and from 1.0/.902/.866 to 1.0/.926/.936 (hostage-releases); alone, without the
# probe, it lost .02-.07 on dev_ml. Widths .05-.1 and ridges .01-.03 were within .01 of each
# other (3 deals).


def likeness(vectors: np.ndarray[Any, Any], references: np.ndarray[Any, Any],
             neighbours: int = KERNEL_NEIGHBOURS, usual_references: Any = None
             ) -> np.ndarray[Any, Any]:
    """The kernel model's inputs: each vector's likeness to each reference, from their lift
    (`lifted`; with `neighbours` 0, the raw cosine, as format 2 read it). `usual_references`:
    the references' own `usual`, when already known."""
    import numpy

    sims = vectors @ references.T
    if not neighbours:
        return cast("np.ndarray[Any, Any]", numpy.exp((sims - 1.0) / KERNEL_WIDTH))
    if usual_references is None:
        usual_references = usual(references @ references.T, neighbours)
    return cast("np.ndarray[Any, Any]", numpy.exp(
        (lifted(sims, usual_references, neighbours) - LIFT_FULL) / KERNEL_WIDTH))


def usual(sims: np.ndarray[Any, Any], neighbours: int) -> np.ndarray[Any, Any]:
    """How alike each row's item usually is to the references: the mean of its `neighbours`
    highest cosines, itself (or a copy, cosine >= SELF) left out."""
    import numpy

    return nearest_mean(numpy.where(sims >= SELF, -1.0, sims), neighbours)


def nearest_mean(sims: np.ndarray[Any, Any], neighbours: int) -> np.ndarray[Any, Any]:
    """The mean of each row's `neighbours` highest values (all of them, if fewer)."""
    import numpy

    k = max(1, min(neighbours, sims.shape[1]))
    return cast("np.ndarray[Any, Any]",
                numpy.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(axis=1))


def lifted(sims: np.ndarray[Any, Any], usual_references: np.ndarray[Any, Any],
           neighbours: int) -> np.ndarray[Any, Any]:
    """Each pair's cosine less the mean of how alike its two usually are (half of CSLS)."""
    return cast("np.ndarray[Any, Any]",
                sims - (usual(sims, neighbours)[:, None] + usual_references[None, :]) / 2)
