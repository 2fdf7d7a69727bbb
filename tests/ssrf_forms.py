"""Spellings of non-public addresses, a loopback trap that counts every connection it is
offered, and one function per path an untrusted URL takes out of newswatch (feeds, redirects,
webhooks, Apprise, WebSub). Shared by tests/test_ssrf.py and bench/hostile.py."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker import netguard, websub
from worker.deliver.apprise import send_apprise
from worker.deliver.attempt import attempt
from worker.deliver.webhook import make_client, send_webhook
from worker.errors import DeliveryError, FetchError
from worker.fetch import Limits, Validators, fetch

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# Each spells 127.0.0.1 or ::1 (the trap listens on both), or a name for them.
LOOPBACK_FORMS = [
    "127.0.0.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "0x7f000001", "127.1", "127.0.1",
    "0", "0.0.0.0", "[::1]", "[0:0:0:0:0:0:0:1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]",
    "[::127.0.0.1]", "[64:ff9b::7f00:1]", "[2002:7f00:1::]",
    "127。0。0。1", "１２７.０.０.１", "①②⑦.0.0.1", "127．0．0．1", "127｡0｡0｡1",
    "127.0.0.1.", "localhost", "localhost.", "LOCALHOST", "ｌｏｃａｌｈｏｓｔ", "x.localhost",
    "user:pw@127.0.0.1", "public.example@127.0.0.1", "public.example:80@localhost",
]
# Other non-public targets, unreachable here: the refusal must come before any connection.
OTHER_FORMS = [
    ("169。254。169。254", "link-local"), ("0xa9fea9fe", "link-local"),
    ("[::ffff:169.254.169.254]", "link-local"), ("１０.０.０.１", "private"),
    ("192.168.1.1", "private"), ("[fec0::1]", "site-local"), ("[fd00::1]", "private"),
    ("100.64.0.1", "not a public address"), ("metadata.google.internal", "local name"),
]
APPRISE_SCHEMES = [
    "json://{h}/hook", "form://{h}/hook", "xml://{h}/hook", "ntfy://{h}/topic",
    "gotify://{h}/AbCdEfGhIjKlMnO", "apprise://{h}/token", "mmost://{h}/tokenabc",
    "matrix://user:pass@{h}/#room", "rocket://user:pass@{h}/#channel",
    "bark://{h}/devicekey", "kodi://{h}", "hassio://{h}/accesstoken",
    "nctalk://user:pass@{h}/roomid", "ncloud://user:pass@{h}/other",
    "signal://{h}/12025550123/12025550124", "emby://user:pass@{h}",
    "mailto://user:pass@example.com?smtp={bare}&to=desk@example.com",
]


class Trap:
    """Listens on 127.0.0.1 and ::1 on one port; counts connections; answers HTTP 200."""

    def __init__(self) -> None:
        self.connections = 0
        self.lock = threading.Lock()
        trap = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with trap.lock:
                    trap.connections += 1
                self.request.settimeout(2)
                try:
                    self.request.recv(65536)
                    self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                         b"Connection: close\r\n\r\nok")
                except OSError:
                    pass

        class V6(socketserver.ThreadingTCPServer):
            address_family = socket.AF_INET6

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.v4 = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.port = self.v4.server_address[1]
        self.servers: list[socketserver.ThreadingTCPServer] = [self.v4]
        with contextlib.suppress(OSError):    # no IPv6 loopback: v6 forms cannot connect
            self.servers.append(V6(("::1", self.port), Handler))
        for server in self.servers:
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def url(form: str, port: int, path: str = "/x") -> str:
    return f"http://{form}:{port}{path}"


def raw_header(value: str) -> str:
    """A header value whose UTF-8 bytes go on the wire as they are (http.server encodes
    headers as Latin-1), as a hostile server would send them."""
    return value.encode().decode("latin-1")


@dataclass
class Outcome:
    refused: bool            # an error came back (nothing delivered)
    reason: str


def via_feed(target: str, *, guard: bool = True) -> Outcome:
    try:
        fetch(target, Validators(), Limits(timeout=2.0, max_seconds=5.0,
                                           allow_private=not guard))
    except FetchError as exc:
        return Outcome(True, exc.reason)
    return Outcome(False, "fetched")


def via_webhook(target: str, *, guard: bool = True) -> Outcome:
    with make_client(user_agent="t", timeout=2.0) as client:
        try:
            attempt(lambda: send_webhook(client, target, SECRET, {"id": "a1", "type": "alert"}),
                    target=target, guarded=guard, seconds=5.0)
        except DeliveryError as exc:
            return Outcome(True, exc.reason)
    return Outcome(False, "delivered")


BODY = {"id": "a1", "type": "alert", "topics": [], "story": {
    "title": "t", "url": "https://news.example/a", "summary": "", "source": {"title": "s"},
    "also_reported_by": []}}


def via_apprise(target: str, *, guard: bool = True) -> Outcome:
    try:
        attempt(lambda: send_apprise(target, BODY, timeout=2.0, deadline=5.0), target=target,
                guarded=guard, seconds=5.0)
    except DeliveryError as exc:
        return Outcome(True, exc.reason)
    return Outcome(False, "delivered")


def via_websub(rt: Any, target: str) -> Outcome:
    feed_id = rt.config.feeds[0].id
    ok = websub.subscribe(rt.store, rt.http, rt.config.settings, feed_id, websub.Hub(target, "https://news.example/feed"))
    return Outcome(not ok, rt.store.feeds.websub([feed_id])[feed_id].error)


def allow_only(address: str) -> Callable[[Any], str | None]:
    """netguard.address_problem, but letting `address` through (the tests' stand-in for a
    public server that redirects)."""
    real = netguard.address_problem

    def problem(ip: Any) -> str | None:
        return None if str(ip) == address else real(ip)

    return problem


def websub_config(folder: Path) -> Path:
    path = folder / f"websub-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text("feeds:\n  - url: https://news.example/feed\n"
                    "topics:\n  t:\n    name: T\n    query: truce\n"
                    "settings:\n  websub_callback: https://newswatch.example\n"
                    "  allow_private_networks: false\n")
    return path
