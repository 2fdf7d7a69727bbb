"""Rendering alerts: the webhook body contract, safe email headers and HTML, retry timing."""

from __future__ import annotations

import email
import email.policy
import json
import random
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from tests.conftest import SECRET
from worker.deliver import chat, render
from worker.deliver.outbox import write_outbox
from worker.deliver.retry import backoff, decide_failure
from worker.deliver.webhook import signed_headers
from worker.models import Alert, Entry, Match
from worker.retry_after import retry_after_seconds


def alert(title: str = "Talks resume", link: str | None = "https://a.example/1") -> Alert:
    e = Entry("f1", "g1", title, "Mediators met <again>.", link,
              datetime(2025, 1, 4, 14, 5, tzinfo=UTC), "Wire", "en")
    return Alert("al1", "desk", "s1", e,
                 (Match("ceasefire-talks", "Ceasefire talks", 1.0, ("*Talks* resume",),
                        ("talk = Talks",)),),
                 datetime(2025, 1, 4, 14, 6, tzinfo=UTC))


def test_webhook_body_contract() -> None:
    copy = Entry("f2", "g2", "Talks resume, again", "", "https://b.example/2", None, "Other")
    dup = Entry("f3", "g3", "same link", "", "https://a.example/1", None, "Mirror")
    body = render.webhook_body(alert(), "https://wire.example/rss", [alert().entry, copy, dup],
                               ["Middle East/Gulf"])
    assert body == {
        "type": "alert", "id": "al1", "update": False, "subscriber": "desk",
        "topics": [{"id": "ceasefire-talks", "name": "Ceasefire talks", "score": 1.0,
                    "evidence": ["*Talks* resume"], "clauses": ["talk = Talks"]}],
        "story": {"id": "s1", "title": "Talks resume", "url": "https://a.example/1",
                  "published": "2025-01-04T14:05:00Z", "summary": "Mediators met <again>.",
                  "lang": "en", "source": {"feed": "https://wire.example/rss", "title": "Wire",
                             "categories": ["Middle East/Gulf"]},
                  "also_reported_by": [{"title": "Talks resume, again",
                                        "url": "https://b.example/2", "source": "Other"},
                                       {"title": "same link", "url": "https://a.example/1",
                                        "source": "Mirror"}]},
        "detected_at": "2025-01-04T14:06:00Z",
        "thread": "s1", "related_to": None, "reply_to": None,
    }


def test_a_related_alert_says_so_and_replies_in_its_thread() -> None:
    """A report newswatch is not sure is the same event as an earlier story: alerted, naming
    that story, and threaded under this subscriber's first alert of it in every channel."""
    from dataclasses import replace as copy_of

    from worker.deliver.chat import chat_message
    from worker.models import Related

    related = copy_of(alert("Israeli strikes across Lebanon as ceasefire deal is reported"),
                      id="al2", story_id="s2", thread="s1", reply_to="al1",
                      related=Related("s1", "Israel cabinet to meet on Lebanon ceasefire deal",
                                      "https://a.example/0"))
    assert Alert.from_dict(json.loads(json.dumps(related.to_dict()))) == related
    body = render.webhook_body(related, "https://wire.example/rss")
    assert body["thread"] == "s1" and body["reply_to"] == "al1"
    assert body["related_to"] == {"story": "s1", "url": "https://a.example/0",
                                  "title": "Israel cabinet to meet on Lebanon ceasefire deal"}
    msg = render.email_message(body, to="desk@example.org", from_address="nw@example.org")
    assert msg["Message-ID"] == "<al2@newswatch>"
    assert msg["In-Reply-To"] == msg["References"] == "<al1@newswatch>"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "Related to: Israel cabinet to meet on Lebanon ceasefire deal" in text
    assert "Related to:" in html and "https://a.example/0" in html
    assert "Related to:" in chat_message(body)[1]
    first = render.email_message(render.webhook_body(alert(), "https://wire.example/rss"),
                                 to="desk@example.org", from_address="nw@example.org")
    assert first["In-Reply-To"] is None       # the first of its thread replies to nothing


def test_signature_verifies_with_the_reference_library() -> None:
    payload = json.dumps({"id": "al1"})
    headers = signed_headers(SECRET, "al1", payload)
    assert Webhook(SECRET).verify(payload, headers) == {"id": "al1"}
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(payload.replace("al1", "al2"), headers)


def test_email_headers_are_single_line_and_html_is_escaped() -> None:
    hostile = "Breaking\r\nBcc: victim@example.org\r\n<script>x</script> " + "long " * 80
    body = render.webhook_body(alert(hostile, "javascript:alert(1)"), "u")
    msg = render.email_message(body, to="desk@example.org", from_address="nw@example.org")
    raw = msg.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert "\n" not in str(parsed["Subject"]) and len(str(parsed["Subject"])) <= 200
    html = parsed.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert "&lt;again&gt;" in html
    assert parsed["Message-ID"] == "<al1@newswatch>"


def test_outbox_writes_json_and_eml(tmp_path: Path) -> None:
    body = render.webhook_body(alert(), "u")
    msg = render.email_message(body, to="desk@localhost", from_address="nw@localhost")
    path = write_outbox(tmp_path / "box", body, msg)
    assert json.loads(path.read_text()) == body
    eml = email.message_from_bytes((tmp_path / "box" / "al1.eml").read_bytes(),
                                   policy=email.policy.default)
    assert eml["Subject"] == "[newswatch] Ceasefire talks: Talks resume"
    assert [p.name for p in (tmp_path / "box").iterdir() if p.name.startswith(".")] == []


def test_backoff_is_bounded_jittered_and_honours_retry_after() -> None:
    rng = random.Random(1)
    delays = [backoff(n, rng=rng) for n in range(1, 12)]
    assert all(0 <= d <= min(600, 2 * 2 ** (n - 1)) for n, d in enumerate(delays, 1))
    assert len(set(delays)) == len(delays)
    assert backoff(1, retry_after=30, rng=rng) >= 30
    assert backoff(1, retry_after=10_000, rng=rng) == 600


@pytest.mark.parametrize(("retryable", "attempts", "age", "retry_after", "expect"), [
    (False, 0, 0, None, ("dead", "HTTP 404")),                  # permanent: dead at once
    (True, 0, 0, None, ("retry", "HTTP 503")),
    (True, 4, 0, 120, ("retry", "HTTP 503")),                  # waits at least Retry-After
    (True, 6, 3601, None, ("dead", "HTTP 503 (gave up after 7 attempts)")),   # too old
])
def test_what_a_failed_attempt_leads_to(retryable: bool, attempts: int, age: float,
                                        retry_after: float | None,
                                        expect: tuple[str, str]) -> None:
    now = 10_000.0
    error = "HTTP 503" if retryable else "HTTP 404"
    d = decide_failure(attempts=attempts, created_at=now - age, now=now, error=error,
                       retryable=retryable, retry_after=retry_after, base=2, cap=600,
                       max_age=3600, rng=random.Random(3))
    assert ("dead" if d.dead else "retry", d.error) == expect and d.attempt == attempts + 1
    if not d.dead:
        assert d.retry_at is not None
        ceiling = max(min(600, 2 * 2 ** attempts), retry_after or 0)
        assert now + (retry_after or 0) <= d.retry_at <= now + ceiling


def test_retry_after_forms() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    value = retry_after_seconds(later)
    assert value is not None and 80 <= value <= 90


class _Tags(HTMLParser):
    """Checks that every opened element is closed in order (void elements aside)."""

    VOID = frozenset({"meta", "br", "img", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(tag)


def test_email_html_is_self_contained_and_matches_its_text_twin() -> None:
    copy = Entry("f2", "g2", "Talks resume, again", "", "https://b.example/2", None, "Other")
    body = render.webhook_body(alert(), "u", [alert().entry, copy])
    msg = render.email_message(body, to="desk@example.org", from_address="nw@example.org")
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    tags = _Tags()
    tags.feed(html)
    assert tags.errors == [] and tags.stack == []
    # No <style>, <script> or external resource: mail clients strip or block them.
    assert not tags.tags & {"style", "script", "link", "img", "iframe"}
    assert all(not (v or "").startswith(("http://", "//")) for k, v in tags.attrs
               if k == "src")
    for twin in (html, text):
        assert "Talks resume" in twin and "https://a.example/1" in twin
        assert "Talks resume, again" in twin and "Ceasefire talks" in twin
        assert "4 Jan 2025, 14:05 UTC" in twin
    assert re.search(r"<mark[^>]*>Talks</mark> resume", html)


def test_digest_and_notice_html_escape_feed_text() -> None:
    evil = "<img src=x onerror=alert(1)>"
    digest = {"type": "digest", "id": "d1", "subscriber": "desk", "stories": 1,
              "period": {"kind": "daily", "label": "2025-01-04", "timezone": "UTC"},
              "topics": [{"id": "t", "name": evil, "stories": [
                  {"id": "s", "title": evil, "url": "javascript:x", "also_topics": [],
                   "sources": [{"source": evil, "title": evil, "url": None}]}],
                  "maybe": [{"id": "m", "title": evil, "url": "javascript:y", "source": evil,
                             "lang": '"><img', "score": 0.4, "threshold": 0.5,
                             "by": "model"}]}]}
    notice = {"type": "feed_problem", "id": "n1", "subscriber": "ops", "problem": "failing",
              "feed": {"id": "f", "name": evil, "url": "https://x.example/rss"},
              "error_class": "HTTP 500", "error": evil, "errors_in_a_row": 5}
    for msg in (render.digest_email(digest, to="a@b.example", from_address="n@b.example"),
                render.notice_email(notice, to="a@b.example", from_address="n@b.example")):
        html = msg.get_body(("html",)).get_content()
        assert "<img" not in html and "&lt;img" in html and "javascript:" not in html
    _, markdown = chat.chat_message(digest)                      # type: ignore[arg-type]
    assert "javascript:" not in markdown and "<img" not in markdown.replace("\\<", "")
