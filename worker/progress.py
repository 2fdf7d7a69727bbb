"""Progress bars for long CLI work: drawn on a terminal (stderr), silent when piped or logged."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], *, total: int | None = None, desc: str = "",
             unit: str = "item") -> Iterator[T]:
    """`items`, with a bar on stderr when stderr is a terminal (tqdm's `disable=None`)."""
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, disable=None,
                    leave=False, dynamic_ncols=True, mininterval=0.2)
