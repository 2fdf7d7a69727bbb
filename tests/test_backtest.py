"""`newswatch backtest`: recent entries replayed against the config as it is now; nothing sent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.servers import FeedServer, WebhookReceiver
from tests.test_pipeline import seeds_runtime
from worker import pipeline
from worker.backtest import parse_since
from worker.cli import main
from worker.errors import NewswatchError
from worker.runtime import Runtime


@pytest.fixture
def polled(tmp_path: Path, feed_server: FeedServer, receiver: WebhookReceiver, redis_url: str,
           monkeypatch: pytest.MonkeyPatch) -> Runtime:
    """The seeds taken in and processed once, the CLI pointed at the same Redis and prefix."""
    rt = seeds_runtime(tmp_path, feed_server, redis_url, f"""\
          - id: ops
            webhook: {receiver.url}
            secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
            topics: [ceasefire-talks, hostage-releases]
""")
    for feed in rt.config.feeds:
        outcome = pipeline.poll_feed(rt.poller, feed.id)
        pipeline.process_entries(rt.processor, list(outcome.new_entries))
    monkeypatch.setenv("NEWSWATCH_REDIS_URL", redis_url)
    monkeypatch.setenv("NEWSWATCH_KEY_PREFIX", rt.config.settings.key_prefix)
    return rt


def backtest(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["backtest", "--config", str(config), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_backtest_replays_what_the_worker_saw(polled: Runtime, receiver: WebhookReceiver,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    stats = polled.store.stats.totals()
    found = backtest(polled.config.path, capsys)
    assert found["entries"] == stats.counts["entries_new"] > 0
    for topic in ("ceasefire-talks", "hostage-releases"):
        assert found["topics"][topic]["matches"] == stats.matches[topic]
        assert 1 <= len(found["topics"][topic]["examples"]) <= 3
    example = found["topics"]["hostage-releases"]["examples"][-1]
    assert example["title"] and example["source"] and "*" in example["evidence"]
    assert receiver.received == []                 # nothing was delivered
    alerts = polled.store.records.alerts_since(0)

    # Narrow a topic in the config: the backtest follows the file as it is now.
    text = polled.config.path.read_text()
    polled.config.path.write_text(text.replace(
        "query: (hostage* OR captive* OR kidnap*) AND (releas* OR freed OR exchang*)",
        "query: kidnap* AND releas*"))
    narrowed = backtest(polled.config.path, capsys, "--topic", "hostage-releases")
    assert list(narrowed["topics"]) == ["hostage-releases"]
    assert narrowed["topics"]["hostage-releases"]["matches"] == 1
    assert "Kidnapped aid workers" in narrowed["topics"]["hostage-releases"]["examples"][0][
        "title"]
    assert polled.store.records.alerts_since(0) == alerts and receiver.received == []


def test_readable_report_and_window(polled: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--config", str(polled.config.path), "--examples", "1"]) == 0
    out = capsys.readouterr().out
    assert "(nothing was sent)" in out and "TOPIC" in out and "ceasefire-talks" in out
    assert backtest(polled.config.path, capsys, "--since", "2099-01-01")["entries"] == 0
    # Entries older than settings.backtest_days are dropped by `maintain`'s trim.
    polled.store.entries.trim_recent(time.time() + 8 * 86400)
    assert backtest(polled.config.path, capsys, "--since", "30d")["entries"] == 0


def test_unknown_topic_and_bad_since(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, "feeds: []\n")
    assert main(["backtest", "--config", str(config), "--topic", "nope"]) == 1
    assert "unknown topic 'nope'" in capsys.readouterr().err
    with pytest.raises(NewswatchError, match="expected 7d, 12h"):
        parse_since("last tuesday")
    assert parse_since("2d", now=1_000_000) == 1_000_000 - 2 * 86400
    assert parse_since("2025-01-04") == 1735948800.0
