"""Feed fetching: many conditional GETs at once (asyncio; HTTP in aio.py), file:// locally.

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
import functools
import hashlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from urllib.request import url2pathname

from .errors import FetchError
from .fetched import ACCEPT, MAX_REDIRECTS, FetchResult, Limits
from .models import Validators

__all__ = ["ACCEPT", "MAX_REDIRECTS", "FetchResult", "Fetcher", "Limits"]


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
        self._session: Any = None            # aiohttp's, made for the first http(s) URL
        self._gate: Any = None

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

    def http(self) -> tuple[Any, Any]:
        """The HTTP session and host gate, made on first use in the loop's thread (aiohttp is
        imported then: a config of local files never needs it)."""
        if self._session is None or self._session.closed:
            from . import aio

            self._session = aio.session(self.limits)
            self._gate = aio.HostGate(self.limits.per_host, self.limits.host_gap)
        return self._session, self._gate

    async def _all(self, requests: Sequence[tuple[str, Validators]], then: Then[T] | None,
                   keep_bodies: bool) -> list[tuple[FetchResult | FetchError, T | None]]:
        async def one(i: int, url: str, validators: Validators
                      ) -> tuple[FetchResult | FetchError, T | None]:
            result = await _one(self, url, validators, self.limits)
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


async def _one(fetcher: Fetcher, url: str, validators: Validators,
               limits: Limits) -> FetchResult | FetchError:
    started = time.monotonic()
    if _is_file(url):
        result = await asyncio.to_thread(_fetch_file_or_error, url, validators,
                                         limits.max_bytes)
    else:
        session, gate = fetcher.http()
        from . import aio

        result = await aio.attempt(session, gate, url, validators, limits)
    if isinstance(result, FetchError):
        result.elapsed = time.monotonic() - started
        return result
    return replace(result, elapsed=time.monotonic() - started)


@functools.lru_cache(maxsize=16_384)
def _is_file(url: str) -> bool:
    """Whether the URL is a local file (remembered: a feed's URL is read every poll)."""
    return urlsplit(url).scheme == "file"


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
