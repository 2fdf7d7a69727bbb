"""What a worker process holds while it runs: config, store, compiled topics, HTTP client.

Built once per process from the config file (NEWSWATCH_CONFIG) and settings (NEWSWATCH_*).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx

from .classify import Classifier
from .config import Config, Settings, load_config
from .deliver.webhook import make_client
from .errors import ConfigError
from .fetch import Fetcher, Limits
from .parsepool import Parser, StoreSpec
from .store import Store


@dataclass
class Runtime:
    config: Config
    store: Store
    classifier: Classifier
    http: httpx.Client               # webhooks (feeds are fetched by `fetcher`)
    fetcher: Fetcher
    parser: Parser
    schedule_synced: bool = False   # the config's feeds are in the schedule (once a process)
    redis_label: str = ""           # where its Redis is, for people (embedded or a URL)

    @classmethod
    def create(cls, config: Config) -> Runtime:
        s = config.settings
        if not s.redis_url:
            raise ConfigError([f"{config.path}: settings.redis_url: not set (set it or "
                               "NEWSWATCH_REDIS_URL; only `newswatch run` starts an embedded "
                               "Redis)"])
        spec = StoreSpec(s.redis_url, s.key_prefix, (
            ("seen_ttl_days", s.seen_ttl_days), ("story_window_hours", s.story_window_hours),
            ("recent_max", s.backtest_max_entries), ("recent_days", s.backtest_days)))
        store = spec.connect()
        return cls(config, store, make_classifier(config),
                   make_client(user_agent=s.user_agent, timeout=s.fetch_timeout),
                   Fetcher(fetch_limits(s)), Parser(store, spec, s.parse_processes))

    def close(self) -> None:
        self.http.close()
        self.fetcher.close()
        self.parser.close()


def fetch_limits(s: Settings) -> Limits:
    return Limits(user_agent=s.user_agent, timeout=s.fetch_timeout,
                  max_seconds=s.max_fetch_seconds, max_bytes=s.max_feed_bytes,
                  concurrency=s.poll_concurrency, per_host=s.host_concurrency,
                  host_gap=s.host_min_gap, allow_private=s.allow_private_networks)


def make_classifier(config: Config, semantic: bool | None = None) -> Classifier:
    """The config's topics; with semantic scoring when the settings (or `semantic`) say so."""
    embedder = None
    if config.settings.semantic if semantic is None else semantic:
        from .classify.semantic import Embedder

        embedder = Embedder()
    return Classifier(config.topics, embedder)


_lock = threading.Lock()
_current: Runtime | None = None


def current() -> Runtime:
    """This process's runtime, created on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = Runtime.create(load_config())
        return _current


def installed() -> Runtime | None:
    """This process's runtime if one was created, without creating one."""
    with _lock:
        return _current


def install(runtime: Runtime | None) -> None:
    """Use this runtime in this process (embedded run, tests); None forgets it."""
    global _current
    with _lock:
        _current = runtime
