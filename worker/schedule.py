"""When to poll a feed next, and what a poll's answer means for the feed. Pure: no I/O.

Publishers ban rude fetchers: a feed that publishes often is polled more often, a quiet one less,
always within [min_interval, max_interval]; the server's own hints (Cache-Control max-age,
Expires, RSS <ttl>) are honoured within those bounds; errors back off exponentially; a
Retry-After pauses the feed at least that long.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

FASTER, SLOWER = 0.75, 1.25      # interval factors after a poll with / without new entries
MOVED_AFTER = 2                  # a 301 must repeat this many times before the URL changes
_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*(\d+)", re.IGNORECASE)
_TTL = re.compile(rb"<ttl>\s*(\d+)\s*</ttl>", re.IGNORECASE)


@dataclass(frozen=True)
class Bounds:
    minimum: float
    maximum: float

    def clamp(self, seconds: float) -> float:
        return min(self.maximum, max(self.minimum, seconds))


def server_hint(headers: Mapping[str, str], body: bytes = b"",
                now: datetime | None = None) -> float | None:
    """Seconds the server asks us to wait: Cache-Control max-age, else Expires, else RSS <ttl>
    (minutes). None when it says nothing."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if match := _MAX_AGE.search(lowered.get("cache-control", "")):
        return float(match.group(1))
    if expires := lowered.get("expires"):
        try:
            when = email.utils.parsedate_to_datetime(expires)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    if ttl := _TTL.search(body[:20_000]):
        return float(ttl.group(1)) * 60
    return None


def next_interval(current: float, bounds: Bounds, *, new_entries: int,
                  hint: float | None) -> float:
    """The interval after a successful poll: adapt to how often the feed publishes, never
    sooner than the server asks."""
    interval = bounds.clamp(current * (FASTER if new_entries else SLOWER))
    if hint is not None:
        interval = max(interval, bounds.clamp(hint))
    return interval


def error_delay(interval: float, errors: int, bounds: Bounds,
                retry_after: float | None = None) -> float:
    """The wait after the `errors`-th failure in a row: exponential, at most the maximum
    interval, never shorter than a Retry-After."""
    delay = min(bounds.maximum, interval * 2.0 ** max(0, errors - 1))
    return max(delay, retry_after or 0.0)


def moved(previous_target: str | None, previous_count: int, target: str) -> tuple[int, bool]:
    """Count a permanent redirect to `target`; (count, adopt): adopt the new URL once the same
    redirect has been seen MOVED_AFTER times in a row (one 301 may be a publisher's mistake)."""
    count = previous_count + 1 if previous_target == target else 1
    return count, count >= MOVED_AFTER
