"""Entries: taken in once (seen marks), their data until processed, the pending queue, and the
recent stream that `newswatch backtest` replays."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from ..models import Entry
from .base import Db, Part, short_hash

# Take in an entry once: mark it seen, keep its data, queue it for processing, in one step.
_ADD_ENTRIES = """
local added = {}
for i = 3, #KEYS, 2 do
  local n = (i - 1) / 2
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    local ek = ARGV[2 + 2 * n]
    redis.call('SET', KEYS[i + 1], ARGV[3 + 2 * n], 'EX', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[2], ek)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'k', ek)
    added[n] = 1
  else
    added[n] = 0
  end
end
return added
"""



class Entries(Part):
    """P:seen:{feed}:{h}, P:entry:{feed}:{h}, P:pending:entries (zset), P:recent (stream)."""

    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self._add_entries = db.r.register_script(_ADD_ENTRIES)

    @staticmethod
    def key(entry: Entry) -> str:
        return f"{entry.feed_id}:{short_hash(entry.entry_id)}"

    def add_new(self, entries: Iterable[Entry]) -> list[str]:
        """Take in one feed's entries never seen before (one script: atomic for the feed);
        return their keys, queued for processing and remembered for backtests."""
        entries = list(entries)
        if not entries:
            return []
        keys = [self.key(entry) for entry in entries]
        redis_keys = [self.k("pending", "entries"), self.k("recent")]
        args: list[Any] = [self.db.seen_ttl, time.time(), self.db.recent_max]
        for entry, ek in zip(entries, keys, strict=True):
            redis_keys += [self.k("seen", ek), self.k("entry", ek)]
            args += [ek, json.dumps(entry.to_dict())]
        added = cast(list[int], self._add_entries(keys=redis_keys, args=args))
        return [ek for ek, new in zip(keys, added, strict=True) if new]

    def trim_recent(self, now: float | None = None) -> None:
        """Drop recent-entry records older than the backtest window (`maintain` calls this)."""
        oldest_ms = int(((now or time.time()) - self.db.recent_age) * 1000)
        self.r.xtrim(self.k("recent"), minid=f"{oldest_ms}-0", approximate=False)

    def recent(self, since: float, batch: int = 1000) -> Iterator[list[Entry]]:
        """The entries taken in since `since` (unix seconds), oldest first, in batches."""
        start = f"{int(since * 1000)}-0"
        while True:
            rows = cast(list[tuple[str, dict[str, str]]],
                        self.r.xrange(self.k("recent"), min=start, count=batch))
            if not rows:
                return
            keys = [self.k("entry", fields["k"]) for _, fields in rows]
            raws = cast(list[str | None], self.r.mget(keys))
            yield [Entry.from_dict(json.loads(raw)) for raw in raws if raw]
            start = "(" + rows[-1][0]

    def load(self, entry_key: str) -> Entry | None:
        raw = self.r.get(self.k("entry", entry_key))
        return Entry.from_dict(json.loads(cast(str, raw))) if raw else None

    def load_many(self, entry_keys: Sequence[str]) -> list[Entry | None]:
        """Many entries in one round trip (None: aged out)."""
        if not entry_keys:
            return []
        raws = cast(list[str | None], self.r.mget([self.k("entry", k) for k in entry_keys]))
        return [Entry.from_dict(json.loads(raw)) if raw else None for raw in raws]

    def done(self, *entry_keys: str) -> None:
        if entry_keys:
            self.r.zrem(self.k("pending", "entries"), *entry_keys)

    def pending(self) -> set[str]:
        return set(cast(list[str], self.r.zrange(self.k("pending", "entries"), 0, -1)))

    def stale(self, older_than: float) -> list[str]:
        """Entries taken in before `older_than` and still unprocessed (a worker died); they are
        touched so that the next sweep leaves them alone for a while."""
        key = self.k("pending", "entries")
        stale = cast(list[str], self.r.zrangebyscore(key, "-inf", older_than))
        if stale:
            self.r.zadd(key, dict.fromkeys(stale, time.time()), xx=True)
        return stale
