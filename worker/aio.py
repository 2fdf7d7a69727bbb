"""The HTTP side of fetch.py, on aiohttp: session, conditional GET with manual redirects, the
body cap and time limit, per-host politeness, and the SSRF guard as aiohttp's resolver.
Imported only when a batch has an http(s) URL."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from .errors import FetchError
from .fetch import ACCEPT, MAX_REDIRECTS, FetchResult, Limits
from .models import Validators
from .netguard import address_problem
from .retry_after import retry_after_seconds

_REDIRECTS = {301, 302, 303, 307, 308}
_PERMANENT = {301, 308}


def session(limits: Limits) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=limits.concurrency, limit_per_host=limits.per_host, ttl_dns_cache=300,
        resolver=None if limits.allow_private else GuardedResolver())
    timeout = aiohttp.ClientTimeout(total=None, connect=min(limits.timeout, 10.0),
                                    sock_read=limits.timeout)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trust_env=False,   # no proxy around the guard
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": limits.user_agent, "Accept": ACCEPT})


async def attempt(session: aiohttp.ClientSession, gate: HostGate, url: str,
                  validators: Validators, limits: Limits) -> FetchResult | FetchError:
    """One conditional GET (redirects followed here, each hop guarded); errors as values."""
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


async def _get(session: aiohttp.ClientSession, gate: HostGate, url: str,
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


class HostGate:
    """Per host: at most `per_host` requests at once, starts at least `gap` seconds apart."""

    def __init__(self, per_host: int, gap: float) -> None:
        self.per_host, self.gap = per_host, gap
        self.slots: dict[str, asyncio.Semaphore] = {}
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
