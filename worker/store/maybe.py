"""A digest's "maybe" lines: of the items a topic scored under its threshold in one digest
period (by its model, or by similarity), the nearest few, kept for a subscriber who asked for
them (readers' verdicts on them teach the topic what it missed); and each line once shown, for
its feedback links."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from ..models import Entry
from .base import Part, Writes, short_hash
from .records import DigestBucket


@dataclass(frozen=True)
class Near:
    """An item a topic did not alert, scored `score` against its `threshold`, by its model
    (a probability) or by similarity (`by`)."""

    entry_key: str
    entry: Entry
    score: float
    threshold: float
    by: str = "model"


class Maybes(Part):
    """P:maybe:{h} (zset per digest bucket and topic: [entry key, entry JSON, score,
    threshold, by] -> score - threshold, the nearest kept: a model retrained in the period,
    or one that came, changes the scale, never how far under its own threshold an item
    was), P:maybeline:{id} (a line a digest showed: what its feedback links record a verdict
    on)."""

    def _key(self, bucket: DigestBucket, topic_id: str) -> str:
        return self.k("maybe", short_hash(f"{bucket.member()}\n{topic_id}"))

    def offer(self, bucket: DigestBucket, topic_id: str, near: Near, keep: int,
              writes: Writes | None = None) -> None:
        """Keep the item if it is among the `keep` nearest of the topic's misses this period;
        the bucket is then closed when the period is over, alerts or not. Offering the same
        item again with the same score (a batch processed twice) adds nothing; with another
        (a model retrained in between), the digest shows its headline once."""
        w = self._writes(writes)
        key = self._key(bucket, topic_id)
        member = json.dumps([near.entry_key, near.entry.to_dict(), near.score, near.threshold,
                             near.by])
        w.pipe.zadd(key, {member: near.score - near.threshold})
        w.pipe.zremrangebyrank(key, 0, -(keep + 1))
        w.pipe.expire(key, self.db.seen_ttl)
        w.pipe.zadd(self.k("digests"), {bucket.member(): bucket.end})
        self._done(w, writes)

    def nearest(self, bucket: DigestBucket, topic_id: str) -> list[Near]:
        """The topic's kept misses of the period, nearest first."""
        raw = cast(list[str], self.r.zrevrange(self._key(bucket, topic_id), 0, -1))
        out = []
        for member in raw:
            entry_key, entry, score, threshold, by = json.loads(member)
            out.append(Near(entry_key, Entry.from_dict(entry), float(score), float(threshold),
                            str(by)))
        return out

    def forget(self, bucket: DigestBucket, topic_ids: list[str]) -> None:
        """Once the period's digest exists."""
        if topic_ids:
            self.r.delete(*(self._key(bucket, t) for t in topic_ids))

    def show(self, line_id: str, data: dict[str, Any], ttl: int) -> None:
        """A line a digest shows: kept as long as its feedback links work."""
        self.r.set(self.k("maybeline", line_id), json.dumps(data, ensure_ascii=False), ex=ttl)

    def line(self, line_id: str) -> dict[str, Any] | None:
        raw = cast(str | None, self.r.get(self.k("maybeline", line_id)))
        return cast(dict[str, Any], json.loads(raw)) if raw else None
