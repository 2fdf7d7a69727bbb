"""The HTTP side of fetch.py, on aiohttp: session, conditional GET with manual redirects, the
body cap, one deadline for the whole fetch, per-host politeness, and the SSRF guard (netguard)
on every hop. Imported only when a batch has an http(s) URL."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

import aiohttp
from yarl import URL

from . import netguard
from .errors import FetchError
from .fetched import ACCEPT, MAX_REDIRECTS, FetchResult, Limits
from .models import Validators
from .retry_after import retry_after_seconds

_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}


def session(limits: Limits) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limits.concurrency, limit_per_host=limits.per_host,
                                     ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, connect=min(limits.timeout, 10.0),
                                    sock_read=limits.timeout)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False,   # no proxy around the guard
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": limits.user_agent, "Accept": ACCEPT})


async def attempt(session: aiohttp.ClientSession, gate: HostGate, url: str,
                  validators: Validators, limits: Limits) -> FetchResult | FetchError:
    """One conditional GET (redirects followed here, each hop guarded); errors as values.
    Every connection it opens, to whatever address a hop's name or spelling leads, passes the
    guard (netguard) unless private networks are allowed."""
    with netguard.outbound(guard=not limits.allow_private) as scope:
        try:
            return await _get(session, gate, url, validators, limits)
        except FetchError as exc:
            return exc
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            if scope.refused:                   # the guard's verdict, named
                return FetchError(url, scope.refused[-1], kind="refused")
            if isinstance(exc, aiohttp.InvalidURL):
                return FetchError(url, f"invalid URL: {exc}")
            if isinstance(exc, TimeoutError):
                return FetchError(url, "timed out", kind="timeout")
            if isinstance(exc, aiohttp.ClientConnectorError):
                return FetchError(url, f"ConnectError: {exc}", kind="connect")
            return FetchError(url, f"{type(exc).__name__}: {exc}")


async def _get(session: aiohttp.ClientSession, gate: HostGate, url: str,
               validators: Validators, limits: Limits) -> FetchResult:
    current, permanent = url, True
    deadline: float | None = None       # the whole fetch's, from its first request on
    loop = asyncio.get_running_loop()
    for _ in range(MAX_REDIRECTS + 1):
        host = _host(current, url)
        if not limits.allow_private and (problem := netguard.host_problem(host)):
            raise FetchError(url, problem, kind="refused")
        async with gate.turn(host):
            deadline = deadline or loop.time() + limits.max_seconds
            timer = asyncio.timeout_at(deadline)
            try:
                async with timer:
                    result = await _hop(session, url, current, validators, permanent, limits)
            except TimeoutError:
                if timer.expired():
                    raise FetchError(url, f"no complete answer within {limits.max_seconds:g} s "
                                          "(max_fetch_seconds)", kind="timeout") from None
                raise
        if isinstance(result, FetchResult):
            return result
        status, location = result
        permanent = permanent and status in _PERMANENT
        current = urljoin(current, location)
    raise FetchError(url, f"more than {MAX_REDIRECTS} redirects")


def _host(current: str, url: str) -> str:
    """The host of one hop as the HTTP client reads it (IDNA/NFKC-mapped by yarl, so that
    `１２７。０。０。１` is 127.0.0.1 here as it is on the wire)."""
    host, problem = _host_of(current)
    if problem is not None:
        raise FetchError(url, problem)
    return host


@functools.lru_cache(maxsize=16_384)
def _host_of(current: str) -> tuple[str, str | None]:
    """`_host`'s answer (the host, or what is wrong), remembered: a feed's URL is read again
    every poll, and reading it was a tenth of the fetch loop's own time in a cycle of 304s."""
    if urlsplit(current).scheme.lower() not in ("http", "https"):
        return "", f"unsupported URL or redirect target: {current}"
    try:
        return URL(current).host or "", None
    except (ValueError, UnicodeError) as exc:
        return "", f"invalid URL: {current}: {exc}"


async def _hop(session: aiohttp.ClientSession, url: str, current: str, validators: Validators,
               permanent: bool, limits: Limits) -> FetchResult | tuple[int, str]:
    """One request: the result, or (status, Location) of a redirect to follow."""
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    async with session.get(current, headers=headers, allow_redirects=False) as response:
        status = response.status
        if status in _REDIRECTS and "Location" in response.headers:
            return status, response.headers["Location"]
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


async def _read(response: aiohttp.ClientResponse, url: str, limits: Limits) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise FetchError(url, f"body of {declared} bytes exceeds the {limits.max_bytes}-byte "
                              "limit")
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):   # decompressed
        body += chunk
        if len(body) > limits.max_bytes:
            raise FetchError(url, f"body exceeds the {limits.max_bytes}-byte limit "
                                  "(after decompression)")
    return bytes(body)


class HostGate:
    """Per host: at most `per_host` requests at once, starts at least `gap` seconds apart
    (each start counted from the one before it actually began, not from its plan)."""

    def __init__(self, per_host: int, gap: float) -> None:
        self.per_host, self.gap = per_host, gap
        self.slots: dict[str, asyncio.Semaphore] = {}
        self.spacing: dict[str, asyncio.Lock] = {}
        self.next_start: dict[str, float] = {}

    def turn(self, host: str) -> _Turn:
        return _Turn(self, host)


class _Turn:
    def __init__(self, gate: HostGate, host: str) -> None:
        self.gate, self.host = gate, host
        self.slot = gate.slots.setdefault(host, asyncio.Semaphore(gate.per_host))

    async def __aenter__(self) -> None:
        await self.slot.acquire()
        if self.gate.gap:
            loop = asyncio.get_running_loop()
            async with self.gate.spacing.setdefault(self.host, asyncio.Lock()):
                while (wait := self.gate.next_start.get(self.host, 0.0) - loop.time()) > 0:
                    await asyncio.sleep(wait)
                self.gate.next_start[self.host] = loop.time() + self.gate.gap

    async def __aexit__(self, *_: object) -> None:
        self.slot.release()


def _plain(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _validators(headers: Mapping[str, str], previous: Validators) -> Validators:
    return Validators(headers.get("ETag") or previous.etag,
                      headers.get("Last-Modified") or previous.last_modified)
