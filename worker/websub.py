"""WebSub (W3C Recommendation): a publisher's hub pushes new content the moment it is out.

- Discovery: a polled feed names its hub in a `Link:` header or a `<link rel="hub">` element
  (Atom, or `atom:link` in RSS), and its canonical topic URL with `rel="self"`.
- Subscription: when `settings.websub_callback` (the public base URL the hub can reach) is set,
  a feed with a hub is subscribed (`hub.mode=subscribe`, a per-feed `hub.secret`); the hub then
  verifies the intent with a GET to our callback, answered only for a subscription we asked
  for. Leases are renewed before they end (beat's `maintain`).
- Content distribution: the hub POSTs the new content, signed with `X-Hub-Signature`
  (HMAC of the body with our secret). A valid one is taken in at once and its new entries
  queued for processing; an unsigned or wrongly signed one is acknowledged (as the spec asks,
  so a forger learns nothing) and dropped.
- Fallback: polling goes on for every feed; while a subscription is active, a feed is polled at
  `max_interval` only, as a safety net. A denied, failed or lapsed subscription brings its
  normal interval back, and the next poll asks again.

The callback is served by `newswatch run` and by `newswatch serve` (settings.listen, or the
older name websub_listen), with aiohttp's web server, beside the readers' feedback links.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from html import unescape
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from . import netguard
from .logs import feed_fields
from .store import Store, WebSubState

if TYPE_CHECKING:                  # the server side loads aiohttp's web module when it starts
    import httpx
    from aiohttp import web

    from .config import Config, Settings
    from .parsepool import Parser

log = logging.getLogger(__name__)

PENDING_FOR = 3600.0          # a subscription not verified within this is asked for again
_LINK_TAG = re.compile(r"<(?:atom:|atom10:)?link\b([^>]*)>", re.IGNORECASE)
_ATTR = re.compile(r"""([a-zA-Z:_-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_LINK_HEADER = re.compile(r"<([^>]*)>\s*((?:;\s*[^,;]+)*)")
_SIGNATURE = re.compile(r"^(sha1|sha256|sha384|sha512)=([0-9a-fA-F]+)$")


@dataclass(frozen=True)
class Hub:
    hub: str          # the hub's URL
    topic: str        # the feed's own (self) URL, as the hub knows it


def discover(headers: Mapping[str, str], body: bytes, url: str) -> Hub | None:
    """The hub and topic a feed declares (Link header first, then the document's head)."""
    hub = topic = None
    for value in (v for k, v in headers.items() if k.lower() == "link"):
        for target, params in _LINK_HEADER.findall(value):
            rels = re.findall(r"""rel\s*=\s*"?([^";]+)"?""", params)
            for rel in " ".join(rels).lower().split():
                if rel == "hub" and hub is None:
                    hub = urljoin(url, target.strip())
                elif rel == "self" and topic is None:
                    topic = urljoin(url, target.strip())
    head = body[:65536].decode("utf-8", "replace")
    for match in _LINK_TAG.finditer(head):
        attrs = {k.lower(): unescape(v or w) for k, v, w in _ATTR.findall(match.group(1))}
        rels, href = attrs.get("rel", "").lower().split(), attrs.get("href")
        if not href:
            continue
        if "hub" in rels and hub is None:
            hub = urljoin(url, href.strip())
        elif "self" in rels and topic is None:
            topic = urljoin(url, href.strip())
    if hub is None or not hub.startswith(("http://", "https://")):
        return None
    return Hub(hub, topic or url)


def known_hub(ws: WebSubState) -> Hub | None:
    """The hub a feed was subscribed with (a 304 carries no body to discover it in again)."""
    return Hub(ws.hub, ws.topic) if ws.hub and ws.topic else None


def wants_subscription(ws: WebSubState, hub: Hub, now: float) -> bool:
    """Whether to (re)subscribe: not active with this hub and topic, nor asked very lately."""
    if ws.hub != hub.hub or ws.topic != hub.topic:
        return True
    if ws.state == "active":
        return ws.until <= now
    if ws.state == "pending":
        return ws.asked + PENDING_FOR <= now
    return True                                   # denied, failed, lapsed: ask again


@dataclass(frozen=True)
class Verification:
    """How to answer a hub's GET to our callback, and what it changes of the subscription."""

    status: int
    text: str
    update: dict[str, str | float] = field(default_factory=dict)   # WebSubState fields


def verification(ws: WebSubState, query: Mapping[str, str], now: float,
                 default_lease: float) -> Verification:
    """The hub's verification of intent (W3C WebSub 5.3), decided from the subscription we
    keep: a subscription is confirmed only if we asked for it (pending, or active and being
    renewed, for this very topic); a denial is recorded only for our own topic."""
    mode, topic = query.get("hub.mode", ""), query.get("hub.topic", "")
    if mode == "denied":
        if ws.topic == topic:
            return Verification(200, "", {"state": "denied",
                                          "error": query.get("hub.reason", "denied by the hub")})
        return Verification(200, "")
    known = ws.topic == topic and ws.state in ("pending", "active")
    if mode != "subscribe" or not known or "hub.challenge" not in query:
        return Verification(404, "no such subscription")
    try:
        lease = float(query.get("hub.lease_seconds") or default_lease)
    except ValueError:
        return Verification(400, "bad hub.lease_seconds")
    if not lease > 0:
        return Verification(400, "bad hub.lease_seconds")
    return Verification(200, query["hub.challenge"],
                        {"state": "active", "until": now + lease, "error": ""})


def callback_url(base: str, feed_id: str) -> str:
    return f"{base.rstrip('/')}/websub/{feed_id}"


def subscribe(store: Store, http: httpx.Client, settings: Settings, feed_id: str,
              hub: Hub) -> bool:
    """Ask the hub for a subscription (it verifies with a GET to our callback later)."""
    import httpx  # here: a run that subscribes to nothing never imports it

    s = settings
    if not s.websub_callback:
        return False
    secret = secrets.token_hex(32)
    store.feeds.set_websub(feed_id, hub=hub.hub, topic=hub.topic, secret=secret,
                           state="pending", asked=time.time())
    form = {"hub.mode": "subscribe", "hub.topic": hub.topic,
            "hub.callback": callback_url(s.websub_callback, feed_id),
            "hub.lease_seconds": str(s.websub_lease_seconds), "hub.secret": secret}
    guarded = not s.allow_private_networks      # the hub's URL comes from a feed: untrusted
    if guarded and (problem := netguard.url_problem(hub.hub)):
        return _failed(store, feed_id, hub, problem)
    try:
        with netguard.outbound(guard=guarded, seconds=s.delivery_timeout) as scope:
            response = http.post(hub.hub, data=form)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason = scope.refused[-1] if scope.refused else f"{type(exc).__name__}: {exc}"
        return _failed(store, feed_id, hub, reason)
    if not 200 <= response.status_code < 300:
        return _failed(store, feed_id, hub, f"HTTP {response.status_code}")
    log.info("feed %s: subscription asked of hub %s", feed_id, hub.hub,
             extra=feed_fields(feed_id, hub.topic, outcome="websub_pending", hub=hub.hub))
    return True


def _failed(store: Store, feed_id: str, hub: Hub, reason: str) -> bool:
    store.feeds.set_websub(feed_id, state="failed", error=reason)
    log.warning("feed %s: subscription to hub %s failed: %s (polling goes on)", feed_id,
                hub.hub, reason, extra=feed_fields(feed_id, hub.topic, outcome="websub_failed",
                                                   hub=hub.hub))
    return False


def verify_signature(secret: str, header: str | None, body: bytes) -> bool:
    """X-Hub-Signature: `method=hex` with sha1, sha256, sha384 or sha512, compared in
    constant time."""
    match = _SIGNATURE.match((header or "").strip())
    if not match or not secret:
        return False
    method, given = match.groups()
    expected = hmac.new(secret.encode(), body, getattr(hashlib, method)).hexdigest()
    return hmac.compare_digest(expected, given.lower())


def due_renewals(store: Store, config: Config, now: float) -> list[str]:
    """Active subscriptions whose lease ends within a tenth of its length (at least 5 min)."""
    margin = max(300.0, config.settings.websub_lease_seconds / 10)
    states = store.feeds.websub([f.id for f in config.feeds])
    return [feed_id for feed_id, ws in states.items()
            if ws.state == "active" and ws.until - margin <= now]


# -- the callback -------------------------------------------------------------------------

OnEntries = Callable[[list[str]], None]


def make_app(store: Store, config: Config, parser: Parser,
             on_entries: OnEntries) -> web.Application:
    """The HTTP endpoints: WebSub's callback (GET verifies intent, POST takes in pushed
    content) and the readers' feedback links."""
    from aiohttp import web

    app = web.Application(client_max_size=config.settings.max_feed_bytes)
    known_feeds = {feed.id for feed in config.feeds}

    async def verify(request: web.Request) -> web.Response:
        feed_id = request.match_info["feed_id"]
        ws = (await asyncio.to_thread(store.feeds.websub, [feed_id]))[feed_id]
        answer = verification(ws, request.query, time.time(),
                              config.settings.websub_lease_seconds)
        if answer.update:
            await asyncio.to_thread(partial(store.feeds.set_websub, feed_id,
                                            **answer.update))
        if answer.update.get("state") == "active":
            log.info("feed %s: subscription verified (until %s)", feed_id,
                     answer.update["until"], extra=feed_fields(
                         feed_id, request.query.get("hub.topic", ""), outcome="websub_active"))
        return web.Response(status=answer.status, text=answer.text)

    async def content(request: web.Request) -> web.Response:
        feed_id = request.match_info["feed_id"]
        if feed_id not in known_feeds:             # removed from the config: hub, stop
            return web.Response(status=410, text="no such feed")
        body = await request.read()            # at most client_max_size (1 MB)
        new = await _take_in_push(store, config, parser, feed_id, body, request.headers)
        if new:
            await asyncio.to_thread(on_entries, new)
        return web.Response(status=202, text="")

    app.router.add_get("/websub/{feed_id}", verify)
    app.router.add_post("/websub/{feed_id}", content)
    from . import feedback

    feedback.add_routes(app, store, config)     # readers' links, when configured
    return app


async def _take_in_push(store: Store, config: Config, parser: Parser, feed_id: str,
                        body: bytes, headers: Mapping[str, str]) -> list[str]:
    """A pushed body's new entries, stored; nothing for an unknown feed or a bad signature.
    Parsed like a polled body (a large one in a parser process, within max_parse_seconds)."""
    try:
        feed = config.feed(feed_id)
    except KeyError:
        return []
    ws = (await asyncio.to_thread(store.feeds.websub, [feed_id]))[feed_id]
    if not verify_signature(ws.secret, headers.get("X-Hub-Signature"), body):
        store.stats.count("push_rejected")
        log.warning("feed %s: pushed content without a valid signature, dropped", feed.name,
                    extra=feed_fields(feed_id, feed.url, outcome="push_rejected"))
        return []
    taken = await parser.take_in((body, ws.topic or feed.url, feed_id, feed.name,
                                  dict(headers)), max_entries=config.settings.max_entries,
                                 pool=False, max_seconds=config.settings.max_parse_seconds)
    if isinstance(taken, Exception):
        log.warning("feed %s: pushed content: %s", feed.name, taken,
                    extra=feed_fields(feed_id, feed.url, outcome="push_error"))
        return []
    store.stats.count("push_received")
    store.stats.count("entries_new", len(taken.new))
    log.info("feed %s: %d pushed entries, %d new", feed.name, taken.entries, len(taken.new),
             extra=feed_fields(feed_id, feed.url, outcome="pushed",
                               new_entries=len(taken.new)))
    return taken.new


class CallbackServer:
    """The callback endpoint on its own thread and event loop (inside `newswatch run`)."""

    def __init__(self, store: Store, config: Config, parser: Parser, on_entries: OnEntries,
                 host: str, port: int) -> None:
        from aiohttp import web

        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(make_app(store, config, parser, on_entries), access_log=None)
        self.host, self.port = host, port
        self.thread = threading.Thread(target=self.loop.run_forever, name="http",
                                       daemon=True)

    def start(self) -> CallbackServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        from aiohttp import web

        await self.runner.setup()
        await web.TCPSite(self.runner, self.host, self.port).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


def listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)

