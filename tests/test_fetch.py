"""Fetching over real HTTP on 127.0.0.1: conditional GET, limits, errors that name the URL."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.servers import FeedServer, Served
from worker.errors import FetchError
from worker.fetch import FetchResult, Limits, Validators, fetch

BODY = b"<rss version='2.0'><channel><title>t</title></channel></rss>"


NONE = Validators()


def get(url: str, validators: Validators = NONE, *, max_bytes: int = 10_000,
        timeout: float = 2.0) -> FetchResult:
    return fetch(url, validators, Limits(user_agent="newswatch-test/1", timeout=timeout,
                                         max_bytes=max_bytes, allow_private=True))


def test_conditional_get_round_trip(feed_server: FeedServer) -> None:
    feed_server.files["/a.xml"] = Served(BODY)
    first = get(feed_server.url("/a.xml"))
    assert first.status == 200 and first.body == BODY
    assert first.validators.etag and first.validators.last_modified
    second = get(feed_server.url("/a.xml"), first.validators, max_bytes=10_000)
    assert second.not_modified and second.body == b""
    _, headers = feed_server.requests[-1]
    assert headers["If-None-Match"] == first.validators.etag
    assert headers["If-Modified-Since"] == first.validators.last_modified
    assert headers["User-Agent"] == "newswatch-test/1"
    only_date = get(feed_server.url("/a.xml"), Validators(None, first.validators.last_modified))
    assert only_date.not_modified


def test_size_limit_counts_decompressed_bytes() -> None:
    bomb = gzip.compress(b"<rss>" + b" " * 2_000_000)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(bomb)))
            self.end_headers()
            self.wfile.write(bomb)

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/bomb"
    try:
        with pytest.raises(FetchError, match="exceeds the 100000-byte limit"):
            get(url, Validators(), max_bytes=100_000)
    finally:
        server.shutdown()


def test_declared_length_over_limit(feed_server: FeedServer) -> None:
    feed_server.files["/big.xml"] = Served(b"x" * 5000)
    with pytest.raises(FetchError) as info:
        get(feed_server.url("/big.xml"), Validators(), max_bytes=1000)
    assert info.value.url == feed_server.url("/big.xml")


@pytest.mark.parametrize("status", [404, 410, 500])
def test_http_errors_name_the_url(feed_server: FeedServer, status: int) -> None:
    feed_server.files["/x"] = Served(b"", status=status)
    with pytest.raises(FetchError) as info:
        get(feed_server.url("/x"), Validators(), max_bytes=1000)
    assert str(info.value).startswith(feed_server.url("/x") + ": HTTP " + str(status))


def test_connection_refused_and_timeout() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(FetchError, match="ConnectError"):
            get(f"http://127.0.0.1:{port}/", Validators(), max_bytes=10)
        s.listen()                     # accepts, never answers: a read timeout
        with pytest.raises(FetchError, match="timed out"):
            get(f"http://127.0.0.1:{port}/", max_bytes=10, timeout=0.3)


def test_file_urls_are_conditional_too(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(BODY)
    first = get(path.as_uri(), Validators(), max_bytes=1000)
    assert first.status == 200 and first.body == BODY
    assert get(path.as_uri(), first.validators, max_bytes=1000).not_modified
    with pytest.raises(FetchError, match="no such file"):
        get((tmp_path / "missing.xml").as_uri(), Validators(), max_bytes=1000)
