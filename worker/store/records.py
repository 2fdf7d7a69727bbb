"""Delivery records: alerts, digests and operator notices (one hash each, whatever the kind),
their history, retries, claims while a worker delivers, dead letters, digest buckets."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from ..bodies import DigestBody, NoticeBody, RecordKind, RecordStatus
from ..models import Alert
from .base import Db, Part

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

# A dead letter back to pending, due now, in one step (KEYS: record, dead, pending, retry,
# its log; ARGV: now, id, log line). 0 if it is not dead.
_REVIVE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'dead' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'pending', 'created_at', ARGV[1], 'touched_at', ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[2])
redis.call('LPUSH', KEYS[5], ARGV[3])
redis.call('LTRIM', KEYS[5], 0, 49)
return 1
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

    kind: RecordKind
    subscriber_id: str
    status: RecordStatus
    attempts: int
    created_at: float


@dataclass(frozen=True)
class DeadLetter:
    """A record that could not be delivered, whatever its kind."""

    id: str
    kind: RecordKind
    subscriber_id: str
    attempts: int
    last_error: str | None
    dead_since: float | None
    data: dict[str, Any]   # the alert record, or the digest's / notice's body

    @property
    def title(self) -> str:
        """One line saying what it was."""
        if self.kind == RecordKind.DIGEST:
            return f"digest of {self.data.get('period', {}).get('label', '?')}: " \
                   f"{self.data.get('stories', '?')} stories"
        if self.kind == RecordKind.NOTICE:
            feed = self.data.get("feed", {})
            return f"notice: feed {feed.get('name') or feed.get('url')} " \
                   f"{self.data.get('problem', '')}".rstrip()
        return str(self.data.get("entry", {}).get("title", ""))


@dataclass(frozen=True)
class AlertRecord:
    alert: Alert
    status: RecordStatus
    attempts: int
    last_error: str | None
    created_at: float
    next_try_at: float | None



class Records(Part):
    """P:alert:{id}, P:alertlog:{id}, P:pending:alerts, P:retry, P:alerts, P:dead,
    P:claim:{id}, P:digest:{sub}:{kind}:{start}, P:digests, P:updates:{sub}:{story},
    P:threadfirst:{thread}."""

    def __init__(self, db: Db) -> None:
        super().__init__(db)
        self._create_alert = db.r.register_script(_CREATE_ALERT)
        self._claim_retries = db.r.register_script(_CLAIM_RETRIES)
        self._extend_claim = db.r.register_script(_EXTEND_CLAIM)
        self._release_claim = db.r.register_script(_RELEASE_CLAIM)
        self._revive = db.r.register_script(_REVIVE)

    def create_alert(self, alert: Alert, origin: str, *,
                     hold: DigestBucket | None = None) -> int:
        """1: created; 2: exists, pending, same origin (enqueue again); 0: already handled.
        With `hold` the alert waits in that digest bucket until its period is over."""
        return self._create(alert.id, json.dumps(alert.to_dict()), origin,
                            alert.subscriber_id, RecordKind.ALERT, hold)

    def create_digest(self, digest_id: str, body: DigestBody, subscriber_id: str) -> int:
        """The digest of a closed period, created once (its id is derived from the period)."""
        return self._create(digest_id, json.dumps(body), digest_id, subscriber_id,
                            RecordKind.DIGEST,
                            None)

    def create_notice(self, notice_id: str, body: NoticeBody, subscriber_id: str) -> int:
        """An operator notice (a feed gone or failing), delivered like an alert."""
        return self._create(notice_id, json.dumps(body), notice_id, subscriber_id,
                            RecordKind.NOTICE,
                            None)

    def _create(self, record_id: str, data: str, origin: str, subscriber_id: str,
                kind: RecordKind,
                hold: DigestBucket | None) -> int:
        bucket = self._bucket_key(hold) if hold else self.k("digest", "-")
        return int(self._create_alert(
            keys=[self.k("alert", record_id), self.k("pending", "alerts"), self.k("alerts"),
                  bucket, self.k("digests")],
            args=[data, origin, time.time(), subscriber_id, self.db.seen_ttl, record_id,
                  RecordStatus.HELD if hold else RecordStatus.PENDING, kind,
                  hold.end if hold else 0,
                  hold.member() if hold else ""]))

    def _bucket_key(self, bucket: DigestBucket) -> str:
        return self.k("digest", bucket.subscriber_id, bucket.kind, str(bucket.start))

    def first_in_thread(self, thread: str, subscriber_id: str, alert_id: str) -> str:
        """The subscriber's first alert in this thread: this one if none came before (it is
        recorded as such), else the earlier one (what this alert replies to)."""
        key = self.k("threadfirst", thread)
        pipe = self.r.pipeline()
        pipe.hsetnx(key, subscriber_id, alert_id)
        pipe.hget(key, subscriber_id)
        pipe.expire(key, self.db.window)
        return cast(str, pipe.execute()[1])

    def take_update_slot(self, subscriber_id: str, story_id: str, limit: int) -> bool:
        """Count one more update alert for this story and subscriber, if under `limit`."""
        key = self.k("updates", subscriber_id, story_id)
        pipe = self.r.pipeline()
        pipe.incr(key)
        pipe.expire(key, self.db.window)
        taken = int(pipe.execute()[0])
        return taken <= limit

    def record_data(self, record_id: str) -> dict[str, Any] | None:
        raw = cast(str | None, self.r.hget(self.k("alert", record_id), "data"))
        return json.loads(raw) if raw else None

    def due_digest_buckets(self, now: float) -> list[tuple[DigestBucket, list[str]]]:
        """(bucket, alert ids) of the digest periods that are over."""
        members = cast(list[tuple[str, float]], self.r.zrangebyscore(
            self.k("digests"), "-inf", now, withscores=True))
        out = []
        for member, end in members:
            bucket = DigestBucket.of_member(member, float(end), self.db.prefix)
            alerts = cast(set[str], self.r.smembers(self._bucket_key(bucket)))
            out.append((bucket, sorted(alerts)))
        return out

    def close_digest_bucket(self, bucket: DigestBucket, alert_ids: list[str]) -> None:
        """After its digest record exists: the held alerts are in it; the bucket goes."""
        pipe = self.r.pipeline()
        for alert_id in alert_ids:
            pipe.hset(self.k("alert", alert_id), "status", RecordStatus.DIGESTED)
        pipe.delete(self._bucket_key(bucket))
        pipe.zrem(self.k("digests"), bucket.raw or bucket.member())
        pipe.execute()

    def load_alert(self, alert_id: str) -> AlertRecord | None:
        h = cast(dict[str, str], self.r.hgetall(self.k("alert", alert_id)))
        if not h.get("data") or h.get("kind", RecordKind.ALERT) != RecordKind.ALERT:
            return None
        return AlertRecord(Alert.from_dict(json.loads(h["data"])), RecordStatus(h["status"]),
                           int(h.get("attempts", 0)), h.get("last_error") or None,
                           float(h.get("created_at", 0)),
                           float(h["next_try_at"]) if h.get("next_try_at") else None)

    def dead_letter(self, record_id: str) -> DeadLetter | None:
        """A dead record of any kind (alert, digest, notice), for listing and retrying."""
        h = cast(dict[str, str], self.r.hgetall(self.k("alert", record_id)))
        if h.get("status") != RecordStatus.DEAD or not h.get("data"):
            return None
        history = self.history(record_id)
        return DeadLetter(record_id, RecordKind(h.get("kind", RecordKind.ALERT)),
                          h.get("subscriber", ""),
                          int(h.get("attempts", 0)), h.get("last_error") or None,
                          float(history[0]["at"]) if history else None, json.loads(h["data"]))

    def record_state(self, record_id: str) -> RecordState | None:
        h = cast(list[str | None], self.r.hmget(self.k("alert", record_id), "kind",
                                                "subscriber", "status", "attempts",
                                                "created_at"))
        if h[2] is None:
            return None
        return RecordState(RecordKind(h[0] or RecordKind.ALERT), h[1] or "", RecordStatus(h[2]),
                           int(h[3] or 0), float(h[4] or 0))

    def history(self, alert_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in cast(list[str],
                                            self.r.lrange(self.k("alertlog", alert_id), 0, -1))]

    def _log(self, pipe: Any, alert_id: str, status: str, error: str | None = None) -> None:
        key = self.k("alertlog", alert_id)
        pipe.lpush(key, json.dumps({"at": round(time.time(), 3), "status": status,
                                    "error": error}))
        pipe.ltrim(key, 0, 49)
        pipe.expire(key, self.db.seen_ttl)

    def claim(self, alert_id: str, ttl: float = 300) -> str | None:
        """Take the right to deliver this alert now: a token while no other worker holds it
        (the claim lapses after `ttl` seconds unless extended), else None."""
        token = secrets.token_hex(8)
        taken = self.r.set(self.k("claim", alert_id), token, nx=True, px=int(ttl * 1000))
        return token if taken else None

    def extend_claim(self, alert_id: str, token: str, ttl: float) -> bool:
        """Keep a claim alive while its attempt is; False if it is no longer ours."""
        return bool(self._extend_claim(keys=[self.k("claim", alert_id)],
                                       args=[token, int(ttl * 1000)]))

    def release_claim(self, alert_id: str, token: str) -> None:
        """Give the claim up, if it is still ours (a lapsed claim may be another's now)."""
        self._release_claim(keys=[self.k("claim", alert_id)], args=[token])

    def mark_delivered(self, alert_id: str, channel: str) -> None:
        pipe = self.r.pipeline()
        now = time.time()
        pipe.hset(self.k("alert", alert_id), mapping={"status": RecordStatus.DELIVERED,
                                                      "delivered_at": now, "touched_at": now,
                                                      "next_try_at": ""})
        pipe.hincrby(self.k("alert", alert_id), "attempts", 1)
        pipe.srem(self.k("pending", "alerts"), alert_id)
        pipe.zrem(self.k("retry"), alert_id)
        self._log(pipe, alert_id, RecordStatus.DELIVERED)
        pipe.hincrby(self.k("stats", "delivered"), channel, 1)
        pipe.execute()

    def mark_failed(self, alert_id: str, error: str, *, retry_at: float | None,
                    channel: str) -> int:
        """Record a failed attempt: to be tried again at `retry_at`, or dead when it is None.
        Returns the attempt count so far."""
        key = self.k("alert", alert_id)
        now = time.time()
        pipe = self.r.pipeline()
        pipe.hincrby(key, "attempts", 1)
        status = RecordStatus.DEAD if retry_at is None else RecordStatus.RETRYING
        pipe.hset(key, mapping={"status": status,
                                "last_error": error, "touched_at": now,
                                "next_try_at": "" if retry_at is None else retry_at})
        if retry_at is None:
            pipe.srem(self.k("pending", "alerts"), alert_id)
            pipe.zrem(self.k("retry"), alert_id)
            pipe.zadd(self.k("dead"), {alert_id: now})
            pipe.hincrby(self.k("stats", "dead"), channel, 1)
        else:
            pipe.zadd(self.k("retry"), {alert_id: retry_at})
        self._log(pipe, alert_id, status, error)
        attempts = pipe.execute()[0]
        return int(attempts)

    def claim_due_retries(self, now: float, limit: int = 1000) -> list[str]:
        return cast(list[str], self._claim_retries(keys=[self.k("retry")], args=[now, limit]))

    def stale(self, older_than: float) -> list[str]:
        """Pending alerts untouched since `older_than`, not waiting for a retry and not being
        delivered right now: their task was lost with a worker. They are touched on return."""
        pending = sorted(self.pending())
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
        now = round(time.time(), 3)
        return bool(self._revive(
            keys=[self.k("alert", alert_id), self.k("dead"), self.k("pending", "alerts"),
                  self.k("retry"), self.k("alertlog", alert_id)],
            args=[now, alert_id, json.dumps({"at": now, "status": "revived", "error": None})]))

    def next_tries(self, record_ids: Iterable[str]) -> dict[str, float | None]:
        """When each record is tried again (None: not waiting for a retry), one round trip."""
        ids = list(record_ids)
        pipe = self.r.pipeline(transaction=False)
        for record_id in ids:
            pipe.hget(self.k("alert", record_id), "next_try_at")
        return {i: float(v) if v else None for i, v in zip(ids, pipe.execute(), strict=True)}

    def alerts_since(self, since: float) -> list[str]:
        return cast(list[str], self.r.zrangebyscore(self.k("alerts"), since, "+inf"))

    def pending(self) -> set[str]:
        return cast(set[str], self.r.smembers(self.k("pending", "alerts")))

    def dead(self) -> list[str]:
        return cast(list[str], self.r.zrange(self.k("dead"), 0, -1))
