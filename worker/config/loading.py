"""Reading a config file: YAML -> pydantic, with every error as `FILE:LINE: path: message`.

The YAML is composed (not just loaded) so that each value keeps the line it came from; pydantic
then validates the plain data and its error locations are mapped back to those lines.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from ..netguard import url_problem
from ..opml import OpmlError, read_opml
from .schema import (
    _TOPIC_ID,
    _VAR,
    DEFAULT_CONFIG,
    ENV_PREFIX,
    Config,
    ConfigModel,
    Feed,
    FeedConfig,
    Path_,
    Settings,
    SubscriberConfig,
    TopicConfig,
)


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
