"""Entries: taken in once (seen marks), their data until processed, the pending queue, and the
recent stream that `newswatch backtest` replays."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

from ..models import Entry
from .base import DAY, Db, Part, Writes, short_hash

# Take in a feed's entries once: a compact seen mark (a field of the feed's hash), the data
# until processed, the pending queue, and the recent stream (with the data, for backtests).
# KEYS: pending zset, recent stream, the feed's seen hash, then per entry: its seen key as
# newswatch <= 0.1 wrote it (still honoured while it lives), its data key.
# ARGV: data TTL, now, recent max, seen TTL, today (days since 1970), trim above, then per
# entry: its seen field, its entry key, its JSON. Returns 1/0 per entry: new or seen.
_ADD_ENTRIES = """
local added = {}
local count = (#KEYS - 3) / 2
for n = 0, count - 1 do
  local field, ek, data = ARGV[7 + 3 * n], ARGV[8 + 3 * n], ARGV[9 + 3 * n]
  if redis.call('HEXISTS', KEYS[3], field) == 1 or redis.call('EXISTS', KEYS[4 + 2 * n]) == 1 then
    added[n + 1] = 0
  else
    redis.call('HSET', KEYS[3], field, ARGV[5])
    redis.call('SET', KEYS[5 + 2 * n], data, 'EX', ARGV[1])
    redis.call('ZADD', KEYS[1], ARGV[2], ek)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'k', ek, 'd', data)
    added[n + 1] = 1
  end
end
redis.call('EXPIRE', KEYS[3], ARGV[4])
if redis.call('HLEN', KEYS[3]) > tonumber(ARGV[6]) then
  local oldest = tonumber(ARGV[5]) - math.floor(tonumber(ARGV[4]) / 86400)
  local all = redis.call('HGETALL', KEYS[3])
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) < oldest then redis.call('HDEL', KEYS[3], all[i]) end
  end
end
return added
"""
SEEN_TRIM = 2000      # a feed's seen marks past this many are swept of those older than the TTL


class Entries(Part):
    """P:seenby:{feed} (hash: entry hash -> day), P:entry:{feed}:{h} (until processed),
    P:working:{feed}:{h} (while a worker processes it), P:pending:entries (zset), P:recent
    (stream of entry keys and data)."""

    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self._add_entries = db.r.register_script(_ADD_ENTRIES)

    @staticmethod
    def key(entry: Entry) -> str:
        return f"{entry.feed_id}:{short_hash(entry.entry_id)}"

    def known(self, feed_id: str, entry_ids: Sequence[str]) -> set[str]:
        """Which of a feed's entry ids were taken in already (by their seen marks; the few
        older marks are left to `add_new`, which checks them too); and the marks' lifetime
        renewed, as `add_new` does for every feed it is given, since a feed whose entries are
        all known reaches no `add_new`. One round trip."""
        if not entry_ids:
            return set()
        pipe = self.r.pipeline(transaction=False)
        key = self.k("seenby", feed_id)
        pipe.hmget(key, [short_hash(i) for i in entry_ids])
        pipe.expire(key, self.db.seen_ttl)
        marks, _ = pipe.execute()
        return {i for i, mark in zip(entry_ids, marks, strict=True) if mark is not None}

    def add_new(self, entries: Iterable[Entry]) -> list[str]:
        """Take in entries never seen before (one script per feed: atomic for the feed);
        return their keys, queued for processing and remembered for backtests. What stays
        once an entry is processed is its seen mark (~70 bytes) and, inside the backtest
        window, its stream record."""
        by_feed: dict[str, list[Entry]] = {}
        for entry in entries:
            by_feed.setdefault(entry.feed_id, []).append(entry)
        now = time.time()
        new: list[str] = []
        for feed_id, mine in by_feed.items():
            keys = [self.key(entry) for entry in mine]
            redis_keys = [self.k("pending", "entries"), self.k("recent"),
                          self.k("seenby", feed_id)]
            args: list[Any] = [self.db.seen_ttl, now, self.db.recent_max, self.db.seen_ttl,
                               int(now // DAY), SEEN_TRIM]
            for entry, ek in zip(mine, keys, strict=True):
                redis_keys += [self.k("seen", ek), self.k("entry", ek)]
                args += [ek.rpartition(":")[2], ek, json.dumps(entry.to_dict())]
            added = cast(list[int], self._add_entries(keys=redis_keys, args=args))
            new += [ek for ek, fresh in zip(keys, added, strict=True) if fresh]
        return new

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
            yield self._entries(rows)
            start = "(" + rows[-1][0]

    def latest(self, count: int) -> list[Entry]:
        """The `count` entries taken in last, newest first."""
        return self._entries(cast(list[tuple[str, dict[str, str]]],
                                  self.r.xrevrange(self.k("recent"), count=count)))

    def _entries(self, rows: list[tuple[str, dict[str, str]]]) -> list[Entry]:
        """Records of the recent stream as entries (older records name the entry's key)."""
        legacy = [self.k("entry", fields["k"]) for _, fields in rows if "d" not in fields]
        kept = dict(zip(legacy, cast(list[str | None], self.r.mget(legacy)),
                        strict=True)) if legacy else {}
        raws = [fields.get("d") or kept.get(self.k("entry", fields["k"])) for _, fields in rows]
        return [Entry.from_dict(json.loads(raw)) for raw in raws if raw]

    def load(self, entry_key: str) -> Entry | None:
        raw = self.r.get(self.k("entry", entry_key))
        return Entry.from_dict(json.loads(cast(str, raw))) if raw else None

    def claim(self, entry_keys: Sequence[str], ttl: float) -> list[tuple[str, Entry | None]]:
        """The entries this worker may process now, loaded in the same round trip: those no
        other is processing (None: aged out). A sweep re-enqueues an entry left pending too
        long (`stale`), which is also what a slow batch looks like; without the claim both
        would classify it (its matches counted twice). A claim lapses after `ttl` seconds, so
        a dead worker's entries are taken up again."""
        if not entry_keys:
            return []
        pipe = self.r.pipeline()
        for key in entry_keys:
            pipe.set(self.k("working", key), "1", nx=True, px=max(1, int(ttl * 1000)))
        pipe.mget([self.k("entry", k) for k in entry_keys])
        *took, raws = pipe.execute()
        return [(key, Entry.from_dict(json.loads(raw)) if raw else None)
                for key, ok, raw in zip(entry_keys, took, raws, strict=True) if ok]

    def release(self, *entry_keys: str) -> None:
        """Give the claims up (processing failed: a retry may take the entries at once)."""
        if entry_keys:
            self.r.delete(*(self.k("working", k) for k in entry_keys))

    def done(self, *entry_keys: str, writes: Writes | None = None) -> None:
        """Processed: out of the queue, and its data and claim let go (the stream keeps a copy
        for backtests, a story its own)."""
        if entry_keys:
            w = self._writes(writes)
            w.pipe.zrem(self.k("pending", "entries"), *entry_keys)
            w.pipe.delete(*(self.k("entry", k) for k in entry_keys),
                          *(self.k("working", k) for k in entry_keys))
            self._done(w, writes)

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
