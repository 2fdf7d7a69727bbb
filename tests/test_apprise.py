"""Chat delivery through Apprise to a real local json:// endpoint: format, retries, dead letters."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.servers import FeedServer, WebhookReceiver
from tests.test_pipeline import seeds_runtime
from worker import pipeline
from worker.config import load_config
from worker.deliver.chat import chat_message, md
from worker.errors import ConfigError
from worker.runtime import Runtime

pytest.importorskip("apprise", reason="the apprise extra is not installed")


def apprise_runtime(tmp_path: Path, server: FeedServer, receiver: WebhookReceiver,
                    redis_url: str) -> Runtime:
    url = receiver.url.replace("http://", "json://")
    return seeds_runtime(tmp_path, server, redis_url, f"""\
          - id: chat
            apprise: {url}
            topics: [ceasefire-talks, hostage-releases]
""")


def alerts_for(rt: Runtime) -> list[str]:
    ids = []
    for feed in rt.config.feeds:
        outcome = pipeline.poll_feed(rt.poller, feed.id)
        ids += pipeline.process_entries(rt.processor, list(outcome.new_entries))
    return ids


def test_alerts_reach_the_chat_endpoint_formatted(tmp_path: Path, feed_server: FeedServer,
                                                  receiver: WebhookReceiver,
                                                  redis_url: str) -> None:
    rt = apprise_runtime(tmp_path, feed_server, receiver, redis_url)
    ids = alerts_for(rt)
    assert len(ids) == 5
    assert all(pipeline.deliver_alert(rt.deliverer, i).status == "delivered" for i in ids)
    assert len(receiver.received) == 5
    seed = next(h.body for h in receiver.received if "Qatari" in h.body["title"])
    assert seed["title"] == ("[newswatch] Ceasefire talks, Hostage releases: Hamas says "
                             "indirect talks with Israel resumes in Qatari capital")
    message = seed["message"]                     # Apprise's json:// carries our Markdown
    assert "**Ceasefire talks**" in message and "**Hostage releases**" in message
    assert "*hostages*" in message                # the evidence, highlighted
    assert "(<https://levantwire.example/" in message    # the story's link
    assert "Also reported by" in message


def test_retried_like_a_webhook_then_dead_lettered_on_a_4xx(
        tmp_path: Path, feed_server: FeedServer, receiver: WebhookReceiver,
        redis_url: str) -> None:
    rt = apprise_runtime(tmp_path, feed_server, receiver, redis_url)
    first, second, *_ = alerts_for(rt)
    receiver.statuses = [503, 500]
    assert pipeline.deliver_alert(rt.deliverer, first).status == "retrying"
    outcome = pipeline.deliver_alert(rt.deliverer, first)
    assert outcome.status == "retrying" and "error=500" in (outcome.error or "")
    assert pipeline.deliver_alert(rt.deliverer, first).status == "delivered"
    receiver.statuses = [404]
    dead = pipeline.deliver_alert(rt.deliverer, second)
    assert dead.status == "dead" and "error=404" in (dead.error or "")
    assert rt.store.records.dead() == [second]
    assert "/hook" not in (dead.error or "")      # a URL's path may hold a token: not logged


def test_the_ssrf_guard_covers_apprise_http_schemes(
        tmp_path: Path, feed_server: FeedServer, receiver: WebhookReceiver,
        redis_url: str) -> None:
    rt = apprise_runtime(tmp_path, feed_server, receiver, redis_url)
    first = alerts_for(rt)[0]
    settings = rt.config.settings.model_copy(update={"allow_private_networks": False})
    object.__setattr__(rt.config, "settings", settings)     # the config is frozen
    outcome = pipeline.deliver_alert(rt.deliverer, first)
    assert outcome.status == "dead" and "127.0.0.1 is loopback" in (outcome.error or "")
    assert receiver.attempts == []


def test_unknown_apprise_url_is_a_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, """\
        subscribers:
          - id: chat
            apprise: nosuchservice://token
            topics: [ceasefire-talks]
        """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems[0].startswith(
        f"{path}:3: subscribers[0].apprise: not a notification URL that Apprise knows")


def test_feed_text_cannot_inject_markdown() -> None:
    hostile = "Read [this](https://evil.example) ![x](https://t.example/p.png) <b>@everyone</b>"
    title, text = chat_message({
        "type": "alert", "id": "a", "subscriber": "chat",
        "topics": [{"id": "t", "name": "Talks # now", "evidence": ["*talks* [go](x)"]}],
        "story": {"title": hostile, "url": "javascript:alert(1)", "published": None,
                  "summary": "", "source": {"title": "Wire\n# Heading"},
                  "also_reported_by": [{"title": "t", "url": "https://b.example/x)y",
                                        "source": "B"}]}})
    assert "](https://evil" not in text and "![" not in text and "<b>" not in text
    assert "javascript:" not in text.replace(md("javascript:"), "")
    assert "\n# Heading" not in text and "Wire \\# Heading" in text
    assert "*talks*" in text and "\\[go\\]\\(x\\)" in text
    assert "(<https://b.example/x)y>)" in text    # a link's target stays in its brackets
    assert "\n" not in title


def test_google_chat_posts_an_alert_into_its_story_thread() -> None:
    """Google Chat threads messages by a key the sender chooses: an alert's is its thread's
    story id, so a related report lands in the first one's thread. A key in the URL wins.
    (Google's endpoint is not reachable from tests: the service as configured is checked.)"""
    import apprise

    from worker.deliver.apprise import in_thread

    body = {"type": "alert", "thread": "s3e0ac3c3b7d3a654"}
    notifier = apprise.Apprise()
    assert notifier.add("gchat://workspace/key/token")
    in_thread(notifier, body)  # type: ignore[arg-type]
    [service] = list(notifier)
    assert service.thread_key == "s3e0ac3c3b7d3a654"
    assert "s3e0ac3c3b7d3a654" in service.url(privacy=False)
    own = apprise.Apprise()
    assert own.add("gchat://workspace/key/token/desk-thread")
    in_thread(own, body)  # type: ignore[arg-type]
    assert next(iter(own)).thread_key == "desk-thread"
    other = apprise.Apprise()
    assert other.add("json://127.0.0.1:9/hook")
    in_thread(other, body)  # type: ignore[arg-type]
    assert not hasattr(next(iter(other)), "thread_key")
