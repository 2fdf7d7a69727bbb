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
        stories = CounterMetricFamily("newswatch_stories_alerted", "Stories (and related "
                                      "reports) alerted, by topic", labels=["topic"])
        maybe = CounterMetricFamily("newswatch_maybe_lines", "Items a topic did not alert "
                                    "shown as 'maybe' lines in digests, by topic",
                                    labels=["topic"])
        created = CounterMetricFamily("newswatch_alerts_created", "Alerts created, by "
                                      "subscriber", labels=["subscriber"])
        for outcome, n in stats.polls.items():
            polls.add_metric([outcome], n)
        for topic, n in stats.matches.items():
            matches.add_metric([topic], n)
        for topic, n in stats.stories.items():
            stories.add_metric([topic], n)
        for topic, n in stats.maybe.items():
            maybe.add_metric([topic], n)
        for subscriber, n in stats.created.items():
            created.add_metric([subscriber], n)
        for outcome, by_channel in (("delivered", stats.delivered), ("dead", stats.dead)):
            for channel, n in by_channel.items():
                alerts.add_metric([channel, outcome], n)
        yield from (polls, matches, stories, maybe, alerts, created)
        yield CounterMetricFamily("newswatch_entries", "New entries taken in",
                                  value=stats.counts.get("entries_new", 0))
        yield GaugeMetricFamily("newswatch_dead_letters", "Alerts in the dead-letter list",
                                value=len(self.store.records.dead()))
        yield GaugeMetricFamily("newswatch_pending_alerts", "Alerts not yet delivered",
                                value=len(self.store.records.pending()))
        for name, (help_text, bounds) in HISTOGRAMS.items():
            h = stats.histograms.get(name, {})
            buckets = [(str(b), h.get(str(b), 0)) for b in bounds]
            buckets.append(("+Inf", h.get("count", 0)))
            yield HistogramMetricFamily(f"newswatch_{name}_seconds", help_text,
                                        buckets=buckets, sum_value=h.get("sum_ms", 0) / 1000)


def serve(store: Store, port: int, address: str = "127.0.0.1",
          registry: CollectorRegistry = REGISTRY) -> None:
    """Serve /metrics on `port` (in a daemon thread)."""
    registry.register(RedisCollector(store))
    start_http_server(port, addr=address, registry=registry)
