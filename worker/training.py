"""`newswatch train`: fit each topic's model from its labelled examples, save it, find it again.

A topic's examples are the labelled JSONL files it names (`training:`, the dev-set format:
`title`, `summary`, `labels`, `story`, `lang`), its own `examples` (relevant) and
`counterexamples` (not relevant), and readers' feedback (stored with each item's text, so it
outlives the item). The model goes to `DATA_DIR/models/<topic>.json`, and a copy named by the
hash of what it was trained on beside it (`<topic>.<hash12>.json`: the versions, to go back
to); a worker that finds the file changed loads it before its next batch. Where no model was
trained here, the topic's `model:` file is used (the shipped topics ship one, fitted on the
dev sets of ../shared/eval). `newswatch check` says when a model is older than its examples.
Workers retrain a topic on their own when its readers said something new (`learn`).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files
from .classify import Classifier, embedding_text
from .classify.language import detect
from .classify.learned import (
    SIGNALS,
    Example,
    TopicModel,
    Unjudged,
    train,
    training_hash,
    words_hash,
)
from .classify.scoring import EmbedderLike, Reference, signals
from .config import Config
from .errors import NewswatchError
from .parse import item_text

if TYPE_CHECKING:
    from .store import Store
    from .store.stats import Totals

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    topic: str
    model: TopicModel
    path: Path
    skipped: tuple[str, ...]          # training files absent or unreadable, said why


def model_path(config: Config, topic_id: str) -> Path:
    """Where `newswatch train` keeps a topic's current model."""
    return config.data_dir / "models" / f"{topic_id}.json"


def model_file(config: Config, topic_id: str) -> Path | None:
    """The model a topic is decided by: the one trained here, else the one its config names."""
    trained = model_path(config, topic_id)
    if trained.is_file():
        return trained
    named = config.topics[topic_id].model
    return config.resolve_path(named) if named else None


def load_models(config: Config) -> dict[str, TopicModel]:
    """Every topic's model that exists; a file that cannot be read is an error naming it."""
    out = {}
    for topic_id in config.topics:
        path = model_file(config, topic_id)
        if path is not None and path.is_file():
            out[topic_id] = TopicModel.load(path)
        elif path is not None:
            raise NewswatchError(f"topic {topic_id!r}: model file {path} not found (run "
                                 f"`newswatch train --topic {topic_id}`, or fix `model:`)")
    return out


def labelled(config: Config, models: dict[str, TopicModel]) -> dict[str, tuple[Reference, ...]]:
    """Per topic, the labelled examples its model was fitted on (headlines and verdicts), in the
    order of the vectors its file keeps: what "like:" picks from. Only where they can all be
    read here and are still what the model was fitted on (the training hash; readers' feedback,
    fitted last, is left out); other topics' "like:" picks from their own examples."""
    out = {}
    for topic_id, model in models.items():
        if model.kernel_weights and (found := fitted_on(config, topic_id, model)) is not None:
            out[topic_id] = tuple(Reference(e.title, e.relevant) for e in found)
    return out


def fitted_on(config: Config, topic_id: str, model: TopicModel) -> list[Example] | None:
    """A topic's examples as its files and config give them now, if the model was fitted on
    them (readers' feedback aside); None where they differ or a training file is unreadable."""
    found, skipped = examples(config, topic_id)
    if skipped or training_hash(found, model.embedding) != model.trained_on:
        return None
    return found


def examples(config: Config, topic_id: str, feedback: Iterable[Example] = ()
             ) -> tuple[list[Example], list[str]]:
    """A topic's labelled examples, and the training files that could not be read (why)."""
    topic = config.topics[topic_id]
    out: list[Example] = []
    skipped: list[str] = []
    for name in topic.training:
        path = config.resolve_path(name)
        try:
            out += list(_read_labelled(path, topic_id))
        except OSError as exc:
            skipped.append(f"{path}: {exc.strerror or exc}")
        except ValueError as exc:
            skipped.append(f"{path}: {exc}")
    out += [Example(text, "", True, f"example-{n}", "examples")
            for n, text in enumerate(topic.examples)]
    out += [Example(text, "", False, f"counterexample-{n}", "examples")
            for n, text in enumerate(topic.counterexamples)]
    out += list(feedback)
    return out, skipped


def _read_labelled(path: Path, topic_id: str) -> Iterator[Example]:
    for title, summary, labels, group, lang in _labelled_items(path):
        yield Example(title, summary, topic_id in labels, group, path.name, lang)


# A training file's items as read, by (path, size, mtime): every topic that names the file reads
# it once (at each classifier load, the shipped topics read the same four files).
_ITEMS: dict[tuple[str, int, int], list[tuple[str, str, Any, str, str | None]]] = {}
_ITEMS_KEPT = 16


def _labelled_items(path: Path) -> list[tuple[str, str, Any, str, str | None]]:
    """(title, summary, labels, story, language) of each item of a JSONL training file."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if (found := _ITEMS.get(key)) is not None:
        return found
    out = []
    with path.open(encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                title, summary = item_text(str(item.get("title") or ""),
                                           item.get("summary"), item.get("content"))
                labels = item.get("labels") or []
            except (ValueError, AttributeError) as exc:
                raise ValueError(f"line {n}: not a labelled item: {exc}") from None
            out.append((title, summary, labels, str(item.get("story") or item.get("id") or n),
                        item.get("lang")))
    if len(_ITEMS) >= _ITEMS_KEPT:
        _ITEMS.clear()
    _ITEMS[key] = out
    return out


def inputs(config: Config, topic_id: str, found: list[Example], embedder: EmbedderLike
           ) -> tuple[Any, Any]:
    """The query's signals and the vectors of a topic's examples (the model's inputs)."""
    vectors = embedder.embed([embedding_text(e.title, e.summary) for e in found])
    return query_signals(config, topic_id, found), vectors


def query_signals(config: Config, topic_id: str, found: list[Example]) -> Any:
    """What a topic's query and exclude say of each example (`learned.SIGNALS`)."""
    import numpy

    lexical = Classifier({topic_id: config.topics[topic_id]})
    topic = lexical.topics[0]
    rows = [signals(topic, lexical.doc(e.title, e.summary, e.lang or detect(e.title, e.summary)))
            for e in found]
    return numpy.vstack(rows) if rows else numpy.zeros((0, len(SIGNALS)))


def train_topic(config: Config, topic_id: str, embedder: EmbedderLike,
                feedback: Iterable[Example] = (), into: Path | None = None,
                stream: Unjudged | None = None) -> Outcome:
    """Fit one topic's model on everything it has and save it: in the data folder, where the
    workers take it up (current and versioned), or as `into`/<topic>.json only (a model to
    ship, such as config/models). `stream`: what readers did not judge (`stream_beside`)."""
    found, skipped = examples(config, topic_id, feedback)
    rows, vectors = inputs(config, topic_id, found, embedder)
    topic = config.topics[topic_id]
    model = train(topic_id, found, rows, vectors, embedder.name,
                  words_hash(topic.query, topic.exclude), unjudged=stream)
    path = into / f"{topic_id}.json" if into is not None else model_path(config, topic_id)
    saved = [path] if into is not None else [
        path.with_name(f"{topic_id}.{model.trained_on[:12]}.json"), path]
    data = model.to_json().encode()
    for where in saved:                     # the current one last: workers never read half
        try:
            files.replace(where, data)
        except OSError as exc:
            raise NewswatchError(f"{where}: cannot save the topic model: "
                                 f"{exc.strerror or exc}") from None
    return Outcome(topic_id, model, path, tuple(skipped))


UNJUDGED_MAX = 500         # the stream's latest items that stand beside readers' verdicts


def unjudged(model: TopicModel | None, rows: Any, vectors: Any, told: int, alerts: int
             ) -> Unjudged:
    """Of items no reader judged (their signals and vectors), those the topic's decision in
    force did not alert (its model's, else its query's), each weighing the share of the
    topic's alerts that got a verdict (`told` of `alerts`, at most one)."""
    import numpy

    if model is not None:
        sent = model.score(vectors, rows) >= model.threshold
    else:
        sent = (rows[:, SIGNALS.index("query")] > 0) & (rows[:, SIGNALS.index("exclude")] == 0)
    kept = ~numpy.asarray(sent, dtype=bool)
    return Unjudged(rows[kept], vectors[kept], min(1.0, told / max(alerts, told, 1)))


class Latest:
    """The latest items of the recent stream, read and embedded once, when a topic first
    needs them: one `learn` pass or `train` may retrain many topics beside the same items."""

    def __init__(self, store: Store, embedder: EmbedderLike) -> None:
        self.store = store
        self.embedder = embedder

    @functools.cached_property
    def items(self) -> tuple[list[Example], Any]:
        found = [Example(e.title, e.summary, False, f"stream-{n}", "unjudged", e.lang)
                 for n, e in enumerate(self.store.entries.latest(UNJUDGED_MAX))]
        return found, self.embedder.embed([embedding_text(e.title, e.summary) for e in found])

    @functools.cached_property
    def _totals(self) -> Totals:
        return self.store.stats.totals()

    def alerted(self, topic_id: str, told: int) -> int:
        """How many of the topic's stories (and related reports) were alerted, or shown as
        digests' "maybe" lines: what its readers could judge, `told` of them. A store that
        began counting stories after many alerts has counted fewer: then its matched
        entries (a story's copies too)."""
        totals = self._totals
        maybe = totals.maybe.get(topic_id, 0)
        shown = totals.stories.get(topic_id, 0) + maybe
        return shown if shown >= told else totals.matches.get(topic_id, 0) + maybe


def stream_beside(latest: Latest, config: Config, topic_id: str, said: list[Example]
                  ) -> Unjudged | None:
    """The latest items of the stream that readers did not judge, beside their verdicts
    `said` (`Unjudged`: without them, verdicts on alerts alone pull the threshold down)."""
    if not said:
        return None
    found, embedded = latest.items
    judged = {e.title for e in said}
    kept = [n for n, e in enumerate(found) if e.title not in judged]
    if not kept:
        return None
    rows = query_signals(config, topic_id, [found[n] for n in kept])
    path = model_file(config, topic_id)
    model = None
    if path is not None and path.is_file():
        try:
            model = TopicModel.load(path)
        except NewswatchError as exc:       # no worker decides by it either: the query does
            log.warning("topic %s: %s; the stream beside its verdicts is what its query "
                        "did not alert", topic_id, exc)
    return unjudged(model, rows, embedded[kept], len(said), latest.alerted(topic_id, len(said)))


MIN_FEEDBACK = 10          # a topic with no other examples learns from feedback from here on
MIN_EACH = 3               # ... with at least this many of each verdict
LEARN_LOCK = 1800          # seconds one worker holds a topic's retraining


def learn(store: Store, config: Config, embedder: EmbedderLike | None) -> list[str]:
    """Retrain the topics whose readers said something new since their last training (the
    beat's `learn` task); the workers take the new models up between batches. A topic whose
    training files cannot be read here waits (its model would learn from less than its
    config says), and so does one with too little to learn from; one that cannot be
    retrained (its model cannot be saved) is named, and tried again at the next tick, while
    the others learn. The topics retrained."""
    from . import feedback

    if embedder is None:                      # no model here: nothing to train with
        return []
    done = []
    latest = Latest(store, embedder)
    for topic_id, mark in sorted(store.verdicts.unlearned().items()):
        if topic_id not in config.topics or not store.lock(f"learn:{topic_id}", LEARN_LOCK):
            continue
        try:
            said = feedback.examples(store, topic_id)
            found, skipped = examples(config, topic_id)
            relevant = sum(e.relevant for e in said)
            if skipped:
                log.warning("topic %s: readers' feedback not learned yet: training file %s",
                            topic_id, skipped[0])
            elif not found and (len(said) < MIN_FEEDBACK or min(
                    relevant, len(said) - relevant) < MIN_EACH):
                log.info("topic %s: %d readers' verdicts: it learns from %d, with %d of each",
                         topic_id, len(said), MIN_FEEDBACK, MIN_EACH)
            else:
                outcome = train_topic(config, topic_id, embedder, said,
                                      stream=stream_beside(latest, config, topic_id, said))
                f = outcome.model.cv.get("all", {})
                log.info("topic %s retrained with %d readers' verdicts: cross-validated P %.2f "
                         "R %.2f F1 %.2f", topic_id, len(said), f.get("precision", 0),
                         f.get("recall", 0), f.get("f1", 0))
                done.append(topic_id)
            store.verdicts.learned(topic_id, mark)
        except NewswatchError as exc:       # the others still learn; this one waits
            log.error("topic %s: readers' feedback not learned: %s", topic_id, exc)
        finally:
            store.unlock(f"learn:{topic_id}")
    return done


def stale(config: Config, topic_id: str, feedback: Iterable[Example] = ()) -> str | None:
    """Why a topic's model is older than its query and exclude or its examples (None: it is
    not, or cannot be told: no model, or training files absent here)."""
    path = model_file(config, topic_id)
    if path is None or not path.is_file():
        return None
    model = TopicModel.load(path)
    # The query first: it needs no training file (they may be absent here) and no reading.
    topic = config.topics[topic_id]
    if model.words and model.words != words_hash(topic.query, topic.exclude):
        return f"its model ({path}) was fitted with another query or exclude than the " \
               f"topic has now: run `newswatch train --topic {topic_id}`"
    found, skipped = examples(config, topic_id, feedback)
    if skipped:
        return None
    if training_hash(found, model.embedding) != model.trained_on:
        return f"its model ({path}) was trained on other examples than it has now: run " \
               f"`newswatch train --topic {topic_id}`"
    if not model.kernel_neighbours:       # formats 1 and 2: still scored as they were fitted
        return f"its model ({path}) was fitted by an older newswatch (likeness to the " \
               f"examples by raw cosine, or none): `newswatch train --topic {topic_id}` " \
               "refits it"
    return None


def model_notes(config: Config, installed: bool) -> tuple[list[str], list[str]]:
    """What `check` says of the topics' models: problems (a model that cannot be read, or was
    fitted on another embedding) and notes (stale ones; models unused without the extra;
    "maybe" lines asked of topics that have neither a model nor a description)."""
    from .classify.semantic import MODEL_NAME

    problems, notes = [], []
    for topic_id in config.topics:
        path = model_file(config, topic_id)
        if path is None:
            continue
        where = f"topics.{topic_id}.model"
        if not path.is_file():
            problems.append(f"{config.path}:1: {where}: {path} not found (run `newswatch "
                            f"train --topic {topic_id}`)")
            continue
        try:
            model = TopicModel.load(path)
        except NewswatchError as exc:
            problems.append(f"{config.path}:1: {where}: {exc}")
            continue
        if model.embedding != MODEL_NAME:
            problems.append(f"{config.path}:1: {where}: {path} was fitted on vectors of "
                            f"{model.embedding!r}, not of {MODEL_NAME!r}: run `newswatch "
                            f"train --topic {topic_id}`")
        elif not installed:
            notes.append(f"topic {topic_id!r}: its model is not used: the multilingual model "
                         "is not installed (pip install 'newswatch[semantic]'); decided by "
                         "its query")
        elif why := stale(config, topic_id):
            notes.append(f"topic {topic_id!r}: {why}")
    for sub in (s for s in config.subscribers if s.maybe):
        bare = [t for t in sub.topics if t in config.topics and model_file(config, t) is None
                and not config.topics[t].semantic_texts]
        if bare or not installed:
            notes.append(f"subscriber {sub.id!r}: no 'maybe' lines for "
                         f"{', '.join(bare) if installed else 'any topic'}: they are a "
                         "topic's near misses by its model, or by similarity to its "
                         "description and examples" + ("" if installed else
                                                       ", and the model is not used"))
    return problems, notes


def report(outcome: Outcome) -> list[str]:
    """The cross-validated figures of a trained topic, a line per source."""
    m = outcome.model
    beside = (f" (chosen beside {m.examples['unjudged']} unjudged items of the stream)"
              if "unjudged" in m.examples else "")
    lines = [f"{outcome.topic}: {m.examples.get('relevant', 0)} relevant, "
             f"{m.examples.get('not relevant', 0)} not; threshold {m.threshold:.2f}{beside}; "
             f"saved {outcome.path}"]
    for source, f in m.cv.items():
        lines.append(f"  {source:24s} P {f['precision']:.3f}  R {f['recall']:.3f}  "
                     f"F1 {f['f1']:.3f}  ({f['tp']} tp, {f['fp']} fp, {f['fn']} fn)")
    lines += [f"  skipped {why}" for why in outcome.skipped]
    return lines


def as_json(outcome: Outcome) -> dict[str, Any]:
    return {"topic": outcome.topic, "path": str(outcome.path), "cv": outcome.model.cv,
            "threshold": round(outcome.model.threshold, 4), "examples": outcome.model.examples,
            "skipped": list(outcome.skipped)}
