"""What newswatch sends, as typed JSON: the webhook body of an alert (DESIGN.md's contract), of
a digest and of an operator notice; and the kinds and statuses of delivery records. Every
renderer (email, chat, outbox) reads these and nothing else."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, NotRequired, TypedDict


class RecordKind(StrEnum):
    """What a delivery record carries."""

    ALERT = "alert"
    DIGEST = "digest"
    NOTICE = "notice"


class RecordStatus(StrEnum):
    """Where a delivery record is: waiting (pending, held for a digest, retrying), folded into
    a digest, or done (delivered, dead)."""

    PENDING = "pending"
    HELD = "held"
    DIGESTED = "digested"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    DEAD = "dead"


Links = dict[str, str]             # "relevant" / "not_relevant" -> URL


class Like(TypedDict):
    title: str
    label: str                     # "relevant" | "not relevant"


class TopicMatch(TypedDict):
    id: str
    name: str
    score: float
    evidence: list[str]
    clauses: list[str]
    semantic: NotRequired[float]
    model: NotRequired[float]
    like: NotRequired[list[Like]]


class Source(TypedDict):
    feed: str
    title: str
    categories: list[str]


class Copy(TypedDict):
    title: str
    url: str | None
    source: str


class Story(TypedDict):
    id: str
    title: str
    url: str | None
    published: str | None
    summary: str
    lang: str | None
    source: Source
    also_reported_by: list[Copy]


class RelatedTo(TypedDict):
    story: str                     # the story this one resembles but may not be
    title: str
    url: str | None


class AlertBody(TypedDict):
    type: Literal["alert"]
    id: str
    update: bool
    subscriber: str
    topics: list[TopicMatch]
    story: Story
    detected_at: str | None
    thread: str                    # the first story of its thread (its own story otherwise)
    related_to: RelatedTo | None
    reply_to: str | None           # the subscriber's first alert in the thread, if not this
    feedback: NotRequired[dict[str, Links]]      # topic id -> its links


class DigestSource(TypedDict):
    title: str
    url: str | None
    source: str


class DigestStory(TypedDict):
    id: str
    alert: str
    title: str
    url: str | None
    published: str | None
    summary: str
    also_topics: list[str]
    sources: list[DigestSource]
    evidence: list[str]
    feedback: NotRequired[dict[str, Links]]
    thread: NotRequired[str]                 # the first story of its thread
    related_to: NotRequired[RelatedTo]       # what it resembles, when not in this digest
    related: NotRequired[list[DigestStory]]  # the thread's later alerts in the period


class DigestMaybe(TypedDict):
    """An item the topic did not alert, among the nearest its model scored under its
    threshold: shown for readers to judge (the subscriber's `maybe`)."""
    id: str                                  # the line (what its feedback links name)
    title: str
    url: str | None
    published: str | None
    summary: str
    source: str
    lang: str | None
    score: float                             # how near: the topic's model's probability,
    threshold: float                         # or the similarity where it has no model (`by`)
    by: str                                  # model | similarity
    feedback: NotRequired[dict[str, Links]]


class DigestTopic(TypedDict):
    id: str
    name: str
    stories: list[DigestStory]
    maybe: NotRequired[list[DigestMaybe]]    # only for a subscriber with `maybe`


class Period(TypedDict):
    kind: str                      # hourly | daily
    label: str
    timezone: str
    start: str | None
    end: str | None


class DigestBody(TypedDict):
    type: Literal["digest"]
    id: str
    subscriber: str
    period: Period
    stories: int
    topics: list[DigestTopic]


class NoticeFeed(TypedDict):
    id: str
    name: str
    url: str


class NoticeBody(TypedDict):
    type: Literal["feed_problem"]
    id: str
    subscriber: str
    problem: str                   # gone | failing
    feed: NoticeFeed
    error_class: str
    error: str
    errors_in_a_row: int
    detected_at: str | None


Body = AlertBody | DigestBody | NoticeBody
