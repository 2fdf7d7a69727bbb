"""When to try a failed delivery again: exponential backoff with full jitter."""

from __future__ import annotations

import random

BASE_DELAY = 2.0
MAX_DELAY = 600.0
RETRYABLE_STATUS = frozenset({408, 425, 429}) | frozenset(range(500, 600))


def backoff(attempt: int, *, retry_after: float | None = None, base: float = BASE_DELAY,
            cap: float = MAX_DELAY, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt `attempt + 1` (attempt counts from 1).

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads a herd of
    retries; a server's Retry-After is a floor we never go under.
    """
    ceiling = min(cap, base * 2 ** (attempt - 1))
    delay = (rng or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
