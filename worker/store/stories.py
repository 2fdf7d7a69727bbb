"""Stories: the copies of each story, the fingerprints and index words that find it, the day's
word counts, canonical URLs; and the optimistic claim that keeps two workers from making two
stories of one."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import redis

from ..models import Entry
from .base import DAY, Db, Part, short_hash

STORIES_PER_WORD = 500        # P:stok zsets are capped (lookups read the 200 most recent)
SKETCHES_KEPT = 2000          # P:sketches: the newest stories' embeddings (lookups read 500)

# Record a copy of a story in one step, and answer the thread the story is in. KEYS: story
# hash, day's word counts, fingerprints list, URL key, thread key, then one key per index word.
# ARGV: entry key, entry JSON, window, counts TTL, fingerprint ('' for none), max fingerprints,
# now, story id, stories per index word, whether there is a URL, then the entry's words.
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
  for i = 6, #KEYS do
    redis.call('ZADD', KEYS[i], now, ARGV[8])
    if redis.call('ZCARD', KEYS[i]) > cap then
      redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
      redis.call('ZREMRANGEBYRANK', KEYS[i], 0, -cap - 1)
    end
    redis.call('EXPIRE', KEYS[i], window)
  end
end
return redis.call('GET', KEYS[5])
"""


class StoryClaim:
    """What one story decision read, watched (Redis WATCH): the entry's URL and the index
    words it finds stories by. `commit` records the copy only if no other worker changed any of
    them since (a copy indexed under one of these words, this URL given a story); else nothing
    is written and the caller decides again. So two copies arriving at once still make one
    story, with no lock for a worker to wait on or to leave behind when it dies."""

    def __init__(self, store: Stories, url: str | None, words: Sequence[str]) -> None:
        self.store, self.url, self.words = store, url, list(words)
        self.pipe = store.r.pipeline()
        watched = [store.url_key(url), *(store.k("stok", w) for w in self.words)]
        self.pipe.watch(*watched)  # type: ignore[no-untyped-call]   # untyped in redis-py

    def read(self, choose: Callable[[dict[str, int]], list[str]], *, per_word: int = 200,
             also: Sequence[str] = ()
             ) -> tuple[str | None, list[tuple[str, list[str], str | None]]]:
        """The story this URL has by now, if any; else (story id, its copies' fingerprints) of
        the recent stories `choose` picks from how many of the words find each, with the
        thread each is in. At most `per_word` most recent stories are read per word, so the
        work per entry is bounded however full the window is."""
        store = self.store
        since = time.time() - store.db.window
        pipe = store.r.pipeline(transaction=False)
        pipe.get(store.url_key(self.url))
        for word in self.words:
            pipe.zrevrangebyscore(store.k("stok", word), "+inf", since, start=0, num=per_word)
        known, *found = pipe.execute()
        if self.url and known:
            return cast(str, known), []
        counts: dict[str, int] = {}
        for ids in found:
            for story_id in ids:
                counts[story_id] = counts.get(story_id, 0) + 1
        ids = list(dict.fromkeys([*choose(counts), *also]))
        for story_id in ids:
            pipe.lrange(store.k("storysig", story_id), 0, -1)
            pipe.get(store.k("thread", story_id))
        answers = pipe.execute()
        return None, [(i, sigs, thread) for i, sigs, thread
                      in zip(ids, answers[::2], answers[1::2], strict=True) if sigs]

    def thread_of(self, story_id: str) -> str | None:
        return self.store.thread_of(story_id)

    def commit(self, story_id: str, entry: Entry, *, entry_key: str, words: Sequence[str],
               signature: str | None = None, index: Sequence[str] = (),
               max_members: int = 8, thread: str | None = None,
               vector: tuple[str, bytes] | None = None) -> bool:
        """Stories.add_copy, if nothing watched changed; False (nothing written) if it did.
        `thread`: the story a new story is threaded under (set once, with the copy)."""
        keys, args = self.store.copy_args(story_id, entry, entry_key, words, signature, index,
                                          max_members)
        self.pipe.multi()
        self.pipe.eval(_ADD_COPY, len(keys), *keys, *args)
        if thread:
            self.pipe.set(self.store.k("thread", story_id), thread, nx=True,
                          ex=self.store.db.window)
        if vector is not None:
            self.store.queue_sketch(self.pipe, story_id, vector)
        try:
            self.pipe.execute()
        except redis.WatchError:
            return False
        return True



class Stories(Part):
    """P:url:{h}, P:story:{id}, P:stok:{word}, P:storysig:{id}, P:df:{day}, P:thread:{id},
    P:sketch:{id}, P:sketches."""

    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self._add_copy = db.r.register_script(_ADD_COPY)

    def lookup(self, url: str | None, words: Iterable[str],
               ) -> tuple[str | None, int, dict[str, int]]:
        """What assignment reads first, in one round trip: the story of this URL if any, the
        number of entries clustered in the window and how many used each word (one day's
        counts per hash, the days the window touches summed)."""
        words = list(dict.fromkeys(words))
        pipe = self.r.pipeline(transaction=False)
        pipe.get(self.url_key(url))
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
        first = today - self.db.window // DAY - 1
        return [self.k("df", str(day)) for day in range(first, today + 1)]

    @contextmanager
    def claim(self, url: str | None, words: Sequence[str]) -> Iterator[StoryClaim]:
        """An optimistic hold (Redis WATCH) on what a story decision reads: the entry's URL
        and the index words it finds stories by. See StoryClaim."""
        claim = StoryClaim(self, url, words)
        try:
            yield claim
        finally:
            claim.pipe.reset()

    def sketches(self, limit: int) -> list[tuple[str, tuple[str, bytes]]]:
        """The most recent stories' languages and embeddings, newest first (two round trips):
        what a report in another language is compared with."""
        ids = cast(list[str], self.r.zrevrange(self.k("sketches"), 0, limit - 1))
        if not ids:
            return []
        raw = cast(list[str | None], self.r.mget([self.k("sketch", i) for i in ids]))
        out = []
        for story_id, value in zip(ids, raw, strict=True):
            if value:
                lang, _, vector = value.partition(" ")
                out.append((story_id, (lang, base64.b64decode(vector))))
        return out

    def queue_sketch(self, pipe: Any, story_id: str, sketch: tuple[str, bytes]) -> None:
        """A new story's language and embedding, kept for the window; the index of them
        holds the most recent SKETCHES_KEPT."""
        lang, vector = sketch
        window = self.db.window
        pipe.set(self.k("sketch", story_id), f"{lang} {base64.b64encode(vector).decode()}",
                 ex=window)
        pipe.zadd(self.k("sketches"), {story_id: time.time()})
        pipe.zremrangebyrank(self.k("sketches"), 0, -SKETCHES_KEPT - 1)
        pipe.expire(self.k("sketches"), window)

    def thread_of(self, story_id: str) -> str | None:
        """The first story of the thread this story is in, when it was started as related to
        another (None: it starts its own thread)."""
        return cast(str | None, self.r.get(self.k("thread", story_id)))

    def add_copy(self, story_id: str, entry: Entry, *, entry_key: str, words: Sequence[str],
                 signature: str | None = None, index: Sequence[str] = (),
                 max_members: int = 8) -> str | None:
        """Record a copy of a story, in one step: its entry, its words in the day's counts,
        and (while the story has fewer than `max_members`) its fingerprint and the words that
        find it. A word finds at most the `STORIES_PER_WORD` most recent stories. Returns the
        thread the story is in (`thread_of`)."""
        keys, args = self.copy_args(story_id, entry, entry_key, words, signature, index,
                                    max_members)
        return cast(str | None, self._add_copy(keys=keys, args=args))

    def copy_args(self, story_id: str, entry: Entry, entry_key: str, words: Sequence[str],
                  signature: str | None, index: Sequence[str],
                  max_members: int) -> tuple[list[str], list[Any]]:
        now = time.time()
        keys = [self.k("story", story_id), self._df_keys(now)[-1],
                self.k("storysig", story_id), self.url_key(entry.link),
                self.k("thread", story_id), *(self.k("stok", w) for w in index)]
        return keys, [entry_key, json.dumps(entry.to_dict()), self.db.window, self.db.window + DAY,
                      signature or "", max_members, now, story_id, STORIES_PER_WORD,
                      "1" if entry.link else "0", *words]

    def url_key(self, url: str | None) -> str:
        return self.k("url", short_hash(url)) if url else self.k("url", "-")

    def at_url(self, url: str | None) -> str | None:
        """The story whose copy has this canonical URL, while the story window holds it."""
        return cast(str | None, self.r.get(self.url_key(url))) if url else None

    def entries(self, story_id: str) -> dict[str, Entry]:
        raw = cast(dict[str, str], self.r.hgetall(self.k("story", story_id)))
        return {k: Entry.from_dict(json.loads(v)) for k, v in raw.items()}
