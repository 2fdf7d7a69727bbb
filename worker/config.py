"""Typed configuration: YAML -> pydantic, with every error as `FILE:LINE: path: message`.

The YAML is composed (not just loaded) so that each value keeps the line it came from; pydantic
then validates the plain data and its error locations are mapped back to those lines.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .classify.query import parse_query
from .errors import ConfigError, QueryError
from .netguard import url_problem
from .opml import OpmlError, feed_url, read_opml

DEFAULT_CONFIG = Path("config/newswatch.yaml")
ENV_PREFIX = "NEWSWATCH_"
_TOPIC_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_SUBSCRIBER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Path_ = tuple[str | int, ...]
CHANNELS = ("email", "webhook", "apprise", "outbox")


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
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
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
            from .deliver.apprise import url_problem

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
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
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


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or os.environ.get("NEWSWATCH_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, substitute, validate and resolve a config file; ConfigError lists every problem."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read config: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: not UTF-8: {exc}"]) from None
    return _build(file, text)


def _build(file: Path, text: str) -> Config:
    problems: list[str] = []
    lines: dict[Path_, int] = {}
    unset: set[Path_] = set()            # values whose ${VAR} is not set: said once, there
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ConfigError([f"{file}:{line}: YAML: {getattr(exc, 'problem', exc)}"]) from None
    data = _plain(node, (), lines, problems, file, unset) if node is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1: (top): expected a mapping with feeds, topics, subscribers"])
    _apply_env(data, problems)

    def where(loc: Path_) -> str:
        origin = _env_origin(loc)
        if origin:
            return f"env {origin}"
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                return f"{file}:{lines[loc[:n]]}"
        return f"{file}:1"

    # Each part on its own, so that one bad value hides no other problem.
    report = _Report(problems, where, unset)
    model = report.parts(data)
    raw_topics = data.get("topics")
    problems += _cross_check(model, where, set(raw_topics) if isinstance(raw_topics, dict)
                             else set(), data.get("subscribers"),
                             report.index.get("subscribers", []))
    feeds = _resolve_feeds(model, file, where, problems, report.index.get("feeds", []))
    if problems:
        raise ConfigError(problems)
    return Config(file.resolve(), feeds, model.topics, model.subscribers, model.settings)


@dataclass
class _Report:
    """Validates the config part by part (settings, each feed, topic and subscriber), every
    problem as `FILE:LINE: path: message`, with "did you mean" for a misspelt key."""

    problems: list[str]
    where: Any
    unset: set[Path_]
    index: dict[str | int, list[int]] = field(default_factory=dict)

    def parts(self, data: dict[str, Any]) -> ConfigModel:
        for key in data:
            if key not in ConfigModel.model_fields:
                self.unknown((key,), ConfigModel)
        sections = {k: data.get(k) for k in ConfigModel.model_fields}
        settings = self.one(Settings, sections["settings"] or {}, ("settings",)) or Settings()
        feeds = self.many(FeedConfig, sections["feeds"], ("feeds",))
        topics_raw = sections["topics"] or {}
        topics: dict[str, TopicConfig] = {}
        if isinstance(topics_raw, dict):
            for topic_id, raw in topics_raw.items():
                topic = self.one(TopicConfig, raw, ("topics", topic_id))
                if topic is not None:
                    topics[topic_id] = topic
        else:
            self.add(("topics",), "expected a mapping of topic ids to topics")
        subscribers = self.many(SubscriberConfig, sections["subscribers"], ("subscribers",))
        return ConfigModel.model_construct(feeds=tuple(feeds), topics=topics,
                                           subscribers=tuple(subscribers), settings=settings)

    def many(self, model: type[_M], raw: Any, loc: Path_) -> list[_M]:
        """The valid items of a list; `self.index[loc]` their places in the file's list."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.add(loc, "expected a list")
            return []
        valid = [(i, part) for i, item in enumerate(raw)
                 if (part := self.one(model, item, (*loc, i))) is not None]
        self.index[loc[0]] = [i for i, _ in valid]
        return [part for _, part in valid]

    def one(self, model: type[_M], raw: Any, loc: Path_) -> _M | None:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                full = (*loc, *err["loc"])
                if full in self.unset:
                    continue                 # its unset ${VAR} was said already
                if err["type"] == "extra_forbidden":
                    self.unknown(full, _model_at(model, tuple(err["loc"][:-1])))
                else:
                    self.add(full, err["msg"].removeprefix("Value error, "))
            return None

    def unknown(self, loc: Path_, model: type[BaseModel] | None) -> None:
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else \
            f" (known: {', '.join(known)})" if known and len(known) <= 12 else ""
        self.add(loc, f"unknown key{hint}")

    def add(self, loc: Path_, message: str) -> None:
        self.problems.append(f"{self.where(loc)}: {_dotted(loc)}: {message}")


_M = TypeVar("_M", bound=BaseModel)


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that a path inside `model` leads to (for its field names)."""
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return None
    return model


def _plain(node: yaml.Node, path: Path_, lines: dict[Path_, int], problems: list[str],
           file: Path, unset: set[Path_]) -> Any:
    """YAML node -> plain data, recording each path's line and substituting ${VAR}."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in out:
                problems.append(f"{file}:{key_node.start_mark.line + 1}: {_dotted((*path, key))}: "
                                "duplicate key")
            out[key] = _plain(value_node, (*path, key), lines, problems, file, unset)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v, (*path, i), lines, problems, file, unset)
                for i, v in enumerate(node.value)]
    value = yaml.SafeLoader("").construct_object(node)
    if isinstance(value, str) and "${" in value:
        def substitute(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            problems.append(f"{file}:{lines[path]}: {_dotted(path)}: "
                            f"environment variable {name} is not set")
            unset.add(path)
            return ""
        value = _VAR.sub(substitute, value)
    return value


def _apply_env(data: dict[str, Any], problems: list[str]) -> None:
    settings = data.get("settings")
    if settings is None:
        settings = data["settings"] = {}
    if not isinstance(settings, dict):
        return
    for name in Settings.model_fields:
        value = os.environ.get(ENV_PREFIX + name.upper())
        if value is not None:
            settings[name] = value


def _env_origin(loc: Path_) -> str | None:
    if len(loc) >= 2 and loc[0] == "settings" and isinstance(loc[1], str):
        env = ENV_PREFIX + loc[1].upper()
        if env in os.environ:
            return env
    return None


def _dotted(loc: Path_) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _cross_check(model: ConfigModel, where: Any, topic_ids: set[str], raw_subscribers: Any,
                 places: list[int]) -> list[str]:
    """What no single part can check: references between parts, duplicates, and targets the
    SSRF guard would refuse. References are read from every subscriber as written (valid or
    not), against every topic named (valid or not): each problem is said once, all at once.
    `places`: where each valid subscriber stands in the file's list."""
    problems = []
    for topic_id in topic_ids:
        if not _TOPIC_ID.match(str(topic_id)):
            problems.append(f"{where(('topics', topic_id))}: topics.{topic_id}: topic ids are "
                            "lowercase letters, digits, '-' and '_'")
    known = ", ".join(sorted(map(str, topic_ids))) or "none"
    for i, raw in enumerate(raw_subscribers if isinstance(raw_subscribers, list) else []):
        wanted = raw.get("topics") if isinstance(raw, dict) else None
        for j, topic in enumerate(wanted if isinstance(wanted, list) else []):
            if isinstance(topic, str) and topic not in topic_ids:
                problems.append(f"{where(('subscribers', i, 'topics', j))}: "
                                f"subscribers[{i}].topics[{j}]: unknown topic {topic!r} "
                                f"(known: {known})")
    seen: set[str] = set()
    known_subscribers = {s.id for s in model.subscribers}
    for j, operator in enumerate(model.settings.operators):
        if operator not in known_subscribers:
            problems.append(f"{where(('settings', 'operators', j))}: settings.operators[{j}]: "
                            f"unknown subscriber {operator!r}")
    for i, sub in zip(places, model.subscribers, strict=True):
        if sub.id in seen:
            problems.append(f"{where(('subscribers', i, 'id'))}: subscribers[{i}].id: "
                            f"duplicate subscriber id {sub.id!r}")
        seen.add(sub.id)
        if not model.settings.allow_private_networks:
            for channel in ("webhook", "apprise"):
                target = getattr(sub, channel)
                if target and (problem := url_problem(target)):
                    problems.append(f"{where(('subscribers', i, channel))}: "
                                    f"subscribers[{i}].{channel}: {problem}: every delivery "
                                    "would be refused")
        if sub.email and not model.settings.smtp_url:
            problems.append(f"{where(('subscribers', i, 'email'))}: subscribers[{i}].email: "
                            "email subscribers need settings.smtp_url")
    return problems


def _resolve_feeds(model: ConfigModel, file: Path, where: Any, problems: list[str],
                   places: list[int]) -> tuple[Feed, ...]:
    """Feeds with OPML lists expanded and paths made URLs; `places`: where each valid feed
    stands in the file's list."""
    base = file.resolve().parent
    feeds: list[Feed] = []
    ids: dict[str, int] = {}
    for i, fc in zip(places, model.feeds, strict=True):
        if fc.opml is not None:
            try:
                found = read_opml((base / fc.opml).read_bytes(), fc.opml)
            except OSError as exc:
                problems.append(f"{where(('feeds', i, 'opml'))}: feeds[{i}].opml: "
                                f"cannot read OPML {fc.opml}: {exc.strerror or exc}")
                continue
            except OpmlError as exc:
                problems.append(f"{where(('feeds', i, 'opml'))}: feeds[{i}].opml: {exc}")
                continue
            pairs: list[tuple[str, str | None, str | None, tuple[str, ...], str | None]] = [
                (f.url, f.title, None, f.categories or fc.categories, f.site) for f in found]
        else:
            assert fc.url is not None
            pairs = [(fc.url, fc.name, fc.id, fc.categories, fc.site)]
        for url, name, explicit_id, categories, site in pairs:
            resolved = _resolve_url(url, base)
            if not model.settings.allow_private_networks and \
                    urlsplit(resolved).scheme in ("http", "https") and \
                    (problem := url_problem(resolved)):
                problems.append(f"{where(('feeds', i))}: feeds[{i}]: {problem}: it would "
                                "never be polled")
                continue
            feed_id = explicit_id or "f" + hashlib.sha1(resolved.encode()).hexdigest()[:10]
            if feed_id in ids:
                problems.append(f"{where(('feeds', i))}: feeds[{i}]: same feed as feeds"
                                f"[{ids[feed_id]}] ({resolved})")
                continue
            ids[feed_id] = i
            display = name or urlsplit(resolved).hostname or Path(urlsplit(resolved).path).name
            feeds.append(Feed(feed_id, resolved, display,
                              fc.interval or model.settings.poll_interval, tuple(categories),
                              site))
    return tuple(feeds)


def _resolve_url(url: str, base: Path) -> str:
    if urlsplit(url).scheme:
        return url
    return (base / url).resolve().as_uri()
