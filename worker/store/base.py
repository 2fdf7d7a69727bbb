"""The connection every part of the store shares: client, key prefix, lifetimes; errors; the
explicit write batch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import redis

from ..errors import NewswatchError

DAY = 86_400

# What "Redis cannot be reached" looks like from redis-py (for callers that must not import it).
UNAVAILABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError,
                                            redis.BusyLoadingError)


class Unavailable(NewswatchError):
    """Redis could not be reached; names the server."""

    def __init__(self, where: str, cause: BaseException) -> None:
        self.where = where
        super().__init__(f"cannot reach Redis at {where}: {_first_line(cause)}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def short_hash(value: str) -> str:
    """A key-sized digest of a URL or an id (never read back for meaning)."""
    return hashlib.sha1(value.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Db:
    """A Redis client with newswatch's key prefix and the lifetimes its keys live by."""

    r: redis.Redis
    prefix: str = "nw"
    seen_ttl: int = 30 * DAY           # entries, alerts: seconds
    window: int = 72 * 3600            # story window: seconds
    recent_max: int = 100_000          # entries remembered for backtests
    recent_age: int = 7 * DAY          # ... at most this long

    def k(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))


@dataclass
class Writes:
    """Writes queued in one pipeline and sent in one round trip by `send` (a poll batch's
    bookkeeping). Only writes go in: a read queued here would answer nothing. Counters are
    summed and sent as one command each."""

    db: Db
    pipe: Any = None
    counts: dict[tuple[str, str], int] = field(default_factory=dict)   # (hash, field) -> by

    def __post_init__(self) -> None:
        if self.pipe is None:
            self.pipe = self.db.r.pipeline(transaction=False)

    def count(self, name: str, by: int = 1, *, key: str | None = None) -> None:
        """Add to a counter: field `name` of hash `key` (default P:stats)."""
        where = (key or self.db.k("stats"), name)
        self.counts[where] = self.counts.get(where, 0) + by

    def send(self) -> None:
        for (key, name), by in self.counts.items():
            self.pipe.hincrby(key, name, by)
        self.counts = {}
        self.pipe.execute()


class Part:
    """One concept's keys (feeds, entries, stories, delivery records, feedback, counters)."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.r = db.r

    def k(self, *parts: str) -> str:
        return self.db.k(*parts)

    def _writes(self, writes: Writes | None) -> Writes:
        """The caller's batch, or one of our own (sent by `_done`)."""
        return writes if writes is not None else Writes(self.db)

    @staticmethod
    def _done(own: Writes, given: Writes | None) -> None:
        if given is None:
            own.send()
