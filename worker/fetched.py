"""What a fetch gives and under which limits: shared by fetch.py (files, the event loop) and
aio.py (HTTP), so that neither imports the other's module for its types."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import Validators

MAX_REDIRECTS = 5
ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
          "application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")


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
