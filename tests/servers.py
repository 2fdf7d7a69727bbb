"""Real local servers for the tests: a feed server honouring conditional GET, a webhook receiver
that verifies Standard Webhooks signatures, an SMTP server (aiosmtpd), a WebSub hub.
127.0.0.1 only."""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode
from urllib.request import Request, urlopen

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook

from worker.embedded import free_port


@dataclass
class Served:
    body: bytes
    content_type: str = "application/xml"
    modified: float = field(default_factory=time.time)
    status: int = 200
    location: str | None = None          # with a 3xx status
    headers: dict[str, str] = field(default_factory=dict)
    validators: bool = True              # ETag / Last-Modified sent
    delay: float = 0.0                   # seconds before answering

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(self.body).hexdigest()[:16] + '"'


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> None:
        self.host = host
        self.httpd = ThreadingHTTPServer((host, 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


class _FeedHandler(_Quiet):
    def do_GET(self) -> None:
        server: FeedServer = self.server.owner  # type: ignore[attr-defined]
        server.requests.append((self.path, dict(self.headers)))
        server.request_times.append((self.path, time.time()))
        doc = server.files.get(self.path)
        with server.lock:
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            path_now = server.path_in_flight[self.path] = \
                server.path_in_flight.get(self.path, 0) + 1
            server.max_path_in_flight = max(server.max_path_in_flight, path_now)
        # A request is in flight while the server holds it, until its answer starts: once the
        # answer is written the client may read it and start its next request before this
        # thread runs again to count the last one out, and on a loaded machine a client
        # that kept its cap of two was counted at three.
        try:
            if doc is not None and doc.delay:
                time.sleep(doc.delay)
        finally:
            with server.lock:
                server.in_flight -= 1
                server.path_in_flight[self.path] -= 1
        self._answer(server, doc)

    def _answer(self, server: FeedServer, doc: Served | None) -> None:
        if doc is None:
            self.send_response(404)
            self.end_headers()
            return
        if doc.status != 200:
            self.send_response(doc.status)
            if doc.location:
                self.send_header("Location", doc.location)
            for k, v in doc.headers.items():
                self.send_header(k, v)
            self.end_headers()
            return
        last_modified = formatdate(doc.modified, usegmt=True)
        inm = self.headers.get("If-None-Match")
        ims = self.headers.get("If-Modified-Since")
        if doc.validators and ((inm and inm == doc.etag)
                               or (not inm and ims and ims == last_modified)):
            server.not_modified += 1
            self.send_response(304)
            self.send_header("ETag", doc.etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", doc.content_type)
        self.send_header("Content-Length", str(len(doc.body)))
        if doc.validators:
            self.send_header("ETag", doc.etag)
            self.send_header("Last-Modified", last_modified)
        for k, v in doc.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(doc.body)


class FeedServer(_Server):
    """Serves `files[path]`; answers 304 to a matching If-None-Match / If-Modified-Since."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.files: dict[str, Served] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.request_times: list[tuple[str, float]] = []
        self.not_modified = 0
        self.in_flight = self.max_in_flight = 0
        self.path_in_flight: dict[str, int] = {}     # requests for one path being answered
        self.max_path_in_flight = 0                   # the most for any one path at once
        self.lock = threading.Lock()
        super().__init__(_FeedHandler, host)

    def url(self, path: str) -> str:
        return self.base + path


@dataclass
class Hook:
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool
    at: float = field(default_factory=time.time)     # when it arrived


class _HookHandler(_Quiet):
    def do_POST(self) -> None:
        server: WebhookReceiver = self.server.owner  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status = server.next_status()
        hook_id = headers.get("webhook-id", "")
        with server.lock:
            server.attempts.append((hook_id, time.time(), status))
            server.in_progress.add(hook_id)
        try:
            if server.delay:
                time.sleep(server.delay)
        finally:
            with server.lock:
                server.in_progress.discard(hook_id)
        if 200 <= status < 300:
            try:
                body = Webhook(server.secret).verify(raw, headers)
                verified = True
            except Exception:
                body, verified = json.loads(raw), False
            with server.lock:
                server.received.append(Hook(headers, body, verified))
        else:
            with server.lock:
                server.refused += 1
        self.send_response(status)
        for k, v in server.extra_headers.items():
            self.send_header(k, v)
        self.end_headers()


class WebhookReceiver(_Server):
    """Collects POSTs, verifying each with the `standardwebhooks` library."""

    def __init__(self, secret: str, statuses: list[int] | None = None) -> None:
        self.secret = secret
        self.statuses = list(statuses or [])
        self.extra_headers: dict[str, str] = {}
        self.received: list[Hook] = []
        self.refused = 0
        self.attempts: list[tuple[str, float, int]] = []   # (webhook-id, when, status)
        self.in_progress: set[str] = set()      # webhook-ids received, not yet answered
        self.delay = 0.0
        self.lock = threading.Lock()
        super().__init__(_HookHandler)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200

    @property
    def url(self) -> str:
        return self.base + "/hook"


class _Collect:
    def __init__(self, sink: list[EmailMessage]) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.sink.append(msg)  # type: ignore[arg-type]
        return "250 OK"


class SMTPServer:
    """aiosmtpd on 127.0.0.1; `messages` holds what it received, parsed."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = free_port()
        self.controller = Controller(_Collect(self.messages), hostname="127.0.0.1",
                                     port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.controller.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@dataclass
class Subscription:
    callback: str
    topic: str
    secret: str
    lease: int
    verified: bool = False
    answer: str = ""


class _HubHandler(_Quiet):
    def do_POST(self) -> None:
        hub: WebSubHub = self.server.owner  # type: ignore[attr-defined]
        form = dict(parse_qsl(self.rfile.read(int(self.headers.get("Content-Length", 0)))
                              .decode()))
        if hub.refuse:
            self.send_response(hub.refuse)
            self.end_headers()
            return
        sub = Subscription(form["hub.callback"], form["hub.topic"], form.get("hub.secret", ""),
                           int(form.get("hub.lease_seconds", "3600")))
        with hub.lock:
            hub.requests.append(form)
        self.send_response(202)
        self.end_headers()
        threading.Thread(target=hub.verify, args=(sub,), daemon=True).start()


class WebSubHub(_Server):
    """A small WebSub hub: takes subscriptions, verifies them with a challenge GET to the
    callback, and distributes published content signed with each subscriber's secret."""

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []
        self.requests: list[dict[str, str]] = []
        self.deliveries: list[tuple[str, int]] = []        # (callback, status)
        self.refuse = 0
        self.lock = threading.Lock()
        super().__init__(_HubHandler)

    @property
    def url(self) -> str:
        return self.base + "/"

    def verify(self, sub: Subscription) -> None:
        challenge = uuid.uuid4().hex
        query = urlencode({"hub.mode": "subscribe", "hub.topic": sub.topic,
                           "hub.challenge": challenge, "hub.lease_seconds": sub.lease})
        try:
            with urlopen(f"{sub.callback}?{query}", timeout=5) as response:
                sub.answer = response.read().decode()
        except OSError as exc:
            sub.answer = f"error: {exc}"
        sub.verified = sub.answer == challenge
        with self.lock:
            self.subscriptions.append(sub)

    def publish(self, topic: str, body: bytes, *, content_type: str = "application/rss+xml",
                tamper: bool = False) -> list[int]:
        statuses = []
        for sub in [s for s in self.subscriptions if s.topic == topic and s.verified]:
            signature = hmac.new(sub.secret.encode(), body, hashlib.sha256).hexdigest()
            if tamper:
                signature = "0" * len(signature)
            request = Request(sub.callback, data=body, method="POST", headers={
                "Content-Type": content_type, "X-Hub-Signature": f"sha256={signature}"})
            with urlopen(request, timeout=10) as response:
                statuses.append(response.status)
            self.deliveries.append((sub.callback, statuses[-1]))
        return statuses
