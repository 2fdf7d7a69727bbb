"""Feed fetching: many conditional GETs at once (asyncio + aiohttp), file:// for local feeds.

One event loop per batch keeps hundreds of requests in flight from one worker thread; a 304
costs a tenth of a millisecond of CPU. Limits: a global cap on requests in flight, a per-host
cap and a minimum gap between two requests to one host (politeness), timeouts per network step
and per body, a body cap counted after decompression (a gzip bomb stops at the cap), at most
`MAX_REDIRECTS` redirects, each hop checked by the SSRF guard. Only the bytes read here reach
the parser (feedparser never fetches anything itself). No business rules.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from .errors import FetchError
from .models import Validators
from .netguard import address_problem
from .retry_after import retry_after_seconds

MAX_REDIRECTS = 5
ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
          "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}


@dataclass(frozen=True)
class FetchResult:
    url: str                       # the final URL, after redirects
    status: int                    # 200, or 304 when not modified
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    validators: Validators = field(default_factory=Validators)
    moved_to: str | None = None    # where 301/308 redirects (only permanent ones) led
    elapsed: float = 0.0           # seconds from the request to the last byte

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True)
class Limits:
    user_agent: str = "newswatch"
    timeout: float = 20.0            # per network step (connect, each read)
    max_seconds: float = 60.0        # per body: a server trickling bytes is cut here
    max_bytes: int = 10_000_000      # after decompression
    concurrency: int = 100           # requests in flight at once, all hosts
    per_host: int = 2                # requests in flight to one host
    host_gap: float = 0.0            # seconds between two requests to one host
    allow_private: bool = False      # SSRF guard off (tests, LAN feeds)


T = TypeVar("T")
Then = Callable[[int, "FetchResult"], Awaitable[T]]


class Fetcher:
    """Fetches for one worker process: an event loop in a thread of its own and one HTTP
    session, shared by every poll batch (whichever Celery thread runs it), so the global and
    per-host limits and the per-host gap hold across batches, and connections and DNS answers
    are reused while they last."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._gate: _HostGate | None = None

    def fetch_many(self, requests: Sequence[tuple[str, Validators]]
                   ) -> list[FetchResult | FetchError]:
        """Fetch every (url, validators) concurrently; a result or an error each, in order."""
        return [result for result, _ in self.fetch_then(requests, None)]

    def fetch_then(self, requests: Sequence[tuple[str, Validators]], then: Then[T] | None, *,
                   keep_bodies: bool = True
                   ) -> list[tuple[FetchResult | FetchError, T | None]]:
        """`fetch_many`, and `then(i, result)` awaited for each body as soon as it arrives
        (while the other requests go on): for the caller's work on a body, such as handing it
        to a parser process. Without `keep_bodies`, each body is let go once `then` is done:
        a batch then holds only the bodies in flight, not all of them."""
        if not requests:
            return []
        future = asyncio.run_coroutine_threadsafe(self._all(requests, then, keep_bodies),
                                                  self._running_loop())
        return future.result()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="newswatch-fetch",
                                 daemon=True).start()
                self._loop = loop
            return self._loop

    async def _all(self, requests: Sequence[tuple[str, Validators]], then: Then[T] | None,
                   keep_bodies: bool) -> list[tuple[FetchResult | FetchError, T | None]]:
        if self._session is None or self._session.closed:
            self._session = _session(self.limits)
            self._gate = _HostGate(self.limits.per_host, self.limits.host_gap)
        session, gate = self._session, self._gate
        assert gate is not None

        async def one(i: int, url: str, validators: Validators
                      ) -> tuple[FetchResult | FetchError, T | None]:
            result = await _one(session, gate, url, validators, self.limits)
            if then is None or isinstance(result, FetchError) or result.not_modified:
                return result, None
            after = await then(i, result)
            return (result if keep_bodies else replace(result, body=b"")), after

        return list(await asyncio.gather(*(one(i, url, validators)
                                           for i, (url, validators) in enumerate(requests))))

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._session is not None:
            asyncio.run_coroutine_threadsafe(self._session.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)


def fetch_many(requests: Sequence[tuple[str, Validators]],
               limits: Limits) -> list[FetchResult | FetchError]:
    """One batch with a session of its own (tools and tests; the worker uses a Fetcher)."""
    fetcher = Fetcher(limits)
    try:
        return fetcher.fetch_many(requests)
    finally:
        fetcher.close()


def fetch(url: str, validators: Validators, limits: Limits) -> FetchResult:
    """One conditional GET; FetchError names the URL on any failure."""
    (result,) = fetch_many([(url, validators)], limits)
    if isinstance(result, FetchError):
        raise result
    return result


def _session(limits: Limits) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=limits.concurrency, limit_per_host=limits.per_host, ttl_dns_cache=300,
        resolver=None if limits.allow_private else GuardedResolver())
    timeout = aiohttp.ClientTimeout(total=None, connect=min(limits.timeout, 10.0),
                                    sock_read=limits.timeout)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False,   # no proxy around the guard
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": limits.user_agent, "Accept": ACCEPT})


async def _one(session: aiohttp.ClientSession, gate: _HostGate, url: str,
               validators: Validators, limits: Limits) -> FetchResult | FetchError:
    started = time.monotonic()
    result = await _attempt(session, gate, url, validators, limits)
    if isinstance(result, FetchError):
        result.elapsed = time.monotonic() - started
        return result
    return replace(result, elapsed=time.monotonic() - started)


async def _attempt(session: aiohttp.ClientSession, gate: _HostGate, url: str,
                   validators: Validators, limits: Limits) -> FetchResult | FetchError:
    if urlsplit(url).scheme == "file":
        return await asyncio.to_thread(_fetch_file_or_error, url, validators, limits.max_bytes)
    try:
        return await _get(session, gate, url, validators, limits)
    except FetchError as exc:
        return exc
    except TimeoutError:
        return FetchError(url, "timed out")
    except aiohttp.InvalidURL as exc:
        return FetchError(url, f"invalid URL: {exc}")
    except aiohttp.ClientConnectorError as exc:
        blocked = isinstance(exc.os_error, BlockedHost)
        return FetchError(url, str(exc.os_error) if blocked else f"ConnectError: {exc}")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return FetchError(url, f"{type(exc).__name__}: {exc}")


async def _get(session: aiohttp.ClientSession, gate: _HostGate, url: str,
               validators: Validators, limits: Limits) -> FetchResult:
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    current, permanent = url, True
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(current)
        if parts.scheme not in ("http", "https"):
            raise FetchError(url, f"unsupported URL or redirect target: {current}")
        if not limits.allow_private:
            _check_literal(parts.hostname or "", url)
        async with gate.turn(parts.hostname or ""), session.get(
                current, headers=headers, allow_redirects=False) as response:
            status = response.status
            if status in _REDIRECTS and "Location" in response.headers:
                permanent = permanent and status in _PERMANENT
                current = urljoin(current, response.headers["Location"])
                continue
            moved_to = current if current != url and permanent else None
            if status == 304:
                return FetchResult(current, 304, headers=_plain(response.headers),
                                   validators=_validators(response.headers, validators),
                                   moved_to=moved_to)
            if status != 200:
                raise FetchError(url, f"HTTP {status} {response.reason or ''}".rstrip(),
                                 status=status, retry_after=retry_after_seconds(
                                     response.headers.get("Retry-After")))
            body = await _read(response, url, limits)
            return FetchResult(current, 200, body, _plain(response.headers),
                               _validators(response.headers, Validators()), moved_to)
    raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")


async def _read(response: aiohttp.ClientResponse, url: str, limits: Limits) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise FetchError(url, f"body of {declared} bytes exceeds the {limits.max_bytes}-byte "
                              "limit")
    body = bytearray()
    try:
        async with asyncio.timeout(limits.max_seconds):
            async for chunk in response.content.iter_chunked(1 << 16):   # decompressed
                body += chunk
                if len(body) > limits.max_bytes:
                    raise FetchError(url, f"body exceeds the {limits.max_bytes}-byte limit "
                                          "(after decompression)")
    except TimeoutError:
        raise FetchError(url, f"body took longer than {limits.max_seconds:g} s") from None
    return bytes(body)


class _HostGate:
    """Per host: at most `per_host` requests at once, starts at least `gap` seconds apart."""

    def __init__(self, per_host: int, gap: float) -> None:
        self.per_host, self.gap = per_host, gap
        self.slots: dict[str, asyncio.Semaphore] = {}
        self.next_start: dict[str, float] = {}

    def turn(self, host: str) -> _Turn:
        return _Turn(self, host)


class _Turn:
    def __init__(self, gate: _HostGate, host: str) -> None:
        self.gate, self.host = gate, host
        self.slot = gate.slots.setdefault(host, asyncio.Semaphore(gate.per_host))

    async def __aenter__(self) -> None:
        await self.slot.acquire()
        if self.gate.gap:
            loop = asyncio.get_running_loop()
            start = max(loop.time(), self.gate.next_start.get(self.host, 0.0))
            self.gate.next_start[self.host] = start + self.gate.gap
            await asyncio.sleep(start - loop.time())

    async def __aexit__(self, *_: object) -> None:
        self.slot.release()


class BlockedHost(OSError):
    """The guard refused every address of a host; the message names host, address and rule."""


class GuardedResolver(AbstractResolver):
    """aiohttp connects only to the addresses its resolver returns: this one drops every
    address that `address_problem` refuses, so the check and the connection use one answer
    (no DNS-rebinding window). IP literals skip resolvers: `_check_literal` covers them."""

    def __init__(self) -> None:
        self.inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        allowed, refused = [], []
        for answer in answers:
            ip = ipaddress.ip_address(answer["host"].split("%")[0])
            problem = address_problem(ip)
            if problem:
                refused.append(f"{ip} is {problem}")
            else:
                allowed.append(answer)
        if not allowed:
            raise BlockedHost(f"refused {host}: {'; '.join(dict.fromkeys(refused))} "
                              "(set allow_private_networks to allow it)")
        return allowed

    async def close(self) -> None:
        await self.inner.close()


def _check_literal(host: str, url: str) -> None:
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return                                    # a name: the resolver checks it
    problem = address_problem(ip)
    if problem:
        raise FetchError(url, f"refused {host}: {ip} is {problem} "
                              "(set allow_private_networks to allow it)")


def _plain(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _validators(headers: Mapping[str, str], previous: Validators) -> Validators:
    return Validators(headers.get("ETag") or previous.etag,
                      headers.get("Last-Modified") or previous.last_modified)


def _fetch_file_or_error(url: str, validators: Validators,
                         max_bytes: int) -> FetchResult | FetchError:
    try:
        return _fetch_file(url, validators, max_bytes=max_bytes)
    except FetchError as exc:
        return exc


def _fetch_file(url: str, validators: Validators, *, max_bytes: int) -> FetchResult:
    """file:// feeds (offline seeds) get the same conditional semantics from mtime and size."""
    path = Path(url2pathname(urlsplit(url).path))
    try:
        stat = path.stat()
        if stat.st_size > max_bytes:
            raise FetchError(url, f"file of {stat.st_size} bytes exceeds the {max_bytes}-byte "
                                  "limit")
        etag = '"' + hashlib.sha1(f"{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest() + '"'
        modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        if validators.etag == etag:
            return FetchResult(url, 304, validators=validators)
        with open(path, "rb") as fh:
            body = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise FetchError(url, "no such file") from None
    except IsADirectoryError:
        raise FetchError(url, "is a directory") from None
    except OSError as exc:
        raise FetchError(url, exc.strerror or str(exc)) from None
    headers = {"content-type": _guess_type(path)}
    return FetchResult(url, 200, body, headers, Validators(etag, modified))


def _guess_type(path: Path) -> str:
    ext = os.path.splitext(path.name)[1].lower()
    return "application/feed+json" if ext == ".json" else "application/xml"
