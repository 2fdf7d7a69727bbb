"""When to try a failed delivery again: exponential backoff with full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass

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


@dataclass(frozen=True)
class FailureDecision:
    """What a failed delivery attempt leads to: another try at `retry_at`, or a dead letter."""

    attempt: int                  # the attempt that failed, counting from 1
    retry_at: float | None        # None: dead
    error: str                    # as recorded (says why it was given up)

    @property
    def dead(self) -> bool:
        return self.retry_at is None


def decide_failure(*, attempts: int, created_at: float, now: float, error: str,
                   retryable: bool, retry_after: float | None, base: float, cap: float,
                   max_age: float, rng: random.Random | None = None) -> FailureDecision:
    """The rule for a failed attempt: a permanent failure (a 4xx other than 408/425/429, a bad
    address) is dead at once; a transient one is tried again after `backoff`, unless that
    would be later than `max_age` seconds after the record was made."""
    attempt = attempts + 1
    if not retryable:
        return FailureDecision(attempt, None, error)
    retry_at = now + backoff(attempt, retry_after=retry_after, base=base, cap=cap, rng=rng)
    if retry_at - created_at > max_age:
        return FailureDecision(attempt, None, f"{error} (gave up after {attempt} attempts)")
    return FailureDecision(attempt, retry_at, error)
