"""Counters and histograms for summaries and /metrics, one hash per family, labelled by field
(a topic or subscriber id is a field, never part of a name to be split again)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import cast

from .base import Part, Writes

# Histograms kept as cumulative bucket counters, P:stats:hist:{name} (seconds).
HISTOGRAMS = {
    "poll_duration": ("Time to fetch and parse a feed", (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)),
    "delivery_latency": ("Time from detection to delivery", (1, 5, 15, 60, 300, 3600, 86400)),
}
# Families: P:stats:{family} hash, label -> count. P:stats itself: the unlabelled counters.
FAMILIES = ("polls", "matches", "created", "delivered", "dead", "stories", "maybe")
COUNTERS = ("entries_new", "push_received", "push_rejected")


@dataclass(frozen=True)
class Totals:
    """Every counter: `polls` by outcome, `matches` by topic (entries, copies of one story
    included), `created` by subscriber, `delivered` and `dead` by channel, `stories` by topic
    (stories and related reports alerted to someone: what readers could judge), `maybe` by
    topic (the "maybe" lines digests showed: readers could judge those too), the
    unlabelled `counts`, and `histograms` (name -> {bound, "count", "sum_ms"} -> n)."""

    polls: dict[str, int] = field(default_factory=dict)
    matches: dict[str, int] = field(default_factory=dict)
    created: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    stories: dict[str, int] = field(default_factory=dict)
    maybe: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, dict[str, int]] = field(default_factory=dict)

    def since(self, before: Totals) -> Totals:
        """What was counted after `before` (nothing that stayed the same)."""
        def diff(now: dict[str, int], then: dict[str, int]) -> dict[str, int]:
            return {k: v - then.get(k, 0) for k, v in now.items() if v != then.get(k, 0)}

        return Totals(**{f: diff(getattr(self, f), getattr(before, f))
                         for f in (*FAMILIES, "counts")},
                      histograms={name: diff(h, before.histograms.get(name, {}))
                                  for name, h in self.histograms.items()})


class Stats(Part):
    """P:stats (unlabelled counters), P:stats:{family} (labelled), P:stats:hist:{name}."""

    def observe(self, name: str, seconds: float, writes: Writes | None = None) -> None:
        """Add one observation to a histogram (cumulative buckets, as Prometheus has them)."""
        w = self._writes(writes)
        key = self.k("stats", "hist", name)
        for bound in HISTOGRAMS[name][1]:
            if seconds <= bound:
                w.count(str(bound), key=key)
        w.count("count", key=key)
        w.count("sum_ms", int(seconds * 1000), key=key)
        self._done(w, writes)

    def add(self, family: str, label: str, by: int = 1, writes: Writes | None = None) -> None:
        """Count one more of a family (`polls`, `matches`, `created`, ...) for `label`."""
        assert family in FAMILIES, family
        w = self._writes(writes)
        w.count(label, by, key=self.k("stats", family))
        self._done(w, writes)

    def count(self, name: str, by: int = 1, writes: Writes | None = None) -> None:
        """One of the unlabelled counters (COUNTERS)."""
        assert name in COUNTERS, name
        w = self._writes(writes)
        w.count(name, by)
        self._done(w, writes)

    def totals(self) -> Totals:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.k("stats"))
        for family in FAMILIES:
            pipe.hgetall(self.k("stats", family))
        for name in HISTOGRAMS:
            pipe.hgetall(self.k("stats", "hist", name))
        plain, *rest = cast(list[dict[str, str]], pipe.execute())
        ints = [{k: int(v) for k, v in h.items()} for h in rest]
        return Totals(**dict(zip(FAMILIES, ints, strict=False)),
                      counts={k: int(v) for k, v in plain.items() if k in COUNTERS},
                      histograms=dict(zip(HISTOGRAMS, ints[len(FAMILIES):], strict=True)))

    def upgrade(self) -> int:
        """Counters written by newswatch <= 0.1 (`polls:ok`, `alerts:desk:created`, ... in
        P:stats) moved into their families, once. The number moved."""
        old = cast(dict[str, str], self.r.hgetall(self.k("stats")))
        moved = {f: v for f, v in old.items() if f not in COUNTERS}
        if not moved:
            return 0
        pipe = self.r.pipeline()
        for name, value in moved.items():
            target = _legacy(name)
            if target is not None:
                key, label = target
                pipe.hincrby(self.k(*key), label, int(value))
            pipe.hdel(self.k("stats"), name)
        pipe.execute()
        return len(moved)


_LEGACY = re.compile(r"^(?:(polls|matches):(.+)|alerts:(.+):(created|delivered|dead)|"
                     r"hist:(\w+):(.+)|(entries|push):(new|received|rejected))$")


def _legacy(name: str) -> tuple[tuple[str, ...], str] | None:
    """Where an old counter's count goes: (key parts, field); None: dropped (unknown)."""
    m = _LEGACY.match(name)
    if m is None:
        return None
    family, label, who, outcome, hist, part, plain, what = m.groups()
    if family:
        return ("stats", family), label
    if who:
        return ("stats", outcome), who
    if hist:
        return ("stats", "hist", hist), part
    return ("stats",), f"{plain}_{what}"
