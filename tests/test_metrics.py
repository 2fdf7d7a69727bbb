"""Prometheus metrics, scraped over HTTP after a real poll-and-deliver cycle."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from tests.conftest import runtime_for, serve_seeds
from tests.servers import FeedServer, free_port
from worker import pipeline
from worker.metrics import serve


def test_metrics_are_scraped(tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    feeds = serve_seeds(feed_server)
    rt = runtime_for(tmp_path, f"""\
        feeds:
{feeds}          - url: {feed_server.url('/missing.xml')}
        subscribers:
          - id: desk
            outbox: out
            topics: [ceasefire-talks, hostage-releases]
        """, redis_url)
    for feed in rt.config.feeds:
        outcome = pipeline.poll_feed(rt.poller, feed.id)
        for alert_id in pipeline.process_entries(rt.processor, list(outcome.new_entries)):
            pipeline.deliver_alert(rt.deliverer, alert_id)
    port = free_port()
    serve(rt.store, port, registry=CollectorRegistry())
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    lines = set(text.splitlines())
    assert 'newswatch_polls_total{outcome="ok"} 3.0' in lines
    assert 'newswatch_polls_total{outcome="error"} 1.0' in lines
    assert "newswatch_entries_total 12.0" in lines
    assert 'newswatch_matches_total{topic="hostage-releases"} 5.0' in lines
    assert 'newswatch_stories_alerted_total{topic="hostage-releases"} 3.0' in lines
    assert 'newswatch_alerts_total{channel="outbox",outcome="delivered"} 5.0' in lines
    assert 'newswatch_alerts_created_total{subscriber="desk"} 5.0' in lines
    assert "newswatch_dead_letters 0.0" in lines and "newswatch_pending_alerts 0.0" in lines
    assert 'newswatch_poll_duration_seconds_bucket{le="+Inf"} 4.0' in lines
    assert 'newswatch_delivery_latency_seconds_count 5.0' in lines
