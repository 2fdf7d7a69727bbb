"""Commands about topics and items: classify, explain, train, feedback, stories."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ..config import Config, load_config
from ..errors import NewswatchError
from ..progress import progress

if TYPE_CHECKING:
    from ..models import Entry


class Item(BaseModel):
    """One JSONL input item (untrusted)."""

    model_config = ConfigDict(extra="ignore")
    id: str | int
    title: str = ""
    summary: str | None = None
    content: str | None = None
    link: str | None = None
    published: str | None = None
    source: str | None = None
    lang: str | None = None          # the language the sender says it is in (a hint)


MAX_LINE = 1 << 20          # bytes: a longer input line is an error of its own, not read


def _items(path: str) -> Iterator[tuple[int, Item | str]]:
    """(line number, item or error message) for each non-blank line. A line that is too
    long, not UTF-8 or not a valid item is an error for that line alone."""
    try:
        stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise NewswatchError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with stream:
        for n, raw in enumerate(_lines(stream), 1):
            if raw is None:
                yield n, f"{path}:{n}: line: longer than {MAX_LINE:,} bytes, skipped"
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield n, f"{path}:{n}: line: not UTF-8 ({exc.reason} at byte {exc.start})"
                continue
            if not line.strip():
                continue
            try:
                yield n, Item.model_validate_json(line)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(map(str, first["loc"])) or "line"
                yield n, f"{path}:{n}: {where}: {first['msg']}"


def _lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """The stream's lines, or None for a line over MAX_LINE bytes (read past, never held)."""
    while raw := stream.readline(MAX_LINE + 1):
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield raw


def _item_text(item: Item) -> tuple[str, str]:
    """What the worker reads of the same item polled from a feed (parse.item_text)."""
    from ..parse import item_text

    return item_text(item.title, item.summary, item.content)


CLASSIFY_BATCH = 256


def _classify(args: argparse.Namespace) -> int:
    from itertools import islice

    from ..runtime import make_classifier, settle_heap

    config = load_config(args.config)
    classifier = make_classifier(config, args.semantic, models=args.models)
    settle_heap()                    # it reads every line with this classifier
    failures = 0
    lines = progress(_items(args.file), desc="classify")
    while batch := list(islice(lines, CLASSIFY_BATCH)):
        good = [item for _, item in batch if not isinstance(item, str)]
        texts = [_item_text(item) for item in good]
        langs = [_item_lang(item, title, summary)
                 for item, (title, summary) in zip(good, texts, strict=True)]
        found = iter(classifier.classify_many([(title, summary, lang) for (title, summary), lang
                                               in zip(texts, langs, strict=True)]))
        lang_of = iter(langs)
        for _, item in batch:
            if isinstance(item, str):
                failures += 1
                print(item, file=sys.stderr)
                print(json.dumps({"id": None, "topics": [], "matches": [], "error": item}))
                continue
            matches = next(found)
            print(json.dumps({
                "id": item.id, "lang": next(lang_of), "topics": [m.topic_id for m in matches],
                "matches": [_match_json(m) for m in matches],
            }, ensure_ascii=False))
    return 1 if failures else 0


def _item_lang(item: Item, title: str, summary: str) -> str | None:
    """The item's language: detected from its text, its own `lang` trusted where the text
    cannot tell (as a feed's declared language is)."""
    from ..classify.language import detect

    return detect(title, summary, item.lang)


def _match_json(m: Any) -> dict[str, Any]:
    """A match as `classify` prints it: the webhook body's topic, keyed `topic`, no name."""
    body = m.to_dict()
    del body["name"]
    return {"topic": body.pop("id"), **body}


def _explain(args: argparse.Namespace) -> int:
    from ..classify.explain import explain_topic
    from ..runtime import make_classifier

    config = load_config(args.config)
    _topic(config, args.topic)
    if args.item is not None:
        try:
            item = Item.model_validate_json(args.item)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise NewswatchError(f"--item: {'.'.join(map(str, first['loc'])) or 'line'}: "
                                 f"{first['msg']}") from None
    elif args.text or args.summary:
        item = Item(id=0, title=" ".join(args.text), summary=args.summary)
    else:
        raise NewswatchError("explain needs a TEXT (the title), --summary or --item")
    title, summary = _item_text(item)
    lang = _item_lang(item, title, summary)
    explanation = explain_topic(make_classifier(config, args.semantic, models=args.models),
                                args.topic, title, summary, lang)
    print("\n".join(explanation.lines))
    return 0 if explanation.matched else 1


def _train(args: argparse.Namespace) -> int:
    from ..classify.semantic import shared
    from ..training import Latest, as_json, examples, report, stream_beside, train_topic

    config = load_config(args.config)
    for topic_id in args.topic or ():
        _topic(config, topic_id)
    wanted = args.topic or [t for t, c in config.topics.items()
                            if c.training or c.examples or c.counterexamples]
    if not wanted:
        raise NewswatchError("no topic has examples to train on (give a topic `training:` "
                             "files, `examples` or `counterexamples`)")
    for topic_id in wanted:
        _, skipped = examples(config, topic_id)
        if skipped and not args.allow_missing:
            raise NewswatchError(f"topic {topic_id!r}: training file {skipped[0]}: fix "
                                 "`training:` or pass --allow-missing")
    feedback: dict[str, list[Any]] = {t: [] for t in wanted}
    streams: dict[str, Any] = {}
    embedder = shared()
    if args.feedback:
        from .. import feedback as readers
        from ..runner import services

        with services(config) as rt:
            feedback = {t: readers.examples(rt.store, t) for t in wanted}
            latest = Latest(rt.store, embedder)
            streams = {t: stream_beside(latest, config, t, feedback[t]) for t in wanted}
    into = Path(args.into) if args.into else None
    outcomes = [train_topic(config, topic_id, embedder, feedback[topic_id], into=into,
                            stream=streams.get(topic_id)) for topic_id in wanted]
    if args.json:
        print(json.dumps({"topics": [as_json(o) for o in outcomes]}, ensure_ascii=False))
    else:
        for outcome in outcomes:
            print("\n".join(report(outcome)))
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from .. import feedback
    from ..runner import services

    config = load_config(args.config)
    for topic_id in args.topic or ():
        _topic(config, topic_id)
    if args.alert == "list":
        with services(config) as rt:
            rows = feedback.listing(rt.store, args.topic or list(config.topics))
        for row in rows:
            if args.json:
                print(json.dumps(row, ensure_ascii=False))
            else:
                what = "maybe line" if row.get("maybe") else "alert"
                print(f"{feedback.when(row['at'])}  {row['topic']}  "
                      f"{row['verdict'].replace('_', ' ')}  ({row['via']}, {what} "
                      f"{row['alert']}, {row['subscriber']})\n    {row['title']}")
        if not rows and not args.json:
            print("no feedback yet")
        return 0
    if args.verdict is None:
        raise NewswatchError("feedback ALERT needs --relevant or --not-relevant")
    with services(config) as rt:
        topics = args.topic or list(feedback.judged(rt.store, args.alert).topics)
        if len(topics) > 1 and not args.topic:
            raise NewswatchError(f"alert {args.alert!r} matched {', '.join(topics)}: say "
                                 "which with --topic")
        for topic_id in topics:
            outcome = feedback.record(rt.store, config, feedback.Claim(
                args.alert, topic_id, args.verdict, 0), via="cli")
            print(f"{topic_id}: {args.verdict.replace('_', ' ')}: {outcome.status} "
                  f"({outcome.title})")
    return 0


def _topic(config: Config, topic_id: str) -> Any:
    if topic_id not in config.topics:
        known = ", ".join(sorted(config.topics))
        raise NewswatchError(f"unknown topic {topic_id!r} (known: {known})")
    return config.topics[topic_id]


def story_entry(n: int, item: Item) -> Entry:
    """An input item as the worker would have taken it in: its text as the parser reads it,
    its canonical URL, its date, its language detected."""
    from ..models import Entry, parse_iso
    from ..parse import canonical_url

    title, summary = _item_text(item)
    try:
        published = parse_iso(item.published) if item.published else None
    except ValueError:
        published = None
    link = canonical_url(item.link) if item.link else None
    return Entry("offline", str(n), title, summary, link, published, item.source or "",
                 _item_lang(item, title, summary))


def _stories(args: argparse.Namespace) -> int:
    from ..runtime import make_classifier
    from ..stories import Vocabulary, cluster, embedder_of

    config = load_config(args.config)
    semantic = config.settings.semantic if args.semantic is None else args.semantic
    rows: list[tuple[str | int, Entry] | str] = []
    for n, item in progress(_items(args.file), desc="read"):
        rows.append(item if isinstance(item, str) else (item.id, story_entry(n, item)))
    good = [(str(r[0]), r[1]) for r in rows if not isinstance(r, str)]
    vocabulary = Vocabulary(*make_classifier(config, semantic=False).vocabulary)
    placed = iter(cluster(good, window_hours=config.settings.story_window_hours,
                          embed=embedder_of() if semantic else None, vocabulary=vocabulary))
    failures = 0
    for row in rows:
        if isinstance(row, str):
            failures += 1
            print(row, file=sys.stderr)
            print(json.dumps({"id": None, "story": None, "error": row}))
        else:
            got = next(placed)
            print(json.dumps({"id": row[0], "story": got.story, "thread": got.thread,
                              "related_to": got.related_to}, ensure_ascii=False))
    return 1 if failures else 0
