"""Hostile input: oversized, slow, looping, entity-laden and random feeds. Each is refused or
read within bounds, with an error naming the feed; nothing else is affected."""

from __future__ import annotations

import email
import email.policy
import random
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DATA, SEEDS, runtime_for
from tests.servers import FeedServer, Served, wait_for
from worker import parsepool, pipeline
from worker.deliver import render
from worker.errors import FetchError, ParseError
from worker.fetch import FetchResult, Limits, Validators, fetch
from worker.models import Entry
from worker.parse import parse_feed


def get(url: str, *, max_seconds: float = 60.0) -> FetchResult:
    return fetch(url, Validators(), Limits(timeout=1.0, max_bytes=1000, max_seconds=max_seconds,
                                           allow_private=True))


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_redirect_loop_is_cut() -> None:
    class Loop(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", f"/r{int(self.path[2:] or 0) + 1}")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server, base = serve(Loop)
    try:
        with pytest.raises(FetchError, match="more than 5 redirects"):
            get(base + "/r0")
    finally:
        server.shutdown()


def test_trickling_server_hits_the_total_time_limit() -> None:
    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(100):          # a byte every 0.1 s: each read is quick
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass

        def log_message(self, *a: object) -> None:
            pass

    server, base = serve(Trickle)
    try:
        start = time.monotonic()
        with pytest.raises(FetchError, match=r"no complete answer within 1 s "
                                             r"\(max_fetch_seconds\)"):
            get(base + "/slow", max_seconds=1.0)
        assert time.monotonic() - start < 3
    finally:
        server.shutdown()


def test_a_feed_of_100000_entries_is_read_within_bounds() -> None:
    items = "".join(f"<item><title>Item {i}</title><guid>g{i}</guid></item>"
                    for i in range(100_000))
    body = f"<?xml version='1.0'?><rss version='2.0'><channel><title>big</title>{items}" \
           "</channel></rss>".encode()
    tracemalloc.start()
    start = time.monotonic()
    entries = parse_feed(body, url="https://big.example/rss", feed_id="f", feed_name="")
    elapsed = time.monotonic() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(entries) == 1000 and entries[0].title == "Item 0"
    assert elapsed < 10 and peak < 100_000_000


LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE rss [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;"><!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
 <!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;"><!ENTITY i "&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;">
]><rss version="2.0"><channel><title>t</title>
<item><title>boom &i;</title><description>x</description></item></channel></rss>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title>
<item><title>leak &x; end</title><description>d</description></item></channel></rss>"""


def test_entity_expansion_and_external_entities_are_refused() -> None:
    tracemalloc.start()
    try:
        entries = parse_feed(LAUGHS, url="u", feed_id="f", feed_name="")
        assert all(len(e.title) < 1000 for e in entries)
    except ParseError:
        pass
    assert tracemalloc.get_traced_memory()[1] < 50_000_000
    tracemalloc.stop()
    entries = parse_feed(XXE, url="u", feed_id="f", feed_name="")
    assert "root:" not in entries[0].title and entries[0].title == "leak end"


def test_one_click_unsubscribe_headers() -> None:
    e = Entry("f", "g", "Title", "Summary", "https://a.example/", None, "Src")
    body = {"id": "al1", "subscriber": "desk", "topics": [], "story": {
        "title": e.title, "url": e.link, "summary": "", "source": {"title": "Src"},
        "also_reported_by": []}}
    msg = render.email_message(body, to="desk@example.org", from_address="nw@example.org",
                               unsubscribe_url="https://news.example.org/unsub")
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert parsed["List-Unsubscribe"] == ("<https://news.example.org/unsub?subscriber=desk&"
                                          "alert=al1>, <mailto:nw@example.org?subject="
                                          "unsubscribe%20desk%40example.org>")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_unforeseen_parser_failure_is_recorded_for_that_feed_only(
        tmp_path: Path, feed_server: FeedServer, redis_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    feed_server.files["/good.xml"] = Served((SEEDS / "levant-wire.xml").read_bytes())
    feed_server.files["/evil.xml"] = Served(b"<rss version='2.0'><channel><title>EVIL</title>"
                                            b"<item><title>x</title></item></channel></rss>")
    rt = runtime_for(tmp_path, f"""\
        feeds:
          - url: {feed_server.url('/evil.xml')}
          - url: {feed_server.url('/good.xml')}
        """, redis_url)
    real = parsepool.read_feed

    def exploding(body: bytes, **kw: object):  # type: ignore[no-untyped-def]
        if b"EVIL" in body:
            raise RecursionError("maximum recursion depth exceeded")  # a parser bug
        return real(body, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(parsepool, "read_feed", exploding)
    evil, good = pipeline.poll_feeds(rt.poller, [f.id for f in rt.config.feeds])     # one batch
    assert evil.status == "error"
    assert evil.error == (f"{feed_server.url('/evil.xml')}: internal error: RecursionError: "
                          "maximum recursion depth exceeded")
    assert good.status == "ok" and len(good.new_entries) == 5


def _corpus() -> list[bytes]:
    docs = [p.read_bytes() for p in sorted(SEEDS.glob("*.*")) if p.suffix != ".md"]
    docs += [(DATA / name).read_bytes() for name in ("broken.xml", "noguid.xml")]
    shared = Path(__file__).resolve().parents[2] / "shared" / "feeds" / "tricky"
    if shared.is_dir():
        docs += [p.read_bytes() for p in sorted(shared.iterdir()) if p.suffix != ".gz"][:40]
    return docs


CORPUS = _corpus()
NASTY = [b"<", b"&", b"]]>", b"<![CDATA[", b"\x00", b"\xff\xfe", b"<!ENTITY x 'y'>",
         b"<script>", b"</item>", b"<item>", b"&#x0;", b"\r\n", b"{", b"\"", b"<?xml"]


def _check(body: bytes) -> None:
    try:
        entries = parse_feed(body, url="https://fuzz.example/feed", feed_id="f", feed_name="")
    except ParseError as exc:
        assert exc.url == "https://fuzz.example/feed" and exc.reason
        return
    for e in entries:
        assert isinstance(e.title, str) and isinstance(e.summary, str) and e.entry_id
        assert e.link is None or e.link.startswith(("http://", "https://"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4000))
def test_random_bytes_never_crash_the_parser(body: bytes) -> None:
    _check(body)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(CORPUS) - 1), st.lists(st.tuples(st.integers(0, 10**6),
                                                           st.integers(0, 3),
                                                           st.integers(0, len(NASTY) - 1)),
                                                 max_size=8))
def test_mutated_real_feeds_never_crash_the_parser(which: int,
                                                   edits: list[tuple[int, int, int]]) -> None:
    body = bytearray(CORPUS[which])
    for position, kind, nasty in edits:
        at = position % (len(body) + 1)
        if kind == 0:
            body[at:at] = NASTY[nasty]                       # insert
        elif kind == 1:
            del body[at:at + 1 + nasty * 7]                  # delete
        elif kind == 2:
            body = body[:at]                                 # truncate
        elif at < len(body):
            body[at] = random.Random(position).randrange(256)    # flip a byte
    _check(bytes(body))


def test_feedparser_crash_in_the_xml_declaration_is_survived() -> None:
    # Found by the fuzzer: feedparser 6.0.x decodes the declared encoding as UTF-8.
    body = b'<?xml version="1.0" encoding="utf\x83-8"?><rss version="2.0"><channel>' \
           b"<title>t</title><item><title>Truce talks</title><guid>1</guid></item>" \
           b"</channel></rss>"
    entries = parse_feed(body, url="u", feed_id="f", feed_name="")
    assert [e.title for e in entries] == ["Truce talks"]


def test_slow_status_line_and_headers_are_cut_and_hold_no_other_feed() -> None:
    """A server sending its status line and headers a byte at a time (each read is quick, so
    no per-read timeout fires) is cut at max_fetch_seconds; the batch's other feed is read."""
    class Drip(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/fast":
                body = (SEEDS / "levant-wire.xml").read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n" * 20:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass

        def log_message(self, *a: object) -> None:
            pass

    from worker.fetch import fetch_many

    server, base = serve(Drip)
    try:
        start = time.monotonic()
        slow, fast = fetch_many([(base + "/slow", Validators()), (base + "/fast", Validators())],
                                Limits(timeout=1.0, max_seconds=1.5, allow_private=True))
        elapsed = time.monotonic() - start
    finally:
        server.shutdown()
    assert isinstance(slow, FetchError)
    assert slow.reason == "no complete answer within 1.5 s (max_fetch_seconds)"
    assert isinstance(fast, FetchResult) and fast.status == 200
    assert elapsed < 4


def test_unclosed_items_cannot_bypass_max_entries() -> None:
    """100,000 <item> never closed (so no closing tag to count): the parser's output is cut."""
    items = "".join(f"<item><title>Item {i}</title><guid>g{i}</guid>" for i in range(100_000))
    body = f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{items}" \
           "</channel></rss>".encode()
    tracemalloc.start()
    entries = parse_feed(body, url="https://big.example/rss", feed_id="f", feed_name="",
                         max_entries=500)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0 < len(entries) <= 500 and peak < 100_000_000


def test_a_million_empty_items_are_cut_before_parsing() -> None:
    body = b"<rss version='2.0'><channel><title>t</title>" + b"<item/>" * 1_400_000 + \
        b"<item><title>last</title></item></channel></rss>"
    start = time.monotonic()
    entries = parse_feed(body, url="u", feed_id="f", feed_name="")
    assert entries == [] and time.monotonic() - start < 5


def test_parsing_is_cut_at_max_parse_seconds_in_a_parser_process(store, redis_url: str  # type: ignore[no-untyped-def]
                                                                 ) -> None:
    """A body the pre-cuts cannot shorten (one item of 300,000 categories: ~7 s to parse)
    is stopped in its parser process; the feed gets the error, the pool goes on."""
    slow = b"<rss version='2.0'><channel><title>t</title><item><title>x</title>" + \
        b"<category>c</category>" * 300_000 + b"</item></channel></rss>"
    good = (SEEDS / "levant-wire.xml").read_bytes()
    parser = parsepool.Parser(store, parsepool.StoreSpec(redis_url, store.p), processes=2)
    try:
        start = time.monotonic()
        cut, fine = parser.take_in_all([(slow, "https://slow.example/rss", "f1", "Slow", {}),
                                        (good, "https://good.example/rss", "f2", "Good", {})],
                                       max_entries=1000, max_seconds=0.5)
        elapsed = time.monotonic() - start
        again = parser.take_in_all([(good, "https://good.example/rss", "f3", "Good", {})],
                                   max_entries=1000, max_seconds=0.5)
    finally:
        parser.close()
    assert isinstance(cut, ParseError) and cut.url == "https://slow.example/rss"
    assert cut.reason == "parsing took longer than 0.5 s (max_parse_seconds)"
    assert isinstance(fine, parsepool.Taken) and fine.entries == 5
    assert isinstance(again[0], parsepool.Taken) and again[0].entries == 5
    assert elapsed < 5


def test_a_slow_webhook_receiver_is_cut_and_never_sent_twice_at_once(
        tmp_path: Path, feed_server: FeedServer, redis_url: str) -> None:
    """The receiver answers after 3 s; delivery_timeout is 1 s and the claim would lapse
    after 6 s without its heartbeat. The attempt is cut at 1 s and retried; meanwhile the
    lost-work sweep never hands the alert out again, and no two attempts overlap."""
    from tests.conftest import SECRET
    from tests.servers import WebhookReceiver

    receiver = WebhookReceiver(SECRET)
    receiver.delay = 3.0
    feed_server.files["/wire.xml"] = Served((SEEDS / "levant-wire.xml").read_bytes())
    rt = runtime_for(tmp_path, f"""\
        feeds:
          - url: {feed_server.url('/wire.xml')}
        subscribers:
          - id: ops
            webhook: {receiver.url}
            secret: {SECRET}
            topics: [ceasefire-talks]
        settings:
          delivery_timeout: 1
          fetch_timeout: 10
          redeliver_after: 1
          retry_base_delay: 0.05
        """, redis_url)
    try:
        outcome = pipeline.poll_feed(rt.poller, rt.config.feeds[0].id)
        alert_id = pipeline.process_entries(rt.processor, list(outcome.new_entries))[0]
        claimed = rt.store.records.k("claim", alert_id)
        attempt: dict[str, Any] = {}

        def deliver() -> None:
            started_at = time.time()
            attempt["outcome"] = pipeline.deliver_alert(rt.deliverer, alert_id)
            attempt["took"] = time.time() - started_at

        delivering = threading.Thread(target=deliver)
        delivering.start()
        # Sweep (as `maintain` would, 5 s on) from the moment the attempt holds its claim
        # until it ends: before the claim, an unclaimed pending alert is fair game.
        assert wait_for(lambda: bool(rt.store.r.exists(claimed)) or not delivering.is_alive(),
                        10, step=0.005)
        swept: list[tuple[float, tuple[str, ...]]] = []      # (when, alerts handed out)
        while delivering.is_alive():
            alerts = pipeline.due_work(rt.store, rt.config, now=time.time() + 5).alerts
            swept.append((time.time(), alerts))
            time.sleep(0.05)
        delivering.join()
        first = attempt["outcome"]
        # Cut before the receiver answered, whatever the machine's speed.
        assert first.status == "retrying" and attempt["took"] < receiver.delay
        assert first.error and "no complete answer within 1 s (delivery_timeout)" in first.error
        failed_at = rt.store.records.history(alert_id)[0]["at"]      # the attempt's end
        during = [alerts for when, alerts in swept if when < failed_at]
        assert during                                   # the sweep looked while it ran...
        assert all(alert_id not in alerts for alerts in during)      # ...in vain
        receiver.delay = 0
        assert pipeline.deliver_alert(rt.deliverer, alert_id).status == "delivered"
    finally:
        receiver.close()
    starts = sorted(t for _, t, _ in receiver.attempts)
    assert len(starts) == 2 and starts[1] - starts[0] >= 1.0     # one after the other
