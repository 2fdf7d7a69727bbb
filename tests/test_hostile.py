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

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import DATA, SEEDS, runtime_for
from tests.servers import FeedServer, Served
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
        with pytest.raises(FetchError, match=r"body took longer than 1 s"):
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
    real = parsepool.parse_feed

    def exploding(body: bytes, **kw: object):  # type: ignore[no-untyped-def]
        if b"EVIL" in body:
            raise RecursionError("maximum recursion depth exceeded")  # a parser bug
        return real(body, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(parsepool, "parse_feed", exploding)
    evil, good = pipeline.poll_feeds(rt, [f.id for f in rt.config.feeds])     # one batch
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
