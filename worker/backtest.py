"""`newswatch backtest`: replay the entries of the last days against the current topics.

The worker keeps the keys of recent entries in Redis (settings.backtest_days, at most
settings.backtest_max_entries); a backtest reads them, classifies them with the config as it
is now, and says per topic how many would have matched, with the latest examples. Nothing is
created or sent: it only reads.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .classify import Classifier
from .errors import NewswatchError
from .models import Entry, iso
from .store import Store

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$", re.IGNORECASE)
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: float | None = None) -> float:
    """`7d`, `12h`, `30m`, `2w` ago, or an ISO date/time (UTC unless it says otherwise)."""
    now = time.time() if now is None else now
    if m := _SPAN.match(text):
        return now - float(m.group(1)) * _UNIT[m.group(2).lower()]
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise NewswatchError(f"--since {text!r}: expected 7d, 12h, 30m, 2w or an ISO date "
                             "such as 2025-01-04") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@dataclass
class TopicTally:
    name: str
    matches: int = 0
    examples: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=3))


@dataclass
class Backtest:
    since: float
    entries: int = 0
    first: datetime | None = None
    last: datetime | None = None
    topics: dict[str, TopicTally] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"since": iso(datetime.fromtimestamp(self.since, UTC)), "entries": self.entries,
                "first": iso(self.first), "last": iso(self.last),
                "topics": {tid: {"name": t.name, "matches": t.matches,
                                 "examples": list(t.examples)}
                           for tid, t in self.topics.items()}}


def run_backtest(store: Store, classifier: Classifier, names: dict[str, str], since: float, *,
                 examples: int = 3,
                 wrap: Callable[[Iterable[Entry]], Iterable[Entry]] = lambda x: x) -> Backtest:
    """Classify every recent entry since `since`; `names` are the topics to count."""
    result = Backtest(since, topics={tid: TopicTally(name, examples=deque(maxlen=examples))
                                     for tid, name in names.items()})
    for batch in _batches(wrap(_flatten(store.entries.recent(since))), 256):
        found = classifier.classify_many([(e.title, e.summary, e.lang) for e in batch])
        for entry, matches in zip(batch, found, strict=True):
            result.entries += 1
            if entry.published:
                result.first = min(result.first or entry.published, entry.published)
                result.last = max(result.last or entry.published, entry.published)
            for m in matches:
                tally = result.topics.get(m.topic_id)
                if tally is None:
                    continue
                tally.matches += 1
                tally.examples.append({"title": entry.title, "url": entry.link,
                                       "source": entry.source_title,
                                       "published": iso(entry.published),
                                       "evidence": m.evidence[0] if m.evidence else "",
                                       "semantic": m.semantic})
    return result


def _flatten(batches: Iterator[list[Entry]]) -> Iterator[Entry]:
    for batch in batches:
        yield from batch


def _batches(entries: Iterable[Entry], size: int) -> Iterator[list[Entry]]:
    batch: list[Entry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def report(result: Backtest) -> list[str]:
    """The readable table."""
    span = (f" published {_day(result.first)} to {_day(result.last)}"
            if result.first and result.last else "")
    lines = [f"backtest: {result.entries} entries taken in since "
             f"{_day(datetime.fromtimestamp(result.since, UTC))}{span} (nothing was sent)", ""]
    width = max([len(tid) for tid in result.topics] + [5])
    lines.append(f"{'TOPIC'.ljust(width)}  MATCHES  SHARE")
    for tid, tally in result.topics.items():
        share = f"{100 * tally.matches / result.entries:.1f}%" if result.entries else "-"
        lines.append(f"{tid.ljust(width)}  {tally.matches:7d}  {share:>5}")
        for ex in reversed(tally.examples):
            when = (ex["published"] or "undated")[:16].replace("T", " ")
            lines.append(f"    {when}  {ex['source']}: {ex['title']}")
            if ex["evidence"]:
                lines.append(f"        {ex['evidence']}")
    return lines


def _day(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "?"
