"""Every Redis key, TTL and Lua script of newswatch, under one prefix. Nothing else imports redis.

Keys (P = settings.key_prefix):
  P:feed:{feed}            hash   poll state: etag, last_modified, last_poll_at, last_status, ...
  P:schedule               zset   feed id -> next poll time (unix seconds)
  P:hostpause:{host}       string a host asked us to wait (Retry-After); TTL = the wait
  P:seen:{feed}:{h}        string an entry already taken in (TTL seen_ttl_days)
  P:entry:{feed}:{h}       string entry JSON awaiting or after processing (TTL seen_ttl_days)
  P:pending:entries        zset   entry keys taken in but not yet processed, by time
  P:recent                 stream entry keys taken in, by time (capped by count and age), for
                                  `newswatch backtest`; the entries themselves are P:entry
  P:url:{h}                string canonical URL -> story id (TTL story window)
  P:story:{id}             hash   entry key -> entry JSON, the copies of one story (TTL window)
  P:stok:{word}            zset   story ids by time, per word that finds them (TTL window):
                                  each copy's heaviest words, for the copies a story is
                                  compared through; lookups read the most recent only
  P:storysig:{id}          list   fingerprints of the story's first copies (TTL window)
  P:df:{day}               hash   word -> entries clustered that UTC day using it, "#" -> how
                                  many entries (TTL window + 1 day): story word weights
  P:alert:{id}             hash   data, status, attempts, last_error, origin, created_at,
                                  touched_at, next_try_at, delivered_at
  P:alertlog:{id}          list   the alert's history, newest first (capped)
  P:pending:alerts         set    alerts neither delivered nor dead
  P:retry                  zset   alert id -> when to try again (re-enqueued by `maintain`)
  P:alerts                 zset   alert ids by creation time
  P:dead                   zset   dead-lettered alert ids by time
  P:claim:{alert}          string a worker is delivering this alert: its token (short TTL,
                                  extended while the attempt lives)
  P:digest:{sub}:{kind}:{start}  set  alerts held for a subscriber's digest of that period
  P:digests                zset   digest bucket ([sub, kind, start] as JSON) -> period end, for
                                  `maintain` to close
  P:updates:{sub}:{story}  string update alerts sent for a story (capped; TTL window)
  P:stats                  hash   counters for summaries
Story assignment is optimistic: StoryClaim WATCHes the P:url and P:stok keys a decision read.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from .errors import NewswatchError
from .models import Alert, Entry, Validators

DAY = 86_400
STORIES_PER_WORD = 500        # P:stok zsets are capped (lookups read the 200 most recent)
# Histograms kept as cumulative bucket counters in P:stats (seconds).
HISTOGRAMS = {
    "poll_duration": ("Time to fetch and parse a feed", (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)),
    "delivery_latency": ("Time from detection to delivery", (1, 5, 15, 60, 300, 3600, 86400)),
}

# Record a copy of a story in one step. KEYS: story hash, day's word counts, fingerprints list,
# URL key, then one key per index word. ARGV: entry key, entry JSON, window, counts TTL,
# fingerprint ('' for none), max fingerprints, now, story id, stories per index word, whether
# there is a URL, then the entry's words.
_ADD_COPY = """
local window = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], window)
redis.call('HINCRBY', KEYS[2], '#', 1)
for i = 11, #ARGV do redis.call('HINCRBY', KEYS[2], ARGV[i], 1) end
redis.call('EXPIRE', KEYS[2], ARGV[4])
if ARGV[10] == '1' then redis.call('SET', KEYS[4], ARGV[8], 'NX', 'EX', window) end
if ARGV[5] ~= '' and redis.call('LLEN', KEYS[3]) < tonumber(ARGV[6]) then
  redis.call('RPUSH', KEYS[3], ARGV[5])
  redis.call('EXPIRE', KEYS[3], window)
  local now, cap = tonumber(ARGV[7]), tonumber(ARGV[9])
  for i = 5, #KEYS do
    redis.call('ZADD', KEYS[i], now, ARGV[8])
    if redis.call('ZCARD', KEYS[i]) > cap then
      redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
      redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -cap - 1)
    end
    redis.call('EXPIRE', KEYS[i], window)
  end
end
"""

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

# Create an alert once per (subscriber, story). Returns 1 when created; 2 when it exists, is still
# pending and came from this same entry (a redelivered task must enqueue it again); else 0.
_CREATE_ALERT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  local status = redis.call('HGET', KEYS[1], 'status')
  local origin = redis.call('HGET', KEYS[1], 'origin')
  if origin == ARGV[2] and (status == 'pending' or status == 'retrying') then return 2 end
  return 0
end
redis.call('HSET', KEYS[1], 'data', ARGV[1], 'status', ARGV[7], 'attempts', 0,
           'origin', ARGV[2], 'created_at', ARGV[3], 'touched_at', ARGV[3],
           'subscriber', ARGV[4], 'kind', ARGV[8])
redis.call('EXPIRE', KEYS[1], ARGV[5])
if ARGV[7] == 'pending' then
  redis.call('SADD', KEYS[2], ARGV[6])
else
  -- held for a digest: into the period's bucket, which `maintain` closes when it is over
  redis.call('SADD', KEYS[4], ARGV[6])
  redis.call('EXPIRE', KEYS[4], ARGV[5])
  redis.call('ZADD', KEYS[5], ARGV[9], ARGV[10])
end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[6])
return 1
"""

# Take the retries that are due, once: whoever removes an id enqueues it.
_CLAIM_RETRIES = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do redis.call('ZREM', KEYS[1], id) end
return due
"""

# A delivery claim is extended or released only by its holder (its token).
_EXTEND_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_CLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# A reader's verdict on a story for a topic (KEYS[1]: the topic's feedback hash), once per
# link (KEYS[2]: the link's key, '' for none): the verdict it replaces, or nothing on a replay.
_RECORD_FEEDBACK = """
if KEYS[2] ~= '' and not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then
  return {0, ''}
end
local before = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
return {1, before or ''}
"""

# Claim due feeds: each due feed's next time moves to now + lease, so no other scheduler takes it.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, feed in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[3], feed)
end
return due
"""


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


def _h(value: str) -> str:
    return hashlib.sha1(value.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class FeedState:
    validators: Validators
    last_poll_at: float | None
    last_status: str | None
    last_error: str | None
    error_count: int
    interval: float | None = None      # the adaptive interval now in force
    body_hash: str | None = None       # of the last 200 body: an unchanged one is not parsed
    url: str | None = None             # where the feed moved (repeated 301), if it did
    moved_target: str | None = None    # a 301 seen, not yet adopted
    moved_count: int = 0
    gone: bool = False                 # 410: not polled any more
    websub: dict[str, str] = field(default_factory=dict)   # ws_* fields (websub.py)
    checked_at: float | None = None    # last considered by a poll batch (polled or not)
    skipped: str | None = None         # why the last batch did not fetch it ("gone: ...")


@dataclass(frozen=True)
class DigestBucket:
    """The alerts a digest subscriber gets for one period. Kept in P:digests as data (a JSON
    member), never read back out of a key: a subscriber id may hold any character."""

    subscriber_id: str
    kind: str              # hourly | daily
    start: int             # the period's start, unix seconds
    end: float             # when it is over
    raw: str = ""          # the member as stored, when read back

    def member(self) -> str:
        return json.dumps([self.subscriber_id, self.kind, self.start])

    @classmethod
    def of_member(cls, member: str, end: float, prefix: str) -> DigestBucket:
        try:
            subscriber_id, kind, start = json.loads(member)
        except ValueError:     # written by newswatch <= 0.1: the bucket key itself
            subscriber_id, kind, start = member.removeprefix(f"{prefix}:digest:").rsplit(":", 2)
        return cls(str(subscriber_id), str(kind), int(start), end, member)


@dataclass(frozen=True)
class RecordState:
    """Delivery state of an alert or a digest."""

    kind: str              # alert | digest
    subscriber_id: str
    status: str            # pending | held | digested | retrying | delivered | dead
    attempts: int
    created_at: float


@dataclass(frozen=True)
class DeadLetter:
    """A record that could not be delivered, whatever its kind."""

    id: str
    kind: str              # alert | digest | notice
    subscriber_id: str
    attempts: int
    last_error: str | None
    dead_since: float | None
    data: dict[str, Any]   # the alert record, or the digest's / notice's body

    @property
    def title(self) -> str:
        """One line saying what it was."""
        if self.kind == "digest":
            return f"digest of {self.data.get('period', {}).get('label', '?')}: " \
                   f"{self.data.get('stories', '?')} stories"
        if self.kind == "notice":
            feed = self.data.get("feed", {})
            return f"notice: feed {feed.get('name') or feed.get('url')} " \
                   f"{self.data.get('problem', '')}".rstrip()
        return str(self.data.get("entry", {}).get("title", ""))


@dataclass(frozen=True)
class AlertRecord:
    alert: Alert
    status: str            # pending | retrying | delivered | dead
    attempts: int
    last_error: str | None
    created_at: float
    next_try_at: float | None


class StoryClaim:
    """What one story decision read, watched (Redis WATCH): the entry's URL and the index
    words it finds stories by. `commit` records the copy only if no other worker changed any of
    them since (a copy indexed under one of these words, this URL given a story); else nothing
    is written and the caller decides again. So two copies arriving at once still make one
    story, with no lock for a worker to wait on or to leave behind when it dies."""

    def __init__(self, store: Store, url: str | None, words: Sequence[str]) -> None:
        self.store, self.url, self.words = store, url, list(words)
        self.pipe = store.r.pipeline()
        watched = [store._url_key(url), *(store.k("stok", w) for w in self.words)]
        self.pipe.watch(*watched)  # type: ignore[no-untyped-call]   # untyped in redis-py

    def read(self, choose: Callable[[dict[str, int]], list[str]], *, per_word: int = 200
             ) -> tuple[str | None, list[tuple[str, list[str]]]]:
        """The story this URL has by now, if any; else (story id, its copies' fingerprints) of
        the recent stories `choose` picks from how many of the words find each. At most
        `per_word` most recent stories are read per word, so the work per entry is bounded
        however full the window is."""
        store = self.store
        since = time.time() - store.window
        pipe = store.r.pipeline(transaction=False)
        pipe.get(store._url_key(self.url))
        for word in self.words:
            pipe.zrevrangebyscore(store.k("stok", word), "+inf", since, start=0, num=per_word)
        known, *found = pipe.execute()
        if self.url and known:
            return cast(str, known), []
        counts: dict[str, int] = {}
        for ids in found:
            for story_id in ids:
                counts[story_id] = counts.get(story_id, 0) + 1
        ids = choose(counts)
        for story_id in ids:
            pipe.lrange(store.k("storysig", story_id), 0, -1)
        return None, [(i, sigs) for i, sigs in zip(ids, pipe.execute(), strict=True) if sigs]

    def commit(self, story_id: str, entry: Entry, *, entry_key: str, words: Sequence[str],
               signature: str | None = None, index: Sequence[str] = (),
               max_members: int = 8) -> bool:
        """Store.add_to_story, if nothing watched changed; False (nothing written) if it did."""
        keys, args = self.store._copy(story_id, entry, entry_key, words, signature, index,
                                      max_members)
        self.pipe.multi()
        self.pipe.eval(_ADD_COPY, len(keys), *keys, *args)
        try:
            self.pipe.execute()
        except redis.WatchError:
            return False
        return True


class Store:
    def __init__(self, client: redis.Redis, prefix: str = "nw", *, seen_ttl_days: int = 30,
                 story_window_hours: int = 72, recent_max: int = 100_000,
                 recent_days: int = 7) -> None:
        self.r = client
        self.p = prefix
        self.seen_ttl = seen_ttl_days * DAY
        self.recent_max = recent_max
        self.recent_age = min(recent_days, seen_ttl_days) * DAY   # never outlive the entries
        self.window = story_window_hours * 3600
        self._add_entries = client.register_script(_ADD_ENTRIES)
        self._add_copy = client.register_script(_ADD_COPY)
        self._create_alert = client.register_script(_CREATE_ALERT)
        self._claim_due = client.register_script(_CLAIM_DUE)
        self._claim_retries = client.register_script(_CLAIM_RETRIES)
        self._extend_claim = client.register_script(_EXTEND_CLAIM)
        self._release_claim = client.register_script(_RELEASE_CLAIM)
        self._record_feedback = client.register_script(_RECORD_FEEDBACK)
        self._batched = False
        self._counts: dict[str, int] = {}

    @classmethod
    def from_url(cls, url: str, prefix: str = "nw", **kw: Any) -> Store:
        return cls(redis.Redis.from_url(url, decode_responses=True), prefix, **kw)

    @property
    def where(self) -> str:
        """The server's address, without its password, for messages."""
        kw = self.r.connection_pool.connection_kwargs
        if "path" in kw:
            return f"unix://{kw['path']}"
        return f"redis://{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{kw.get('db', 0)}"

    def check(self) -> None:
        """Raise Unavailable (one line naming the server) unless Redis answers."""
        try:
            self.r.ping()
        except UNAVAILABLE as exc:
            raise Unavailable(self.where, exc) from None

    def k(self, *parts: str) -> str:
        return ":".join((self.p, *parts))

    @contextmanager
    def batch(self) -> Iterator[Store]:
        """A store whose writes are queued and sent in one round trip when the block ends, for
        the bookkeeping of a whole poll batch. Only writes inside: a read would get nothing."""
        writer = copy.copy(self)
        writer.r = self.r.pipeline(transaction=False)
        writer._batched = True
        writer._counts = {}
        yield writer
        for name, by in writer._counts.items():       # counters summed: one command each
            writer.r.hincrby(self.k("stats"), name, by)
        writer.r.execute()

    def _pipe(self) -> Any:
        """A pipeline for a group of writes: the batch's own, or a new one sent by `_send`."""
        return self.r if self._batched else self.r.pipeline()

    def _send(self, pipe: Any) -> None:
        if not self._batched:
            pipe.execute()

    def _incr(self, pipe: Any, name: str, by: int = 1) -> None:
        """Add to a counter in P:stats (summed per batch when batched)."""
        if self._batched:
            self._counts[name] = self._counts.get(name, 0) + by
        else:
            pipe.hincrby(self.k("stats"), name, by)

    # -- feeds and schedule -------------------------------------------------------------------

    def feed_state(self, feed_id: str) -> FeedState:
        return _feed_state(cast(dict[str, str], self.r.hgetall(self.k("feed", feed_id))))

    def feed_states(self, feed_ids: Sequence[str]) -> dict[str, FeedState]:
        """Many feeds' states in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for feed_id in feed_ids:
            pipe.hgetall(self.k("feed", feed_id))
        return {f: _feed_state(h) for f, h in zip(feed_ids, pipe.execute(), strict=True)}

    def feed_fields(self, feed_ids: Sequence[str],
                    names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Some raw fields of many feeds' state hashes, in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for feed_id in feed_ids:
            pipe.hmget(self.k("feed", feed_id), list(names))
        return {f: {n: v for n, v in zip(names, values, strict=True) if v is not None}
                for f, values in zip(feed_ids, pipe.execute(), strict=True)}

    def hosts_paused_for(self, hosts: Iterable[str]) -> dict[str, float]:
        """Seconds each host still asked us to wait (429/503 Retry-After; 0 if none), in one
        round trip."""
        hosts = list(dict.fromkeys(hosts))
        pipe = self.r.pipeline(transaction=False)
        for host in hosts:
            pipe.pttl(self.k("hostpause", host))
        return {h: max(0.0, int(ms) / 1000) for h, ms in zip(hosts, pipe.execute(), strict=True)}

    def update_feed(self, feed_id: str, **fields: str | float | int) -> None:
        """Set feed-state fields (interval, body_hash, url, moved_target, moved_count, gone)."""
        self.r.hset(self.k("feed", feed_id), mapping=cast(dict[Any, Any], fields))

    def pause_host(self, host: str, seconds: float) -> None:
        self.r.set(self.k("hostpause", host), "1", px=max(1, int(seconds * 1000)))

    def unschedule(self, feed_id: str) -> None:
        self.r.zrem(self.k("schedule"), feed_id)

    def record_skip(self, feed_id: str, status: str, reason: str) -> None:
        """A feed a poll batch did not fetch (gone, its host paused, no longer configured),
        and why: it was considered now, so `run --once` waits for it no longer."""
        pipe = self._pipe()
        pipe.hset(self.k("feed", feed_id), mapping={"checked_at": time.time(),
                                                     "skipped": f"{status}: {reason}"})
        self._send(pipe)

    def record_poll(self, feed_id: str, status: str, *, validators: Validators | None = None,
                    error: str | None = None, new_entries: int = 0,
                    more: Mapping[str, str | float] | None = None) -> None:
        """A poll's outcome (and `more` feed-state fields, such as the new interval)."""
        key = self.k("feed", feed_id)
        now = time.time()
        fields: dict[Any, Any] = {"last_poll_at": now, "checked_at": now, "skipped": "",
                                  "last_status": status, "last_error": error or "",
                                  **(more or {})}
        if validators is not None:
            fields["etag"] = validators.etag or ""
            fields["last_modified"] = validators.last_modified or ""
        pipe = self._pipe()
        if error:
            pipe.hincrby(key, "error_count", 1)
        else:
            fields["error_count"] = 0
        pipe.hset(key, mapping=fields)
        self._incr(pipe, f"polls:{status}")
        if new_entries:
            self._incr(pipe, "entries:new", new_entries)
        self._send(pipe)

    def sync_schedule(self, feeds: Iterable[tuple[str, float]]) -> None:
        """Add configured feeds (due at once if new) and drop feeds no longer configured."""
        wanted = dict(feeds)
        key = self.k("schedule")
        current = set(cast(list[str], self.r.zrange(key, 0, -1)))
        if stale := current - wanted.keys():
            self.r.zrem(key, *stale)
        if wanted:
            now = time.time()
            self.r.zadd(key, {f: now for f in wanted}, nx=True)

    def claim_due_feeds(self, now: float, *, lease: float, limit: int = 500) -> list[str]:
        return cast(list[str], self._claim_due(keys=[self.k("schedule")],
                                               args=[now, limit, lease]))

    def next_poll_at(self, feed_id: str) -> float | None:
        return self.next_polls_at([feed_id])[feed_id]

    def next_polls_at(self, feed_ids: Sequence[str]) -> dict[str, float | None]:
        """Each feed's next poll time (None: not scheduled), in one round trip."""
        scores = self.r.zmscore(self.k("schedule"), list(feed_ids)) if feed_ids else []
        return {f: float(v) if v is not None else None
                for f, v in zip(feed_ids, scores, strict=True)}

    def schedule_next(self, feed_id: str, at: float) -> None:
        self.r.zadd(self.k("schedule"), {feed_id: at}, xx=True)

    # -- entries ------------------------------------------------------------------------------

    def entry_key(self, entry: Entry) -> str:
        return f"{entry.feed_id}:{_h(entry.entry_id)}"

    def add_new_entries(self, entries: Iterable[Entry]) -> list[str]:
        """Take in one feed's entries never seen before (one script: atomic for the feed);
        return their keys, queued for processing and remembered for backtests."""
        entries = list(entries)
        if not entries:
            return []
        keys = [self.entry_key(entry) for entry in entries]
        redis_keys = [self.k("pending", "entries"), self.k("recent")]
        args: list[Any] = [self.seen_ttl, time.time(), self.recent_max]
        for entry, ek in zip(entries, keys, strict=True):
            redis_keys += [self.k("seen", ek), self.k("entry", ek)]
            args += [ek, json.dumps(entry.to_dict())]
        added = cast(list[int], self._add_entries(keys=redis_keys, args=args))
        return [ek for ek, new in zip(keys, added, strict=True) if new]

    def trim_recent(self, now: float | None = None) -> None:
        """Drop recent-entry records older than the backtest window (`maintain` calls this)."""
        oldest_ms = int(((now or time.time()) - self.recent_age) * 1000)
        self.r.xtrim(self.k("recent"), minid=f"{oldest_ms}-0", approximate=False)

    def recent_entries(self, since: float, batch: int = 1000) -> Iterator[list[Entry]]:
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


    def load_entry(self, entry_key: str) -> Entry | None:
        raw = self.r.get(self.k("entry", entry_key))
        return Entry.from_dict(json.loads(cast(str, raw))) if raw else None

    def entry_done(self, entry_key: str) -> None:
        self.r.zrem(self.k("pending", "entries"), entry_key)

    def pending_entries(self) -> set[str]:
        return set(cast(list[str], self.r.zrange(self.k("pending", "entries"), 0, -1)))

    def stale_entries(self, older_than: float) -> list[str]:
        """Entries taken in before `older_than` and still unprocessed (a worker died); they are
        touched so that the next sweep leaves them alone for a while."""
        key = self.k("pending", "entries")
        stale = cast(list[str], self.r.zrangebyscore(key, "-inf", older_than))
        if stale:
            self.r.zadd(key, dict.fromkeys(stale, time.time()), xx=True)
        return stale

    # -- stories ------------------------------------------------------------------------------

    def story_lookup(self, url: str | None, words: Iterable[str],
                     ) -> tuple[str | None, int, dict[str, int]]:
        """What assignment reads first, in one round trip: the story of this URL if any, the
        number of entries clustered in the window and how many used each word (one day's
        counts per hash, the days the window touches summed)."""
        words = list(dict.fromkeys(words))
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self._url_key(url))
        for key in self._df_keys(time.time()):
            pipe.hmget(key, ["#", *words])
        known, *rows = pipe.execute()
        n, counts = 0, dict.fromkeys(words, 0)
        for row in rows:
            n += int(row[0] or 0)
            for word, value in zip(words, row[1:], strict=True):
                if value:
                    counts[word] += int(value)
        return (cast(str | None, known) if url else None), n, counts

    def _df_keys(self, now: float) -> list[str]:
        today = int(now // DAY)
        return [self.k("df", str(day)) for day in range(today - self.window // DAY - 1, today + 1)]

    @contextmanager
    def story_claim(self, url: str | None, words: Sequence[str]) -> Iterator[StoryClaim]:
        """An optimistic hold (Redis WATCH) on what a story decision reads: the entry's URL
        and the index words it finds stories by. See StoryClaim."""
        claim = StoryClaim(self, url, words)
        try:
            yield claim
        finally:
            claim.pipe.reset()

    def add_to_story(self, story_id: str, entry: Entry, *, entry_key: str, words: Sequence[str],
                     signature: str | None = None, index: Sequence[str] = (),
                     max_members: int = 8) -> None:
        """Record a copy of a story, in one step: its entry, its words in the day's counts,
        and (while the story has fewer than `max_members`) its fingerprint and the words that
        find it. A word finds at most the `STORIES_PER_WORD` most recent stories."""
        keys, args = self._copy(story_id, entry, entry_key, words, signature, index, max_members)
        self._add_copy(keys=keys, args=args)

    def _copy(self, story_id: str, entry: Entry, entry_key: str, words: Sequence[str],
              signature: str | None, index: Sequence[str],
              max_members: int) -> tuple[list[str], list[Any]]:
        now = time.time()
        keys = [self.k("story", story_id), self._df_keys(now)[-1],
                self.k("storysig", story_id), self._url_key(entry.link),
                *(self.k("stok", w) for w in index)]
        return keys, [entry_key, json.dumps(entry.to_dict()), self.window, self.window + DAY,
                      signature or "", max_members, now, story_id, STORIES_PER_WORD,
                      "1" if entry.link else "0", *words]

    def _url_key(self, url: str | None) -> str:
        return self.k("url", _h(url)) if url else self.k("url", "-")

    def story_entries(self, story_id: str) -> dict[str, Entry]:
        raw = cast(dict[str, str], self.r.hgetall(self.k("story", story_id)))
        return {k: Entry.from_dict(json.loads(v)) for k, v in raw.items()}

    # -- readers' feedback (kept until deleted: training needs it after the entries age out) --

    def record_feedback(self, topic_id: str, story_id: str, data: dict[str, Any],
                        token: str | None, token_ttl: int) -> tuple[bool, str | None]:
        """(recorded?, the verdict it replaced). Not recorded: the token was used before."""
        fresh, before = self._record_feedback(
            keys=[self.k("feedback", topic_id), self.k("fbtoken", token) if token else "",
                  self.k("feedback-changed")],
            args=[story_id, json.dumps(data, ensure_ascii=False), token_ttl, topic_id,
                  uuid.uuid4().hex])
        return bool(int(fresh)), (json.loads(before)["verdict"] if before else None)

    def feedback(self, topic_id: str) -> list[dict[str, Any]]:
        raw = cast(dict[str, str], self.r.hgetall(self.k("feedback", topic_id)))
        return [json.loads(v) for _, v in sorted(raw.items())]

    def feedback_unlearned(self) -> dict[str, str]:
        """Topics whose feedback changed since they were last trained on it: topic -> the
        change's mark (give it to `feedback_learned` once trained)."""
        changed = cast(dict[str, str], self.r.hgetall(self.k("feedback-changed")))
        learned = cast(dict[str, str], self.r.hgetall(self.k("feedback-learned")))
        return {t: mark for t, mark in changed.items() if learned.get(t) != mark}

    def feedback_learned(self, topic_id: str, mark: str) -> None:
        self.r.hset(self.k("feedback-learned"), topic_id, mark)

    def lock(self, name: str, seconds: int) -> bool:
        """A lock no other worker holds for `seconds` (it expires: a crash frees it)."""
        return bool(self.r.set(self.k("lock", name), "1", nx=True, ex=seconds))

    def unlock(self, name: str) -> None:
        self.r.delete(self.k("lock", name))

    # -- alerts -------------------------------------------------------------------------------

    def create_alert(self, alert: Alert, origin: str, *,
                     hold: DigestBucket | None = None) -> int:
        """1: created; 2: exists, pending, same origin (enqueue again); 0: already handled.
        With `hold` the alert waits in that digest bucket until its period is over."""
        return self._create(alert.id, json.dumps(alert.to_dict()), origin,
                            alert.subscriber_id, "alert", hold)

    def create_digest(self, digest_id: str, body: dict[str, Any], subscriber_id: str) -> int:
        """The digest of a closed period, created once (its id is derived from the period)."""
        return self._create(digest_id, json.dumps(body), digest_id, subscriber_id, "digest",
                            None)

    def create_notice(self, notice_id: str, body: dict[str, Any], subscriber_id: str) -> int:
        """An operator notice (a feed gone or failing), delivered like an alert."""
        return self._create(notice_id, json.dumps(body), notice_id, subscriber_id, "notice",
                            None)

    def _create(self, record_id: str, data: str, origin: str, subscriber_id: str, kind: str,
                hold: DigestBucket | None) -> int:
        bucket = self._bucket_key(hold) if hold else self.k("digest", "-")
        return int(self._create_alert(
            keys=[self.k("alert", record_id), self.k("pending", "alerts"), self.k("alerts"),
                  bucket, self.k("digests")],
            args=[data, origin, time.time(), subscriber_id, self.seen_ttl, record_id,
                  "held" if hold else "pending", kind, hold.end if hold else 0,
                  hold.member() if hold else ""]))

    def _bucket_key(self, bucket: DigestBucket) -> str:
        return self.k("digest", bucket.subscriber_id, bucket.kind, str(bucket.start))

    def take_update_slot(self, subscriber_id: str, story_id: str, limit: int) -> bool:
        """Count one more update alert for this story and subscriber, if under `limit`."""
        key = self.k("updates", subscriber_id, story_id)
        pipe = self.r.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.window)
        taken = int(pipe.execute()[0])
        return taken <= limit

    def record_kind(self, record_id: str) -> str:
        return cast(str | None, self.r.hget(self.k("alert", record_id), "kind")) or "alert"

    def record_data(self, record_id: str) -> dict[str, Any] | None:
        raw = cast(str | None, self.r.hget(self.k("alert", record_id), "data"))
        return json.loads(raw) if raw else None

    def due_digest_buckets(self, now: float) -> list[tuple[DigestBucket, list[str]]]:
        """(bucket, alert ids) of the digest periods that are over."""
        members = cast(list[tuple[str, float]], self.r.zrangebyscore(
            self.k("digests"), "-inf", now, withscores=True))
        out = []
        for member, end in members:
            bucket = DigestBucket.of_member(member, float(end), self.p)
            alerts = cast(set[str], self.r.smembers(self._bucket_key(bucket)))
            out.append((bucket, sorted(alerts)))
        return out

    def close_digest_bucket(self, bucket: DigestBucket, alert_ids: list[str]) -> None:
        """After its digest record exists: the held alerts are in it; the bucket goes."""
        pipe = self.r.pipeline()
        for alert_id in alert_ids:
            pipe.hset(self.k("alert", alert_id), "status", "digested")
        pipe.delete(self._bucket_key(bucket))
        pipe.zrem(self.k("digests"), bucket.raw or bucket.member())
        pipe.execute()

    def load_alert(self, alert_id: str) -> AlertRecord | None:
        h = cast(dict[str, str], self.r.hgetall(self.k("alert", alert_id)))
        if not h.get("data") or h.get("kind", "alert") != "alert":
            return None
        return AlertRecord(Alert.from_dict(json.loads(h["data"])), h["status"],
                           int(h.get("attempts", 0)), h.get("last_error") or None,
                           float(h.get("created_at", 0)),
                           float(h["next_try_at"]) if h.get("next_try_at") else None)

    def dead_letter(self, record_id: str) -> DeadLetter | None:
        """A dead record of any kind (alert, digest, notice), for listing and retrying."""
        h = cast(dict[str, str], self.r.hgetall(self.k("alert", record_id)))
        if h.get("status") != "dead" or not h.get("data"):
            return None
        history = self.alert_history(record_id)
        return DeadLetter(record_id, h.get("kind", "alert"), h.get("subscriber", ""),
                          int(h.get("attempts", 0)), h.get("last_error") or None,
                          float(history[0]["at"]) if history else None, json.loads(h["data"]))

    def record_state(self, record_id: str) -> RecordState | None:
        h = cast(list[str | None], self.r.hmget(self.k("alert", record_id), "kind",
                                                "subscriber", "status", "attempts",
                                                "created_at"))
        if h[2] is None:
            return None
        return RecordState(h[0] or "alert", h[1] or "", h[2], int(h[3] or 0), float(h[4] or 0))

    def alert_history(self, alert_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in cast(list[str],
                                            self.r.lrange(self.k("alertlog", alert_id), 0, -1))]

    def _log(self, pipe: Any, alert_id: str, status: str, error: str | None = None) -> None:
        key = self.k("alertlog", alert_id)
        pipe.lpush(key, json.dumps({"at": round(time.time(), 3), "status": status,
                                    "error": error}))
        pipe.ltrim(key, 0, 49)
        pipe.expire(key, self.seen_ttl)

    def claim_delivery(self, alert_id: str, ttl: float = 300) -> str | None:
        """Take the right to deliver this alert now: a token while no other worker holds it
        (the claim lapses after `ttl` seconds unless extended), else None."""
        token = secrets.token_hex(8)
        taken = self.r.set(self.k("claim", alert_id), token, nx=True, px=int(ttl * 1000))
        return token if taken else None

    def extend_delivery(self, alert_id: str, token: str, ttl: float) -> bool:
        """Keep a claim alive while its attempt is; False if it is no longer ours."""
        return bool(self._extend_claim(keys=[self.k("claim", alert_id)],
                                       args=[token, int(ttl * 1000)]))

    def release_delivery(self, alert_id: str, token: str) -> None:
        """Give the claim up, if it is still ours (a lapsed claim may be another's now)."""
        self._release_claim(keys=[self.k("claim", alert_id)], args=[token])

    def mark_delivered(self, alert_id: str, channel: str) -> None:
        pipe = self.r.pipeline()
        now = time.time()
        pipe.hset(self.k("alert", alert_id), mapping={"status": "delivered",
                                                      "delivered_at": now, "touched_at": now,
                                                      "next_try_at": ""})
        pipe.hincrby(self.k("alert", alert_id), "attempts", 1)
        pipe.srem(self.k("pending", "alerts"), alert_id)
        pipe.zrem(self.k("retry"), alert_id)
        self._log(pipe, alert_id, "delivered")
        pipe.hincrby(self.k("stats"), f"alerts:{channel}:delivered", 1)
        pipe.execute()

    def mark_failed(self, alert_id: str, error: str, *, retry_at: float | None,
                    channel: str) -> int:
        """Record a failed attempt: to be tried again at `retry_at`, or dead when it is None.
        Returns the attempt count so far."""
        key = self.k("alert", alert_id)
        now = time.time()
        pipe = self.r.pipeline()
        pipe.hincrby(key, "attempts", 1)
        pipe.hset(key, mapping={"status": "dead" if retry_at is None else "retrying",
                                "last_error": error, "touched_at": now,
                                "next_try_at": "" if retry_at is None else retry_at})
        if retry_at is None:
            pipe.srem(self.k("pending", "alerts"), alert_id)
            pipe.zrem(self.k("retry"), alert_id)
            pipe.zadd(self.k("dead"), {alert_id: now})
            pipe.hincrby(self.k("stats"), f"alerts:{channel}:dead", 1)
        else:
            pipe.zadd(self.k("retry"), {alert_id: retry_at})
        self._log(pipe, alert_id, "dead" if retry_at is None else "retrying", error)
        attempts = pipe.execute()[0]
        return int(attempts)

    def claim_due_retries(self, now: float, limit: int = 1000) -> list[str]:
        return cast(list[str], self._claim_retries(keys=[self.k("retry")], args=[now, limit]))

    def stale_alerts(self, older_than: float) -> list[str]:
        """Pending alerts untouched since `older_than`, not waiting for a retry and not being
        delivered right now: their task was lost with a worker. They are touched on return."""
        pending = sorted(self.pending_alerts())
        if not pending:
            return []
        pipe = self.r.pipeline()
        for alert_id in pending:
            pipe.hget(self.k("alert", alert_id), "touched_at")
            pipe.zscore(self.k("retry"), alert_id)
            pipe.exists(self.k("claim", alert_id))
        answers = pipe.execute()
        stale = [a for a, touched, retry, claimed in zip(pending, answers[0::3], answers[1::3],
                                                          answers[2::3], strict=True)
                 if retry is None and not claimed and float(touched or 0) < older_than]
        if stale:
            pipe = self.r.pipeline()
            for alert_id in stale:
                pipe.hset(self.k("alert", alert_id), "touched_at", time.time())
            pipe.execute()
        return stale

    def revive(self, alert_id: str) -> bool:
        """A dead letter goes back to pending, due now; False if it is not dead."""
        key = self.k("alert", alert_id)
        if self.r.hget(key, "status") != "dead":
            return False
        now = time.time()
        pipe = self.r.pipeline()
        pipe.hset(key, mapping={"status": "pending", "created_at": now, "touched_at": now})
        pipe.zrem(self.k("dead"), alert_id)
        pipe.sadd(self.k("pending", "alerts"), alert_id)
        pipe.zadd(self.k("retry"), {alert_id: now})
        self._log(pipe, alert_id, "revived")
        pipe.execute()
        return True

    def next_tries(self, record_ids: Iterable[str]) -> dict[str, float | None]:
        """When each record is tried again (None: not waiting for a retry), one round trip."""
        ids = list(record_ids)
        pipe = self.r.pipeline(transaction=False)
        for record_id in ids:
            pipe.hget(self.k("alert", record_id), "next_try_at")
        return {i: float(v) if v else None for i, v in zip(ids, pipe.execute(), strict=True)}

    def alerts_since(self, since: float) -> list[str]:
        return cast(list[str], self.r.zrangebyscore(self.k("alerts"), since, "+inf"))

    def pending_alerts(self) -> set[str]:
        return cast(set[str], self.r.smembers(self.k("pending", "alerts")))

    def dead_alerts(self) -> list[str]:
        return cast(list[str], self.r.zrange(self.k("dead"), 0, -1))

    # -- counters -----------------------------------------------------------------------------

    def observe(self, name: str, seconds: float) -> None:
        """Add one observation to a histogram (cumulative buckets, as Prometheus has them)."""
        pipe = self._pipe()
        for bound in HISTOGRAMS[name][1]:
            if seconds <= bound:
                self._incr(pipe, f"hist:{name}:{bound}")
        self._incr(pipe, f"hist:{name}:count")
        self._incr(pipe, f"hist:{name}:sum_ms", int(seconds * 1000))
        self._send(pipe)

    def count(self, name: str, by: int = 1) -> None:
        self.r.hincrby(self.k("stats"), name, by)

    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in cast(dict[str, str],
                                           self.r.hgetall(self.k("stats"))).items()}


def _feed_state(h: dict[str, str]) -> FeedState:
    return FeedState(
        Validators(h.get("etag") or None, h.get("last_modified") or None),
        float(h["last_poll_at"]) if h.get("last_poll_at") else None,
        h.get("last_status"), h.get("last_error") or None, int(h.get("error_count", 0)),
        float(h["interval"]) if h.get("interval") else None, h.get("body_hash") or None,
        h.get("url") or None, h.get("moved_target") or None, int(h.get("moved_count", 0)),
        h.get("gone") == "1", {k: v for k, v in h.items() if k.startswith("ws_")},
        float(h["checked_at"]) if h.get("checked_at") else None, h.get("skipped") or None,
    )
