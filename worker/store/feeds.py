"""Feeds: each feed's poll state, its WebSub subscription, the schedule, paused hosts."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

from ..models import Validators
from .base import Db, Part, Writes

# Claim due feeds: each due feed's next time moves to now + lease, so no other scheduler takes it.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, feed in ipairs(due) do
  redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[3], feed)
end
return due
"""


@dataclass(frozen=True)
class WebSubState:
    """A feed's WebSub subscription, as kept in its state hash (fields `ws_<name>`)."""

    hub: str = ""
    topic: str = ""
    secret: str = ""
    state: str = ""          # "" (never asked) | pending | active | denied | failed
    until: float = 0.0       # an active lease's end, unix seconds
    asked: float = 0.0       # when we last asked the hub
    error: str = ""

    @classmethod
    def of(cls, h: Mapping[str, str]) -> WebSubState:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = h.get(f"ws_{f.name}")
            if raw:
                values[f.name] = float(raw) if f.type == "float" else raw
        return cls(**values)

    def active(self, now: float) -> bool:
        return self.state == "active" and self.until > now


def websub_fields(**values: str | float) -> dict[str, str | float]:
    """WebSubState's names as stored (`ws_` fields of the feed's hash)."""
    known = {f.name for f in fields(WebSubState)}
    unknown = set(values) - known
    assert not unknown, f"not WebSub state: {unknown}"
    return {f"ws_{name}": value for name, value in values.items()}


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
    websub: WebSubState = WebSubState()
    checked_at: float | None = None    # last considered by a poll batch (polled or not)
    skipped: str | None = None         # why the last batch did not fetch it ("gone: ...")


def _feed_state(h: dict[str, str]) -> FeedState:
    return FeedState(
        Validators(h.get("etag") or None, h.get("last_modified") or None),
        float(h["last_poll_at"]) if h.get("last_poll_at") else None,
        h.get("last_status"), h.get("last_error") or None, int(h.get("error_count", 0)),
        float(h["interval"]) if h.get("interval") else None, h.get("body_hash") or None,
        h.get("url") or None, h.get("moved_target") or None, int(h.get("moved_count", 0)),
        h.get("gone") == "1", WebSubState.of(h),
        float(h["checked_at"]) if h.get("checked_at") else None, h.get("skipped") or None,
    )


def _stored(state: FeedState) -> dict[str, str | float | int | None]:
    """The fields `record_poll` writes, as `state` read them (absent and empty read alike)."""
    return {"skipped": state.skipped or "", "last_status": state.last_status,
            "last_error": state.last_error or "", "error_count": state.error_count,
            "etag": state.validators.etag or "",
            "last_modified": state.validators.last_modified or "",
            "interval": state.interval, "body_hash": state.body_hash}


class Feeds(Part):
    """P:feed:{feed} (hash), P:schedule (zset: feed -> next poll), P:hostpause:{host}."""

    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self._claim_due = db.r.register_script(_CLAIM_DUE)

    def state(self, feed_id: str) -> FeedState:
        return _feed_state(cast(dict[str, str], self.r.hgetall(self.k("feed", feed_id))))

    def states(self, feed_ids: Sequence[str]) -> dict[str, FeedState]:
        """Many feeds' states in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for feed_id in feed_ids:
            pipe.hgetall(self.k("feed", feed_id))
        return {f: _feed_state(h) for f, h in zip(feed_ids, pipe.execute(), strict=True)}

    def checked_at(self, feed_ids: Sequence[str]) -> dict[str, float]:
        """When a poll batch last considered each feed (0: never), in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for feed_id in feed_ids:
            pipe.hget(self.k("feed", feed_id), "checked_at")
        return {f: float(v or 0) for f, v in zip(feed_ids, pipe.execute(), strict=True)}

    def websub(self, feed_ids: Sequence[str]) -> dict[str, WebSubState]:
        """Many feeds' subscriptions, in one round trip."""
        names = [f"ws_{f.name}" for f in fields(WebSubState)]
        pipe = self.r.pipeline(transaction=False)
        for feed_id in feed_ids:
            pipe.hmget(self.k("feed", feed_id), names)
        return {f: WebSubState.of({n: v for n, v in zip(names, values, strict=True) if v})
                for f, values in zip(feed_ids, pipe.execute(), strict=True)}

    def set_websub(self, feed_id: str, **values: str | float) -> None:
        self.r.hset(self.k("feed", feed_id), mapping=cast(dict[Any, Any],
                                                          websub_fields(**values)))

    def hosts_paused_for(self, hosts: Iterable[str]) -> dict[str, float]:
        """Seconds each host still asked us to wait (429/503 Retry-After; 0 if none), in one
        round trip."""
        hosts = list(dict.fromkeys(hosts))
        pipe = self.r.pipeline(transaction=False)
        for host in hosts:
            pipe.pttl(self.k("hostpause", host))
        return {h: max(0.0, int(ms) / 1000) for h, ms in zip(hosts, pipe.execute(), strict=True)}

    def update(self, feed_id: str, writes: Writes | None = None,
               **values: str | float | int) -> None:
        """Set feed-state fields (interval, body_hash, url, moved_target, moved_count, gone)."""
        w = self._writes(writes)
        w.pipe.hset(self.k("feed", feed_id), mapping=cast(dict[Any, Any], values))
        self._done(w, writes)

    def pause_host(self, host: str, seconds: float, writes: Writes | None = None) -> None:
        w = self._writes(writes)
        w.pipe.set(self.k("hostpause", host), "1", px=max(1, int(seconds * 1000)))
        self._done(w, writes)

    def unschedule(self, feed_id: str, writes: Writes | None = None) -> None:
        w = self._writes(writes)
        w.pipe.zrem(self.k("schedule"), feed_id)
        self._done(w, writes)

    def record_skip(self, feed_id: str, status: str, reason: str,
                    writes: Writes | None = None) -> None:
        """A feed a poll batch did not fetch (gone, its host paused, no longer configured),
        and why: it was considered now, so `run --once` waits for it no longer."""
        w = self._writes(writes)
        w.pipe.hset(self.k("feed", feed_id), mapping={"checked_at": time.time(),
                                                       "skipped": f"{status}: {reason}"})
        self._done(w, writes)

    def record_poll(self, feed_id: str, status: str, *, validators: Validators | None = None,
                    error: str | None = None, new_entries: int = 0,
                    more: Mapping[str, str | float] | None = None,
                    before: FeedState | None = None, writes: Writes | None = None) -> None:
        """A poll's outcome (and `more` feed-state fields, such as the new interval).
        `before`: the state this poll read (under its claim): fields that still hold what it
        says are not written again (a 304 in a series rewrites its times and interval, not the
        eleven fields)."""
        key = self.k("feed", feed_id)
        now = time.time()
        values: dict[Any, Any] = {"last_poll_at": now, "checked_at": now, "skipped": "",
                                  "last_status": status, "last_error": error or "",
                                  **(more or {})}
        if validators is not None:
            values["etag"] = validators.etag or ""
            values["last_modified"] = validators.last_modified or ""
        w = self._writes(writes)
        if error:
            w.pipe.hincrby(key, "error_count", 1)
        else:
            values["error_count"] = 0
        if before is not None:
            held = _stored(before)
            values = {k: v for k, v in values.items() if k not in held or held[k] != v}
        w.pipe.hset(key, mapping=values)
        w.count(status, key=self.k("stats", "polls"))
        if new_entries:
            w.count("entries_new", new_entries)
        self._done(w, writes)

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

    def claim_due(self, now: float, *, lease: float, limit: int = 500) -> list[str]:
        return cast(list[str], self._claim_due(keys=[self.k("schedule")],
                                               args=[now, limit, lease]))

    def next_poll_at(self, feed_id: str) -> float | None:
        return self.next_polls_at([feed_id])[feed_id]

    def next_polls_at(self, feed_ids: Sequence[str]) -> dict[str, float | None]:
        """Each feed's next poll time (None: not scheduled), in one round trip."""
        scores = self.r.zmscore(self.k("schedule"), list(feed_ids)) if feed_ids else []
        return {f: float(v) if v is not None else None
                for f, v in zip(feed_ids, scores, strict=True)}

    def schedule_next(self, feed_id: str, at: float, writes: Writes | None = None) -> None:
        w = self._writes(writes)
        w.pipe.zadd(self.k("schedule"), {feed_id: at}, xx=True)
        self._done(w, writes)
