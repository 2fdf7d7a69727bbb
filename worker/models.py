"""Frozen values that flow through the pipeline, and their one serialisation each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .bodies import TopicMatch


def iso(dt: datetime | None) -> str | None:
    """UTC timestamp as `2025-01-04T10:00:00Z`."""
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Validators:
    """What a server gave us to make the next request conditional."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Entry:
    """One normalised feed item."""

    feed_id: str
    entry_id: str          # guid, else link, else a content hash: stable across polls
    title: str
    summary: str           # plain text, no HTML
    link: str | None       # canonical URL
    published: datetime | None
    source_title: str      # the feed's human name
    lang: str | None = None    # ISO 639-1 (or 639-3), None when unknown

    @property
    def key(self) -> str:
        return f"{self.feed_id}:{self.entry_id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "feed_id": self.feed_id, "entry_id": self.entry_id, "title": self.title,
            "summary": self.summary, "link": self.link, "published": iso(self.published),
            "source_title": self.source_title, "lang": self.lang,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Entry:
        return cls(
            feed_id=d["feed_id"], entry_id=d["entry_id"], title=d["title"],
            summary=d["summary"], link=d.get("link"), published=parse_iso(d.get("published")),
            source_title=d.get("source_title", ""), lang=d.get("lang"),
        )


@dataclass(frozen=True)
class Match:
    """A topic that matched an entry, with the evidence that made it match."""

    topic_id: str
    topic_name: str
    score: float
    evidence: tuple[str, ...] = ()        # snippets, matched words marked *word*
    clauses: tuple[str, ...] = ()         # query terms that held: `negotiat* = negotiators`
    semantic: float | None = None         # similarity to the topic's description, if scored
    model: float | None = None            # the trained model's probability, when it decided
    like: tuple[tuple[str, bool], ...] = ()   # the labelled examples it is most alike

    def to_dict(self) -> TopicMatch:
        out: TopicMatch = {"id": self.topic_id, "name": self.topic_name, "score": self.score,
                           "evidence": list(self.evidence), "clauses": list(self.clauses)}
        if self.semantic is not None:
            out["semantic"] = self.semantic
        if self.model is not None:
            out["model"] = self.model
            out["like"] = [{"title": text, "label": "relevant" if relevant else "not relevant"}
                           for text, relevant in self.like]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Match:
        like = tuple((str(x["title"]), x.get("label") == "relevant") for x in d.get("like", ()))
        return cls(d["id"], d["name"], float(d["score"]), tuple(d.get("evidence", ())),
                   tuple(d.get("clauses", ())), d.get("semantic"), d.get("model"), like)


@dataclass(frozen=True)
class Related:
    """The story an alert's story resembles but may not be (stories.Outcome.RELATED)."""

    story: str
    title: str
    url: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"story": self.story, "title": self.title, "url": self.url}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Related:
        return cls(str(d["story"]), str(d.get("title") or ""), d.get("url"))


@dataclass(frozen=True)
class Alert:
    """One (subscriber, story) notification; `id` is stable across retries. `thread` is the
    first story of the thread it is in (its own story when it starts one), `related` the story
    it resembles, `reply_to` the subscriber's first alert in the thread (what email replies to)."""

    id: str
    subscriber_id: str
    story_id: str
    entry: Entry
    matches: tuple[Match, ...]
    detected_at: datetime
    update: bool = False            # a material update of a story alerted before
    thread: str | None = None
    related: Related | None = None
    reply_to: str | None = None

    @property
    def thread_id(self) -> str:
        return self.thread or self.story_id

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id, "subscriber_id": self.subscriber_id, "story_id": self.story_id,
            "entry": self.entry.to_dict(), "matches": [m.to_dict() for m in self.matches],
            "detected_at": iso(self.detected_at), "update": self.update,
        }
        if self.thread:
            out["thread"] = self.thread
        if self.related:
            out["related"] = self.related.to_dict()
        if self.reply_to:
            out["reply_to"] = self.reply_to
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alert:
        detected = parse_iso(d["detected_at"])
        assert detected is not None
        return cls(
            id=d["id"], subscriber_id=d["subscriber_id"], story_id=d["story_id"],
            entry=Entry.from_dict(d["entry"]),
            matches=tuple(Match.from_dict(m) for m in d["matches"]),
            detected_at=detected, update=bool(d.get("update", False)),
            thread=d.get("thread"), reply_to=d.get("reply_to"),
            related=Related.from_dict(d["related"]) if d.get("related") else None,
        )
