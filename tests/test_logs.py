"""Logs name the feed or alert they are about, as words in text and as keys in JSON."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import runtime_for
from tests.servers import FeedServer, Served
from worker import logs, pipeline


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]


def test_json_lines_carry_the_feed(tmp_path: Path, feed_server: FeedServer, redis_url: str,
                                   captured: io.StringIO) -> None:
    feed_server.files["/gone.xml"] = Served(b"", status=404)
    rt = runtime_for(tmp_path, f"""\
        feeds:
          - url: {feed_server.url("/gone.xml")}
            name: "Missing – «wire»"
        """, redis_url)
    logs.configure("INFO", "json", captured)
    assert pipeline.poll_feed(rt.poller, rt.config.feeds[0].id).status == "error"
    records = [json.loads(line) for line in captured.getvalue().splitlines()]
    (record,) = [r for r in records if r["logger"] == "worker.pipeline" and "feed" in r]
    assert record["level"] == "WARNING" and record["logger"] == "worker.pipeline"
    assert record["feed"] == rt.config.feeds[0].id
    assert record["url"] == feed_server.url("/gone.xml")
    assert record["status"] == 404 and record["errors_in_a_row"] == 1
    assert "Missing – «wire»" in record["message"]            # UTF-8 kept as such
    assert record["time"].endswith("+00:00")


def test_text_lines_name_the_feed(tmp_path: Path, feed_server: FeedServer, redis_url: str,
                                  captured: io.StringIO) -> None:
    feed_server.files["/gone.xml"] = Served(b"", status=404)
    rt = runtime_for(tmp_path, f"feeds:\n  - url: {feed_server.url('/gone.xml')}\n",
                     redis_url)
    logs.configure("INFO", "text", captured)
    pipeline.poll_feed(rt.poller, rt.config.feeds[0].id)
    lines = captured.getvalue().strip().splitlines()
    assert any(" WARNING worker.pipeline: feed " in line and feed_server.url("/gone.xml") in line
               for line in lines)
    assert lines[-1].endswith("INFO worker.pipeline: polled 1 feeds: 0 new entries (1 error)")


def test_format_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSWATCH_LOG_FORMAT", raising=False)
    assert logs.resolve_format(None, None) == "text"
    assert logs.resolve_format(None, "json") == "json"
    monkeypatch.setenv("NEWSWATCH_LOG_FORMAT", "json")
    assert logs.resolve_format(None, "text") == "json"
    assert logs.resolve_format("text", "json") == "text"
