"""Every Redis key, TTL and Lua script of newswatch, under one prefix. Nothing else imports redis.

One part per concept, each with its keys and scripts beside it: `feeds` (feeds.py), `entries`
(entries.py), `stories` (stories.py), `records` (records.py: alerts, digests, notices),
`maybes` (maybe.py: a digest's "maybe" lines), `verdicts` (verdicts.py: readers' feedback),
`stats` (stats.py). A stage is given the parts it
uses; `Store` holds them all, with the connection (base.py) and the explicit write batch.

Keys (P = settings.key_prefix):
  P:feed:{feed}            hash   poll state: etag, last_modified, last_poll_at, last_status, ...
  P:schedule               zset   feed id -> next poll time (unix seconds)
  P:hostpause:{host}       string a host asked us to wait (Retry-After); TTL = the wait
  P:seenby:{feed}          hash   entry hash -> day it was taken in: the entries already seen
                                  (TTL seen_ttl_days after the feed's last new entry; marks
                                  older than that swept once the hash passes 2,000)
  P:seen:{feed}:{h}        string the same, as newswatch <= 0.1 wrote it (honoured until it
                                  expires)
  P:entry:{feed}:{h}       string entry JSON until processed (then deleted)
  P:pending:entries        zset   entry keys taken in but not yet processed, by time
  P:working:{feed}:{h}     string a worker is processing the entry (TTL redeliver_after)
  P:recent                 stream entry keys and JSON taken in, by time (capped by count and
                                  age), for `newswatch backtest`
  P:url:{h}                string canonical URL -> story id (TTL story window)
  P:story:{id}             hash   entry key -> entry JSON, the copies of one story (TTL window)
  P:stok:{word}            zset   story ids by time, per word that finds them (TTL window):
                                  each copy's heaviest words, for the copies a story is
                                  compared through; lookups read the most recent only
  P:storysig:{id}          list   fingerprints of the story's first copies (TTL window)
  P:thread:{id}            string the first story of the thread a story started as related to
                                  (none: it starts its own thread; TTL window)
  P:sketch:{id}            string a new story's language and int8 embedding (TTL window)
  P:sketches               zset   story ids by time, the newest 2,000 with a sketch: what a
                                  report in another language is compared with
  P:threadfirst:{id}       hash   subscriber -> their first alert in the thread (its
                                  Message-ID is what later alerts reply to; TTL window)
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
  P:maybe:{h}              zset   a digest bucket's nearest misses of one topic ([entry key,
                                  entry JSON, score, threshold, by] -> score - threshold;
                                  2 x `maybe` nearest)
  P:maybeline:{id}         string a "maybe" line a digest showed (TTL: its links' life)
  P:stats                  hash   counters for summaries
  P:feedback:{topic}       hash   story -> a reader's last verdict, with the alerted text
  P:fbtoken:{h}            string a feedback link already used (TTL: the link's life)
  P:feedback-changed       hash   topic -> mark of its latest verdict; P:feedback-learned: the
                                  mark its model was last trained with
  P:lock:{name}            string one worker at a time (retraining a topic); expires
Story assignment is optimistic: StoryClaim WATCHes the P:url and P:stok keys a decision read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from .base import DAY, UNAVAILABLE, Db, Unavailable, Writes
from .entries import Entries
from .feeds import Feeds, FeedState, WebSubState
from .maybe import Maybes, Near
from .records import AlertRecord, DeadLetter, DigestBucket, Records, RecordState
from .stats import HISTOGRAMS, Stats
from .stories import STORIES_PER_WORD, Stories, StoryClaim
from .verdicts import Verdicts

__all__ = ["DAY", "HISTOGRAMS", "STORIES_PER_WORD", "UNAVAILABLE", "AlertRecord", "DeadLetter",
           "DigestBucket", "Entries", "FeedState", "Feeds", "Maybes", "Near", "RecordState",
           "Records", "Stats", "Store", "Stories", "StoryClaim", "Unavailable", "Verdicts",
           "WebSubState", "Writes"]


class Store:
    """The parts of newswatch's state on one Redis, and what concerns the connection."""

    def __init__(self, client: redis.Redis, prefix: str = "nw", *, seen_ttl_days: int = 30,
                 story_window_hours: int = 72, recent_max: int = 100_000,
                 recent_days: int = 7) -> None:
        self.db = Db(client, prefix, seen_ttl_days * DAY, story_window_hours * 3600, recent_max,
                     min(recent_days, seen_ttl_days) * DAY)    # never outlive the entries
        self.r, self.p = client, prefix
        self.feeds = Feeds(self.db)
        self.entries = Entries(self.db)
        self.stories = Stories(self.db)
        self.records = Records(self.db)
        self.maybes = Maybes(self.db)
        self.verdicts = Verdicts(self.db)
        self.stats = Stats(self.db)

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
        return self.db.k(*parts)

    @contextmanager
    def writes(self) -> Iterator[Writes]:
        """A batch of writes sent in one round trip when the block ends (give it to the parts'
        write methods as `writes=`); nothing is sent if the block raises."""
        batch = Writes(self.db)
        yield batch
        batch.send()

    def lock(self, name: str, seconds: int) -> bool:
        """A lock no other worker holds for `seconds` (it expires: a crash frees it)."""
        return bool(self.r.set(self.k("lock", name), "1", nx=True, ex=seconds))

    def unlock(self, name: str) -> None:
        self.r.delete(self.k("lock", name))
