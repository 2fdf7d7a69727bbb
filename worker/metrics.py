"""Prometheus metrics, read from the counters every worker keeps in Redis (store.stats), so any
process serves the whole deployment's figures and nothing is lost when a worker restarts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector, CollectorRegistry

from .store import HISTOGRAMS, Store


class RedisCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        stats = self.store.stats.totals()
        polls = CounterMetricFamily("newswatch_polls", "Feed polls by outcome",
                                    labels=["outcome"])
        matches = CounterMetricFamily("newswatch_matches", "Entries matched, by topic",
                                      labels=["topic"])
        alerts = CounterMetricFamily("newswatch_alerts", "Alerts by channel and outcome",
                                     labels=["channel", "outcome"])
        created = CounterMetricFamily("newswatch_alerts_created", "Alerts created, by "
                                      "subscriber", labels=["subscriber"])
        for key, value in stats.items():
            kind, _, rest = key.partition(":")
            if kind == "polls":
                polls.add_metric([rest], value)
            elif kind == "matches":
                matches.add_metric([rest], value)
            elif kind == "alerts" and rest.endswith(":created"):
                created.add_metric([rest.rsplit(":", 1)[0]], value)
            elif kind == "alerts":
                channel, _, outcome = rest.rpartition(":")
                alerts.add_metric([channel, outcome], value)
        yield from (polls, matches, alerts, created)
        yield CounterMetricFamily("newswatch_entries", "New entries taken in",
                                  value=stats.get("entries:new", 0))
        yield GaugeMetricFamily("newswatch_dead_letters", "Alerts in the dead-letter list",
                                value=len(self.store.records.dead()))
        yield GaugeMetricFamily("newswatch_pending_alerts", "Alerts not yet delivered",
                                value=len(self.store.records.pending()))
        for name, (help_text, bounds) in HISTOGRAMS.items():
            counts = [stats.get(f"hist:{name}:{b}", 0) for b in bounds]
            total = stats.get(f"hist:{name}:count", 0)
            buckets = [(str(b), c) for b, c in zip(bounds, counts, strict=True)]
            buckets.append(("+Inf", total))
            yield HistogramMetricFamily(f"newswatch_{name}_seconds", help_text,
                                        buckets=buckets,
                                        sum_value=stats.get(f"hist:{name}:sum_ms", 0) / 1000)


def serve(store: Store, port: int, address: str = "127.0.0.1",
          registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics on `port` (in a daemon thread)."""
    registry.register(RedisCollector(store))
    start_http_server(port, addr=address, registry=registry)
