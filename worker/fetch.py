"""HTTP (and file://) fetching with conditional GET, timeouts and a size cap. No business rules.

The body is streamed and counted after decompression, so a gzip bomb stops at the cap; only the
bytes read here are handed to the parser (feedparser never fetches anything itself).
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import httpx

from .errors import FetchError
from .netguard import GuardedTransport
from .retry_after import retry_after_seconds

MAX_REDIRECTS = 5
ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
          "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")


@dataclass(frozen=True)
class Validators:
    """What a server gave us to make the next request conditional."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    url: str                       # the final URL, after redirects
    status: int                    # 200, or 304 when not modified
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    validators: Validators = Validators()
    moved_to: str | None = None    # where 301/308 redirects (only permanent ones) led


    @property
    def not_modified(self) -> bool:
        return self.status == 304


def make_client(*, user_agent: str, timeout: float,
                allow_private: bool = False) -> httpx.Client:
    """The HTTP client for feeds and webhooks; unless `allow_private`, it only connects to
    public addresses (netguard), checked on every connection and redirect."""
    return httpx.Client(
        headers={"User-Agent": user_agent, "Accept": ACCEPT},
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        transport=None if allow_private else GuardedTransport(),
        trust_env=False,        # no proxy from the environment may bypass the guard
    )


def fetch(client: httpx.Client, url: str, validators: Validators, *,
          max_bytes: int, max_seconds: float = 60.0) -> FetchResult:
    """GET `url` conditionally; raise FetchError naming the URL on any failure. Timeouts bound
    each network step; `max_seconds` bounds the whole body (a server trickling bytes)."""
    if urlsplit(url).scheme == "file":
        return _fetch_file(url, validators, max_bytes=max_bytes)
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    try:
        with client.stream("GET", url, headers=headers) as response:
            final = str(response.url)
            history = response.history
            moved_to = final if history and all(r.status_code in (301, 308)
                                                for r in history) else None
            if response.status_code == 304:
                return FetchResult(final, 304, headers=dict(response.headers),
                                   validators=_validators(response.headers, validators),
                                   moved_to=moved_to)
            if response.status_code != 200:
                raise FetchError(url, f"HTTP {response.status_code} {response.reason_phrase}",
                                 status=response.status_code,
                                 retry_after=retry_after_seconds(
                                     response.headers.get("Retry-After")))
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(url, f"body of {declared} bytes exceeds the {max_bytes}-byte "
                                      "limit")
            body = bytearray()
            deadline = time.monotonic() + max_seconds
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(url, f"body exceeds the {max_bytes}-byte limit "
                                          "(after decompression)")
                if time.monotonic() > deadline:
                    raise FetchError(url, f"body took longer than {max_seconds:g} s")
            return FetchResult(final, 200, bytes(body), dict(response.headers),
                               _validators(response.headers, Validators()), moved_to)
    except httpx.TooManyRedirects:
        raise FetchError(url, f"more than {MAX_REDIRECTS} redirects") from None
    except httpx.InvalidURL as exc:
        raise FetchError(url, f"invalid URL: {exc}") from None
    except httpx.UnsupportedProtocol as exc:
        raise FetchError(url, f"unsupported URL or redirect target: {exc}") from None
    except httpx.TimeoutException as exc:
        raise FetchError(url, f"timed out ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:
        raise FetchError(url, f"{type(exc).__name__}: {exc}") from None


def _validators(headers: httpx.Headers, previous: Validators) -> Validators:
    return Validators(headers.get("ETag") or previous.etag,
                      headers.get("Last-Modified") or previous.last_modified)


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
