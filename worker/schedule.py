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


@dataclass(frozen=True)
class Fetched:
    """A poll that got an answer: new content, the same content, or 304."""

    status: str                     # ok | unchanged | not_modified
    new_entries: int
    hint: float | None              # the server's own wait (server_hint)
    moved_to: str | None            # a permanent redirect's target, if one was followed
    body_hash: str | None = None    # of a body taken in (ok)


@dataclass(frozen=True)
class Failed:
    """A poll that failed: the fetch, the parse, or something unforeseen."""

    error: str
    http_status: int | None = None
    retry_after: float | None = None
    kind: str = "fetch"             # for operators: "HTTP 503", "timeout", "not a feed", ...


@dataclass(frozen=True)
class FeedNow:
    """What the decision needs of a feed's state before the poll."""

    interval: float                 # in force
    error_count: int                # failures in a row so far
    moved_target: str | None = None
    moved_count: int = 0
    pushed: bool = False            # an active WebSub subscription brings its news


@dataclass(frozen=True)
class PollDecision:
    """What a poll's answer means for the feed; the store applies it."""

    status: str                     # ok | unchanged | not_modified | error | gone
    error: str | None
    fields: dict[str, str | float | int]    # feed-state fields to set (`interval`, `url`, ...)
    next_poll_at: float | None      # None: not polled again (gone)
    pause_host_for: float | None = None     # the host asked everyone to wait (429/503)
    notify: str | None = None       # tell the operators: "gone" or "failing"
    adopted: str | None = None      # the URL the feed moved to, adopted now


def decide_poll(feed: FeedNow, got: Fetched | Failed, *, bounds: Bounds, started: float,
                operator_alert_after: int) -> PollDecision:
    """The one rule for a poll's consequences. Success: the interval adapts to what the feed
    publishes (within bounds, never sooner than the server asks), and while pushes bring the
    news it is polled at the bounds' maximum. A repeated 301 becomes the feed's URL. Failure:
    410 stops polling and tells the operators; 429/503 with Retry-After pauses the host;
    errors back off exponentially; the operators hear once per failure streak, when it
    reaches `operator_alert_after`. Times count from when the poll began."""
    if isinstance(got, Fetched):
        interval = next_interval(feed.interval, bounds, new_entries=got.new_entries,
                                 hint=got.hint)
        fields: dict[str, str | float | int] = {"interval": interval}
        if got.body_hash:
            fields["body_hash"] = got.body_hash
        adopted = None
        if got.moved_to is None:
            if feed.moved_count:
                fields.update(moved_target="", moved_count=0)
        else:
            count, adopt = moved(feed.moved_target, feed.moved_count, got.moved_to)
            if adopt:
                fields.update(url=got.moved_to, moved_target="", moved_count=0)
                adopted = got.moved_to
            else:
                fields.update(moved_target=got.moved_to, moved_count=count)
        delay = bounds.maximum if feed.pushed else interval
        return PollDecision(got.status, None, fields, started + delay, adopted=adopted)
    errors = feed.error_count + 1
    if got.http_status == 410:
        return PollDecision("gone", got.error, {"gone": 1}, None, notify="gone")
    pause = got.retry_after if got.http_status in (429, 503) and got.retry_after else None
    delay = error_delay(feed.interval, errors, bounds, got.retry_after)
    return PollDecision("error", got.error, {}, started + delay, pause,
                        "failing" if errors == operator_alert_after else None)
