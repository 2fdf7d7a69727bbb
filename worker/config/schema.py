"""The config's shape: pydantic models of feeds, topics, subscribers and settings, and the
resolved `Config` the rest of newswatch reads (loading.py reads the YAML into it)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..classify.query import parse_query
from ..errors import QueryError
from ..opml import feed_url

DEFAULT_CONFIG = Path("config/newswatch.yaml")
ENV_PREFIX = "NEWSWATCH_"
_TOPIC_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SUBSCRIBER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path_ = tuple[str | int, ...]
CHANNELS = ("email", "webhook", "apprise", "outbox")
MAX_MAYBE = 20        # "maybe" lines per topic and period at most: each asks a reader


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedConfig(_Model):
    """One feed; `url` may be http(s), file://, or a path relative to the config file."""

    url: str | None = None
    opml: str | None = None
    name: str | None = None
    site: str | None = None              # the publication's own page (OPML htmlUrl)
    id: str | None = None
    interval: int | None = Field(default=None, ge=10, description="seconds between polls")
    categories: tuple[str, ...] = ()     # folder paths such as "Middle East/Gulf"

    @model_validator(mode="after")
    def _one_source(self) -> FeedConfig:
        if (self.url is None) == (self.opml is None):
            raise ValueError("a feed needs exactly one of 'url' or 'opml'")
        return self

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str | None) -> str | None:
        if url is not None:
            url = feed_url(url)
            scheme = urlsplit(url).scheme.lower()
            if scheme not in ("http", "https", "file", ""):
                raise ValueError(f"unsupported URL scheme {scheme!r} (use http, https or file)")
        return url


def _http_url(value: str) -> bool:
    """An absolute http(s) URL with a host."""
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _valid_query(query: str | None) -> str | None:
    if query is not None:
        try:
            parse_query(query)
        except QueryError as exc:
            raise ValueError(f"column {exc.column}: {exc.message}") from None
    return query


class SemanticConfig(_Model):
    """How a topic uses semantic scoring (when settings.semantic is on)."""

    threshold: float = Field(default=0.86, gt=0, le=1)   # similarity for a match without words
    gate: str | None = None       # only items matching this are embedded (default: any term)

    @field_validator("gate")
    @classmethod
    def _parses(cls, query: str | None) -> str | None:
        return _valid_query(query)


class TopicConfig(_Model):
    name: str
    query: str
    exclude: str | None = None
    description: str | None = None
    examples: tuple[str, ...] = ()             # items that are this topic (written by you)
    counterexamples: tuple[str, ...] = ()      # items that look like it and are not
    model: str | None = None                   # its trained model (JSON), relative to the file
    training: tuple[str, ...] = ()             # labelled JSONL files `newswatch train` reads
    semantic: SemanticConfig = Field(default_factory=SemanticConfig)

    @property
    def semantic_texts(self) -> tuple[str, ...]:
        """What an item is compared with: the description and the examples."""
        return ((self.description,) if self.description else ()) + self.examples

    @field_validator("query", "exclude")
    @classmethod
    def _parses(cls, query: str | None) -> str | None:
        return _valid_query(query)


class SubscriberConfig(_Model):
    id: str
    topics: tuple[str, ...] = Field(min_length=1)
    email: str | None = None
    webhook: str | None = None
    secret: str | None = None
    outbox: str | None = None
    apprise: str | None = None    # a chat URL for Apprise: slack://, tgram://, ntfy://, json://
    digest: Literal["none", "hourly", "daily"] = "none"
    timezone: str = "UTC"         # digest periods follow this clock (IANA name)
    updates: bool = False         # alert again, marked as an update, on material news
    maybe: int = Field(0, ge=0, le=MAX_MAYBE)   # near misses per topic, in the digest
                                                # (else a daily message of them)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _SUBSCRIBER_ID.match(value):
            raise ValueError(f"{value!r}: a subscriber id is 1 to 64 letters, digits and "
                             "'.', '_', '-', ':', '@', '/', '+' (no spaces), starting with a "
                             "letter or digit")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as "
                             "Europe/Paris)") from None
        return value

    @model_validator(mode="after")
    def _one_channel(self) -> SubscriberConfig:
        channels = [c for c in CHANNELS if getattr(self, c)]
        if len(channels) != 1:
            raise ValueError("a subscriber needs exactly one of 'email', 'webhook', 'apprise' "
                             "or 'outbox'"
                             + (f" (has {', '.join(channels)})" if channels else ""))
        if self.webhook and not self.secret:
            raise ValueError("a webhook subscriber needs a 'secret' (whsec_...)")
        return self

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"not an email address: {value!r}")
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value is not None and not _http_url(value):
            raise ValueError(f"webhook must be an http(s) URL: {value!r}")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        if value is not None:
            raw = value.removeprefix("whsec_")
            try:
                if len(base64.b64decode(raw, validate=True)) < 16:
                    raise ValueError
            except ValueError:
                raise ValueError("secret must be 'whsec_' + base64 of at least 16 bytes") from None
        return value

    @field_validator("apprise")
    @classmethod
    def _apprise(cls, value: str | None) -> str | None:
        if value is not None:
            from ..deliver.apprise import url_problem

            problem = url_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @property
    def channel(self) -> str:
        return next((c for c in CHANNELS if getattr(self, c)), "outbox")

    @property
    def target(self) -> str:
        return self.email or self.webhook or self.apprise or self.outbox or ""


class Settings(_Model):
    """Every setting can also come from the environment as NEWSWATCH_<NAME>."""

    redis_url: str | None = None            # none: `newswatch run` starts an embedded Redis
    broker_url: str | None = None           # Celery broker; defaults to redis_url
    smtp_url: str | None = None
    from_address: str = "newswatch@localhost"
    allow_private_networks: bool = False
    poll_interval: int = Field(default=300, ge=10)       # the first interval of a feed
    min_interval: int = Field(default=60, ge=10)         # adaptive intervals stay within
    max_interval: int = Field(default=21_600, ge=10)
    fetch_timeout: float = Field(default=20.0, gt=0)           # each connect / read
    max_fetch_seconds: float = Field(default=60.0, gt=0)       # a whole fetch, redirects too
    max_parse_seconds: float = Field(default=20.0, gt=0)       # parsing one body
    delivery_timeout: float = Field(default=30.0, gt=0)        # one delivery attempt, in all
    max_feed_bytes: int = Field(default=10_000_000, gt=0)
    max_entries: int = Field(default=1000, gt=0)       # read per feed and poll (newest first)
    user_agent: str = "newswatch/0.1 (+https://github.com/newswatch/newswatch)"
    data_dir: str | None = None             # unset: ./var; relative: to the config file
    key_prefix: str = "nw"
    seen_ttl_days: int = Field(default=30, ge=1)
    backtest_days: int = Field(default=7, ge=1)              # recent entries kept for backtest
    backtest_max_entries: int = Field(default=100_000, ge=0)
    story_window_hours: int = Field(default=72, ge=1)
    # The multilingual model (newswatch[semantic]): "auto" uses it when it is installed.
    semantic: bool | Literal["auto"] = "auto"
    retry_base_delay: float = Field(default=2.0, gt=0)      # seconds; doubles per attempt
    retry_max_delay: float = Field(default=3600.0, gt=0)    # longest wait between attempts
    delivery_max_age_hours: float = Field(default=24.0, gt=0)   # then the alert is dead
    redeliver_after: float = Field(default=300.0, ge=1)     # work idle this long is re-queued
    unsubscribe_url: str | None = None    # base URL for List-Unsubscribe(-Post) one-click
    operators: tuple[str, ...] = ()       # subscribers told when a feed is gone or failing
    operator_alert_after: int = Field(default=5, ge=1)     # failures in a row before telling
    metrics_port: int | None = Field(default=None, ge=1, le=65535)   # Prometheus /metrics
    metrics_address: str = "127.0.0.1"
    log_format: Literal["text", "json"] = "text"    # json: one object per line, for machines
    poll_concurrency: int = Field(default=100, ge=1)    # feed requests in flight per batch
    host_concurrency: int = Field(default=2, ge=1)      # ... to one host
    host_min_gap: float = Field(default=0.25, ge=0)     # seconds between requests to one host
    poll_batch: int = Field(default=100, ge=1)          # feeds per poll task
    parse_processes: int | None = Field(default=None, ge=0)   # None: cores + 1; 0/1: inline
    websub_callback: str | None = None    # public base URL hubs can reach; None: no WebSub
    websub_listen: str | None = None      # host:port where run / serve answer (= listen)
    websub_lease_seconds: int = Field(default=7 * 86400, ge=300)
    # Where run / serve answer HTTP: WebSub callbacks and readers' feedback links.
    listen: str | None = None
    # Feedback links ("relevant" / "not relevant") in every alert, when both are set: the base
    # URL readers reach this server at, and the key that signs the links (32+ characters).
    public_url: str | None = None
    feedback_secret: str | None = Field(default=None, min_length=32)
    feedback_days: int = Field(default=30, ge=1)            # a link works this long

    @property
    def http_listen(self) -> str | None:
        """host:port of the HTTP server (`listen`, or the older `websub_listen`)."""
        return self.listen or self.websub_listen

    @property
    def feedback_links(self) -> bool:
        return bool(self.public_url and self.feedback_secret)

    @field_validator("unsubscribe_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme != "https":
            raise ValueError("unsubscribe_url must be an https:// URL (RFC 8058)")
        return value

    @field_validator("websub_callback")
    @classmethod
    def _callback(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("websub_callback must be an http(s) base URL that hubs can reach")
        return value

    @field_validator("websub_listen", "listen")
    @classmethod
    def _listen(cls, value: str | None, info: Any) -> str | None:
        if value is not None:
            port = value.rpartition(":")[2]
            if not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{info.field_name} must be host:port, e.g. 0.0.0.0:8099")
        return value

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        if value is not None and not _http_url(value):
            raise ValueError("public_url must be the http(s) base URL readers reach "
                             "newswatch at, e.g. https://newswatch.example.org")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _feedback_pair(self) -> Settings:
        if bool(self.public_url) != bool(self.feedback_secret):
            missing = "feedback_secret" if self.public_url else "public_url"
            raise ValueError(f"feedback links need both public_url and feedback_secret: "
                             f"{missing} is not set")
        if self.public_url and not self.http_listen:
            raise ValueError("feedback links need a server to answer them: set listen "
                             "(host:port), where `newswatch run` or `serve` listens")
        return self

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("smtp", "smtps"):
            raise ValueError("smtp_url must start with smtp:// or smtps://")
        return value


class ConfigModel(_Model):
    feeds: tuple[FeedConfig, ...] = ()
    topics: dict[str, TopicConfig] = Field(default_factory=dict)
    subscribers: tuple[SubscriberConfig, ...] = ()
    settings: Settings = Field(default_factory=Settings)

    @field_validator("feeds", "topics", "subscribers", "settings", mode="before")
    @classmethod
    def _empty(cls, value: Any, info: Any) -> Any:
        """`feeds:` with nothing under it means no feeds, not an error."""
        if value is None:
            return {} if info.field_name in ("topics", "settings") else ()
        return value


@dataclass(frozen=True)
class Feed:
    """A resolved feed: OPML expanded, relative paths turned into file:// URLs."""

    id: str
    url: str
    name: str
    interval: int
    categories: tuple[str, ...] = ()
    site: str | None = None              # the publication's own page, when known


@dataclass(frozen=True)
class Config:
    path: Path
    feeds: tuple[Feed, ...]
    topics: dict[str, TopicConfig]
    subscribers: tuple[SubscriberConfig, ...]
    settings: Settings

    def feed(self, feed_id: str) -> Feed:
        return self._feeds_by_id[feed_id]

    def subscriber(self, subscriber_id: str) -> SubscriberConfig:
        return self._subscribers_by_id[subscriber_id]

    @cached_property
    def _feeds_by_id(self) -> dict[str, Feed]:          # 10,000 feeds: no linear scans
        return {feed.id: feed for feed in self.feeds}

    @cached_property
    def _subscribers_by_id(self) -> dict[str, SubscriberConfig]:
        return {sub.id: sub for sub in self.subscribers}

    @property
    def data_dir(self) -> Path:
        """Where the embedded Redis and beat keep their files."""
        if self.settings.data_dir:
            return self.resolve_path(self.settings.data_dir)
        return Path("var").resolve()

    def resolve_path(self, value: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.path.parent / path).resolve()
