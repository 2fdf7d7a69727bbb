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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html import unescape
from typing import TYPE_CHECKING
from urllib.parse import urljoin

import httpx

from . import netguard
from .logs import feed_fields
from .runtime import Runtime

if TYPE_CHECKING:                  # the server side loads aiohttp's web module when it starts
    from aiohttp import web

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


def known_hub(fields: Mapping[str, str]) -> Hub | None:
    """The hub a feed was subscribed with (a 304 carries no body to discover it in again)."""
    if fields.get("ws_hub") and fields.get("ws_topic"):
        return Hub(fields["ws_hub"], fields["ws_topic"])
    return None


def wants_subscription(fields: Mapping[str, str], hub: Hub, now: float) -> bool:
    """Whether to (re)subscribe: not active with this hub and topic, nor asked very lately."""
    if fields.get("ws_hub") != hub.hub or fields.get("ws_topic") != hub.topic:
        return True
    state = fields.get("ws_state")
    if state == "active":
        return float(fields.get("ws_until") or 0) <= now
    if state == "pending":
        return float(fields.get("ws_asked") or 0) + PENDING_FOR <= now
    return True                                   # denied, failed, lapsed: ask again


def callback_url(base: str, feed_id: str) -> str:
    return f"{base.rstrip('/')}/websub/{feed_id}"


def subscribe(rt: Runtime, feed_id: str, hub: Hub) -> bool:
    """Ask the hub for a subscription (it verifies with a GET to our callback later)."""
    s = rt.config.settings
    if not s.websub_callback:
        return False
    secret = secrets.token_hex(32)
    rt.store.update_feed(feed_id, ws_hub=hub.hub, ws_topic=hub.topic, ws_secret=secret,
                         ws_state="pending", ws_asked=time.time())
    form = {"hub.mode": "subscribe", "hub.topic": hub.topic,
            "hub.callback": callback_url(s.websub_callback, feed_id),
            "hub.lease_seconds": str(s.websub_lease_seconds), "hub.secret": secret}
    guarded = not s.allow_private_networks      # the hub's URL comes from a feed: untrusted
    if guarded and (problem := netguard.url_problem(hub.hub)):
        return _failed(rt, feed_id, hub, problem)
    try:
        with netguard.outbound(guard=guarded, seconds=s.delivery_timeout) as scope:
            response = rt.http.post(hub.hub, data=form)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason = scope.refused[-1] if scope.refused else f"{type(exc).__name__}: {exc}"
        return _failed(rt, feed_id, hub, reason)
    if not 200 <= response.status_code < 300:
        return _failed(rt, feed_id, hub, f"HTTP {response.status_code}")
    log.info("feed %s: subscription asked of hub %s", feed_id, hub.hub,
             extra=feed_fields(feed_id, hub.topic, outcome="websub_pending", hub=hub.hub))
    return True


def _failed(rt: Runtime, feed_id: str, hub: Hub, reason: str) -> bool:
    rt.store.update_feed(feed_id, ws_state="failed", ws_error=reason)
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


def due_renewals(rt: Runtime, now: float) -> list[str]:
    """Active subscriptions whose lease ends within a tenth of its length (at least 5 min)."""
    margin = max(300.0, rt.config.settings.websub_lease_seconds / 10)
    states = rt.store.feed_fields([f.id for f in rt.config.feeds],
                                  ("ws_state", "ws_until"))
    return [feed_id for feed_id, h in states.items()
            if h.get("ws_state") == "active" and float(h.get("ws_until") or 0) - margin <= now]


# -- the callback -------------------------------------------------------------------------

OnEntries = Callable[[list[str]], None]


def make_app(rt: Runtime, on_entries: OnEntries) -> web.Application:
    """The HTTP endpoints: WebSub's callback (GET verifies intent, POST takes in pushed
    content) and the readers' feedback links."""
    from aiohttp import web

    app = web.Application(client_max_size=rt.config.settings.max_feed_bytes)
    known_feeds = {feed.id for feed in rt.config.feeds}

    async def verify(request: web.Request) -> web.Response:
        feed_id = request.match_info["feed_id"]
        q = request.query
        mode, topic = q.get("hub.mode", ""), q.get("hub.topic", "")
        fields = await asyncio.to_thread(rt.store.feed_fields, [feed_id],
                                         ("ws_state", "ws_topic"))
        h = fields.get(feed_id, {})
        if mode == "denied":
            if h.get("ws_topic") == topic:
                await asyncio.to_thread(rt.store.update_feed, feed_id, ws_state="denied",
                                        ws_error=q.get("hub.reason", "denied by the hub"))
            return web.Response(text="")
        known = h.get("ws_topic") == topic and h.get("ws_state") in ("pending", "active")
        if mode != "subscribe" or not known or "hub.challenge" not in q:
            return web.Response(status=404, text="no such subscription")
        try:
            lease = float(q.get("hub.lease_seconds") or rt.config.settings.websub_lease_seconds)
        except ValueError:
            return web.Response(status=400, text="bad hub.lease_seconds")
        await asyncio.to_thread(rt.store.update_feed, feed_id, ws_state="active",
                                ws_until=time.time() + lease, ws_error="")
        log.info("feed %s: subscription verified (lease %.0f s)", feed_id, lease,
                 extra=feed_fields(feed_id, topic, outcome="websub_active"))
        return web.Response(text=q["hub.challenge"])

    async def content(request: web.Request) -> web.Response:
        feed_id = request.match_info["feed_id"]
        if feed_id not in known_feeds:             # removed from the config: hub, stop
            return web.Response(status=410, text="no such feed")
        body = await request.read()            # at most client_max_size (1 MB)
        new = await _take_in_push(rt, feed_id, body, request.headers)
        if new:
            await asyncio.to_thread(on_entries, new)
        return web.Response(status=202, text="")

    app.router.add_get("/websub/{feed_id}", verify)
    app.router.add_post("/websub/{feed_id}", content)
    from . import feedback

    feedback.add_routes(app, rt)           # readers' links, when the config has them
    return app


async def _take_in_push(rt: Runtime, feed_id: str, body: bytes,
                        headers: Mapping[str, str]) -> list[str]:
    """A pushed body's new entries, stored; nothing for an unknown feed or a bad signature.
    Parsed like a polled body (a large one in a parser process, within max_parse_seconds)."""
    try:
        feed = rt.config.feed(feed_id)
    except KeyError:
        return []
    h = (await asyncio.to_thread(rt.store.feed_fields, [feed_id],
                                 ("ws_secret", "ws_topic", "ws_state"))).get(feed_id, {})
    if not verify_signature(h.get("ws_secret", ""), headers.get("X-Hub-Signature"), body):
        rt.store.count("push:rejected")
        log.warning("feed %s: pushed content without a valid signature, dropped", feed.name,
                    extra=feed_fields(feed_id, feed.url, outcome="push_rejected"))
        return []
    taken = await rt.parser.take_in((body, h.get("ws_topic") or feed.url, feed_id, feed.name,
                                     dict(headers)), max_entries=rt.config.settings.max_entries,
                                    pool=False, max_seconds=rt.config.settings.max_parse_seconds)
    if isinstance(taken, Exception):
        log.warning("feed %s: pushed content: %s", feed.name, taken,
                    extra=feed_fields(feed_id, feed.url, outcome="push_error"))
        return []
    rt.store.count("push:received")
    rt.store.count("entries:new", len(taken.new))
    log.info("feed %s: %d pushed entries, %d new", feed.name, taken.entries, len(taken.new),
             extra=feed_fields(feed_id, feed.url, outcome="pushed",
                               new_entries=len(taken.new)))
    return taken.new


class CallbackServer:
    """The callback endpoint on its own thread and event loop (inside `newswatch run`)."""

    def __init__(self, rt: Runtime, on_entries: OnEntries, host: str, port: int) -> None:
        from aiohttp import web

        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(make_app(rt, on_entries), access_log=None)
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


def enqueue_entries(keys: Iterable[str]) -> None:
    """Pushed entries go to the process queue at once, like polled ones."""
    from . import tasks

    keys = list(keys)
    for i in range(0, len(keys), tasks.BATCH):
        tasks.process_entries.delay(keys[i:i + tasks.BATCH])
