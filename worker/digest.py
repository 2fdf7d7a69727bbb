"""Digest periods and the digest message. Pure: no I/O.

A digest subscriber's alerts are held in the bucket of the period they arrive in (an hour or a
day of the subscriber's time zone); once the period is over, one message lists them grouped by
topic, one entry per story with every outlet that carried it, the related alerts of a thread
under the heading of its first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from .bodies import DigestBody, DigestMaybe, DigestSource, DigestStory, DigestTopic
from .models import Alert, Entry, iso


@dataclass(frozen=True)
class Period:
    kind: str            # hourly | daily
    start: datetime      # UTC
    end: datetime        # UTC
    label: str           # in the subscriber's zone: "2025-01-04" or "2025-01-04 14:00"
    timezone: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{int(self.start.timestamp())}"


def period_of(moment: datetime, kind: str, timezone: str) -> Period:
    """The digest period containing `moment`, aligned to the subscriber's local clock (DST
    days are 23 or 25 hours long)."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    if kind == "hourly":
        start_local = local.replace(minute=0, second=0, microsecond=0)
        end = (start_local.astimezone(UTC) + timedelta(hours=1))
        label = start_local.strftime("%Y-%m-%d %H:00")
    elif kind == "daily":
        start_local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        end = (start_local + timedelta(days=1)).astimezone(UTC)   # wall clock: DST-aware
        label = start_local.strftime("%Y-%m-%d")
    else:
        raise ValueError(f"not a digest period: {kind!r}")
    return Period(kind, start_local.astimezone(UTC), end, label, timezone)


def digest_id(subscriber_id: str, period: Period) -> str:
    return "d" + hashlib.sha256(f"{subscriber_id}\n{period.key}".encode()).hexdigest()[:23]


def digest_body(subscriber_id: str, period: Period,
                alerts: list[tuple[Alert, list[Entry]]],
                links: Callable[[Alert], dict[str, dict[str, str]] | None] = lambda a: None,
                maybe: Sequence[tuple[str, str, list[DigestMaybe]]] = ()) -> DigestBody:
    """The digest, as webhook JSON: topics in order of first appearance, each story once (under
    its first topic, naming the others), with all its sources and, when configured, the
    readers' feedback links of its alert (per topic, as in an alert's body); then each
    topic's "maybe" lines (topic id, name, lines: items it did not alert), a topic with
    only those last."""
    topics: dict[str, DigestTopic] = {}
    heads: dict[tuple[str, str], DigestStory] = {}     # (topic, thread) -> its first story
    for alert, copies in sorted(alerts, key=lambda a: (a[0].detected_at, a[0].id)):
        first = alert.matches[0]
        topic = topics.setdefault(first.topic_id, {"id": first.topic_id,
                                                   "name": first.topic_name, "stories": []})
        e = alert.entry
        sources: list[DigestSource] = [{"title": e.title, "url": e.link,
                                        "source": e.source_title}]
        sources += [{"title": c.title, "url": c.link, "source": c.source_title}
                    for c in copies if c.key != e.key]
        story: DigestStory = {
            "id": alert.story_id, "alert": alert.id, "title": e.title, "url": e.link,
            "published": iso(e.published), "summary": e.summary,
            "also_topics": [m.topic_name for m in alert.matches[1:]], "sources": sources,
            "evidence": list(first.evidence), "thread": alert.thread_id}
        if (said := links(alert)) is not None:
            story["feedback"] = said
        head = heads.get((first.topic_id, alert.thread_id))
        if head is not None:                # under the heading of its thread's first alert
            head.setdefault("related", []).append(story)
            continue
        if alert.related is not None:       # its thread began before this period
            story["related_to"] = {"story": alert.related.story, "title": alert.related.title,
                                   "url": alert.related.url}
        heads[(first.topic_id, alert.thread_id)] = story
        topic["stories"].append(story)
    for topic_id, name, lines in maybe:
        topics.setdefault(topic_id, {"id": topic_id, "name": name, "stories": []})["maybe"] = \
            lines
    return {"type": "digest", "id": digest_id(subscriber_id, period),
            "subscriber": subscriber_id,
            "period": {"kind": period.kind, "label": period.label, "timezone": period.timezone,
                       "start": iso(period.start), "end": iso(period.end)},
            "stories": sum(1 + len(s.get("related", [])) for t in topics.values()
                           for s in t["stories"]),
            "topics": list(topics.values())}
