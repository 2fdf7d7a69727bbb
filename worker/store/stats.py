"""Counters and histograms for summaries and /metrics (P:stats), by name."""

from __future__ import annotations

from typing import cast

from .base import Part, Writes

# Histograms kept as cumulative bucket counters in P:stats (seconds).
HISTOGRAMS = {
    "poll_duration": ("Time to fetch and parse a feed", (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)),
    "delivery_latency": ("Time from detection to delivery", (1, 5, 15, 60, 300, 3600, 86400)),
}


class Stats(Part):
    """P:stats: counters (`polls:<status>`, `entries:new`, `alerts:<channel>:<outcome>`, ...)
    and histogram buckets (`hist:<name>:<bound>`, `:count`, `:sum_ms`)."""

    def observe(self, name: str, seconds: float, writes: Writes | None = None) -> None:
        """Add one observation to a histogram (cumulative buckets, as Prometheus has them)."""
        w = self._writes(writes)
        for bound in HISTOGRAMS[name][1]:
            if seconds <= bound:
                w.count(f"hist:{name}:{bound}")
        w.count(f"hist:{name}:count")
        w.count(f"hist:{name}:sum_ms", int(seconds * 1000))
        self._done(w, writes)

    def count(self, name: str, by: int = 1) -> None:
        self.r.hincrby(self.k("stats"), name, by)

    def totals(self) -> dict[str, int]:
        return {k: int(v) for k, v in cast(dict[str, str],
                                           self.r.hgetall(self.k("stats"))).items()}
