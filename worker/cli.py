"""The `newswatch` command: parses arguments, calls the core, prints. Nothing else."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from . import __version__, logs
from .config import Config, load_config
from .errors import ConfigError, NewswatchError
from .progress import progress

if TYPE_CHECKING:
    from .store import WebSubState

DESCRIPTION = """\
newswatch: watch news feeds for the topics you describe, and alert each subscriber once per
story (webhook, email, chat or files).

Start with `newswatch check` (is the config valid?) and `newswatch run --once` (poll every
feed once, deliver, print what happened); `newswatch run` keeps polling until Ctrl-C."""
EPILOG = """\
The config is --config PATH, else $NEWSWATCH_CONFIG, else config/newswatch.yaml.
`newswatch COMMAND --help` describes one command. Documentation: README.md."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.log_format:               # seen by Celery's logging setup in this process too
        os.environ["NEWSWATCH_LOG_FORMAT"] = args.log_format
    logs.configure(args.log_level, logs.resolve_format(args.log_format))
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2
    except NewswatchError as exc:
        print(f"newswatch: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from .store import UNAVAILABLE

        if not isinstance(exc, UNAVAILABLE):
            raise
        print(f"newswatch: lost Redis: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="newswatch", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"newswatch {__version__}")
    p.add_argument("--log-level", default="WARNING", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-format", choices=logs.FORMATS, default=None,
                   help="text (default) or json: one object per line, with the feed or "
                        "alert as fields (also NEWSWATCH_LOG_FORMAT or settings.log_format)")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, func: Any, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_, description=help_)
        c.add_argument("--config", help="config file (default: $NEWSWATCH_CONFIG or "
                                        "config/newswatch.yaml)")
        c.set_defaults(func=func)
        return c

    run = command("run", _run, "poll, classify and deliver (embedded Redis if none configured)")
    run.add_argument("--once", action="store_true",
                     help="poll every feed once, deliver, print a summary, exit")
    run.add_argument("--timeout", type=float, default=300.0,
                     help="with --once: longest wait for deliveries, in seconds")
    run.add_argument("--concurrency", type=int, default=4)
    command("serve", _serve, "the HTTP endpoints alone (settings.listen): WebSub callbacks "
                             "and readers' feedback links; workers run apart")
    command("check", _check, "validate the config; every problem as FILE:LINE: path: message")
    classify = command("classify", _classify, "JSONL items in, topic matches out")
    classify.add_argument("file", nargs="?", default="-")
    _semantic_flag(classify)
    explain = command("explain", _explain, "why a text matches a topic or not, clause by "
                                           "clause (the same verdict as classify)")
    explain.add_argument("--topic", required=True)
    explain.add_argument("text", nargs="*", metavar="TEXT", help="the title")
    explain.add_argument("--summary", default=None, help="the summary (or the item's text)")
    explain.add_argument("--item", default=None, metavar="JSON",
                         help="one classify input line: {\"id\", \"title\", \"summary\", "
                              "\"content\", ...}")
    _semantic_flag(explain)
    train = command("train", _train, "fit topics' models on their labelled examples and "
                                     "readers' feedback; print cross-validated P / R / F1")
    train.add_argument("--topic", action="append", metavar="ID",
                       help="only this topic (repeatable; default every topic that has "
                            "examples)")
    train.add_argument("--json", action="store_true", help="one JSON object")
    train.add_argument("--into", metavar="DIR", default=None,
                       help="write each model to DIR/<topic>.json instead of the data folder "
                            "(for a config's `model:` file, e.g. the shipped config/models)")
    train.add_argument("--no-feedback", dest="feedback", action="store_false",
                       help="leave readers' feedback out (it is read from Redis)")
    train.add_argument("--allow-missing", action="store_true",
                       help="train even when some `training:` file cannot be read (the "
                            "model then learns from less than its config says)")
    fb = command("feedback", _feedback, "say whether an alert was relevant to a topic (as "
                                        "the links in alerts do), or list what was said")
    fb.add_argument("alert", metavar="ALERT|list", help="an alert id, or `list`")
    fb.add_argument("--topic", action="append", metavar="ID",
                    help="the topic (with an alert: required unless it matched one; with "
                         "list: only these)")
    verdict = fb.add_mutually_exclusive_group()
    verdict.add_argument("--relevant", dest="verdict", action="store_const", const="relevant")
    verdict.add_argument("--not-relevant", dest="verdict", action="store_const",
                         const="not_relevant")
    fb.add_argument("--json", action="store_true", help="with list: one JSON object a line")
    stories = command("stories", _stories, "offline story clustering: JSONL in, {id, story} out")
    stories.add_argument("file", nargs="?", default="-")
    _semantic_flag(stories)
    feeds = sub.add_parser("feeds", help="feed health, OPML import and export",
                           description="feed health, OPML import and export")
    feeds_sub = feeds.add_subparsers(required=True, metavar="ACTION")
    for name, func, help_ in (
            ("status", _feeds, "table: last poll, outcome, error streak, next poll, interval"),
            ("import", _feeds_import, "add the feeds of an OPML file (categories kept)"),
            ("export", _feeds_export, "every configured feed as OPML 2.0")):
        action = feeds_sub.add_parser(name, help=help_, description=help_)
        action.add_argument("--config", help="config file (default: $NEWSWATCH_CONFIG or "
                                             "config/newswatch.yaml)")
        action.set_defaults(func=func)
        if name == "import":
            action.add_argument("file", metavar="FILE.opml")
        if name == "export":
            action.add_argument("-o", "--output", default="-", help="file (default: stdout)")
    back = command("backtest", _backtest, "replay recent entries against the current topics; "
                                          "per topic: would-be matches, latest examples")
    back.add_argument("--since", default="7d", help="7d, 12h, 30m, 2w or an ISO date "
                                                    "(default 7d)")
    back.add_argument("--topic", action="append", metavar="ID",
                      help="only this topic (repeatable; default every topic)")
    back.add_argument("--examples", type=int, default=3, help="examples per topic (default 3)")
    back.add_argument("--json", action="store_true", help="one JSON object")
    _semantic_flag(back)
    dead = command("dead-letters", _dead_letters, "alerts that could not be delivered")
    dead.add_argument("action", choices=["list", "retry"])
    dead.add_argument("ids", nargs="*", metavar="ID", help="with retry: the alerts to retry")
    dead.add_argument("--all", action="store_true", help="with retry: every dead letter")
    return p


def _semantic_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--semantic", action=argparse.BooleanOptionalAction, default=None,
                        help="the multilingual model on or off (default: settings.semantic, "
                             "which uses it when it is installed)")
    parser.add_argument("--models", action=argparse.BooleanOptionalAction, default=True,
                        help="with the model: topics decided by their trained models "
                             "(default), or --no-models: by query and similarity only")


def _run(args: argparse.Namespace) -> int:
    from . import runner

    config = load_config(args.config)
    logs.configure(args.log_level, logs.resolve_format(args.log_format,
                                                       config.settings.log_format))
    if not args.once:
        level = "INFO" if args.log_level == "WARNING" else args.log_level
        runner.run_forever(config, concurrency=args.concurrency, loglevel=level)
        return 0
    summary = runner.run_once(config, timeout=args.timeout, concurrency=args.concurrency)
    print(runner.format_summary(summary, config))
    return 0 if summary.ok else 1


def _serve(args: argparse.Namespace) -> int:
    from . import runner

    config = load_config(args.config)
    logs.configure("INFO" if args.log_level == "WARNING" else args.log_level,
                   logs.resolve_format(args.log_format, config.settings.log_format))
    runner.serve_forever(config)
    return 0


def _check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    empty = [f"{config.path}:1: {part}: none: {why}" for part, count, why in (
        ("feeds", len(config.feeds), "there is nothing to poll"),
        ("topics", len(config.topics), "nothing would ever match"),
        ("subscribers", len(config.subscribers), "matches would reach nobody"))
        if not count]
    from .classify import semantic
    from .training import model_notes

    problems, notes = model_notes(config, config.settings.semantic is not False
                                  and semantic.available())
    if empty or problems:
        raise ConfigError(empty + problems)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{config.path}: OK: {len(config.feeds)} feeds, {len(config.topics)} topics, "
          f"{len(config.subscribers)} subscribers")
    return 0


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
    from .parse import item_text

    return item_text(item.title, item.summary, item.content)


CLASSIFY_BATCH = 256


def _classify(args: argparse.Namespace) -> int:
    from itertools import islice

    from .runtime import make_classifier

    config = load_config(args.config)
    classifier = make_classifier(config, args.semantic, models=args.models)
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
    from .classify.language import detect

    return detect(title, summary, item.lang)


def _match_json(m: Any) -> dict[str, Any]:
    """A match as `classify` prints it: the webhook body's topic, keyed `topic`, no name."""
    body = m.to_dict()
    del body["name"]
    return {"topic": body.pop("id"), **body}


def _explain(args: argparse.Namespace) -> int:
    from .classify.explain import explain_topic
    from .runtime import make_classifier

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
    from .classify.semantic import shared
    from .training import as_json, examples, report, train_topic

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
    if args.feedback:
        from . import feedback as readers
        from .runner import services

        with services(config) as rt:
            feedback = {t: readers.examples(rt.store, t) for t in wanted}
    embedder = shared()
    into = Path(args.into) if args.into else None
    outcomes = [train_topic(config, topic_id, embedder, feedback[topic_id], into=into)
                for topic_id in wanted]
    if args.json:
        print(json.dumps({"topics": [as_json(o) for o in outcomes]}, ensure_ascii=False))
    else:
        for outcome in outcomes:
            print("\n".join(report(outcome)))
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from . import feedback
    from .runner import services

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
                print(f"{feedback.when(row['at'])}  {row['topic']}  "
                      f"{row['verdict'].replace('_', ' ')}  ({row['via']}, alert "
                      f"{row['alert']}, {row['subscriber']})\n    {row['title']}")
        if not rows and not args.json:
            print("no feedback yet")
        return 0
    if args.verdict is None:
        raise NewswatchError("feedback ALERT needs --relevant or --not-relevant")
    with services(config) as rt:
        found = rt.store.records.load_alert(args.alert)
        if found is None:
            raise NewswatchError(f"alert {args.alert!r} is not known (or has aged out)")
        topics = args.topic or [m.topic_id for m in found.alert.matches]
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


def _stories(args: argparse.Namespace) -> int:
    from .models import Entry, parse_iso
    from .parse import canonical_url
    from .runtime import make_classifier
    from .stories import Vocabulary, cluster, embedder_of

    config = load_config(args.config)
    semantic = config.settings.semantic if args.semantic is None else args.semantic
    rows: list[tuple[str | int, Entry] | str] = []
    for n, item in progress(_items(args.file), desc="read"):
        if isinstance(item, str):
            rows.append(item)
            continue
        title, summary = _item_text(item)
        try:
            published = parse_iso(item.published) if item.published else None
        except ValueError:
            published = None
        link = canonical_url(item.link) if item.link else None
        rows.append((item.id, Entry("offline", str(n), title, summary, link, published,
                                    item.source or "")))
    good = [(str(r[0]), r[1]) for r in rows if not isinstance(r, str)]
    vocabulary = Vocabulary(*make_classifier(config, semantic=False).vocabulary)
    ids = iter(cluster(good, window_hours=config.settings.story_window_hours,
                       embed=embedder_of() if semantic else None, vocabulary=vocabulary))
    failures = 0
    for row in rows:
        if isinstance(row, str):
            failures += 1
            print(row, file=sys.stderr)
            print(json.dumps({"id": None, "story": None, "error": row}))
        else:
            print(json.dumps({"id": row[0], "story": next(ids)}, ensure_ascii=False))
    return 1 if failures else 0


def _feeds(args: argparse.Namespace) -> int:
    from .runner import services

    config = load_config(args.config)
    with services(config) as rt:
        rows = [("FEED", "LAST POLL", "OUTCOME", "ERRORS", "NEXT POLL", "INTERVAL", "PUSH",
                 "NOTE")]
        ids = [feed.id for feed in config.feeds]
        states, next_polls = rt.store.feeds.states(ids), rt.store.feeds.next_polls_at(ids)
        for feed in config.feeds:
            state, next_at = states[feed.id], next_polls[feed.id]
            note = "gone (410): not polled" if state.gone else \
                f"moved to {state.url}" if state.url else (state.last_error or "")
            rows.append((feed.name[:30], _when(state.last_poll_at),
                         state.last_status or "never", str(state.error_count),
                         "-" if state.gone else _when(next_at),
                         f"{(state.interval or feed.interval) / 60:.0f} min",
                         _push(state.websub), note[:80]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _feeds_import(args: argparse.Namespace) -> int:
    from .feedlist import describe, import_opml

    config = load_config(args.config)
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise NewswatchError(f"{args.file}: cannot read: {exc.strerror or exc}") from None
    result = import_opml(config, data, args.file)
    print("\n".join(describe(result)))
    return 0


def _feeds_export(args: argparse.Namespace) -> int:
    from .feedlist import export_opml

    data = export_opml(load_config(args.config))
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(args.output, "wb") as out:
            out.write(data)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _push(ws: WebSubState) -> str:
    """A feed's WebSub state in a few characters: active (until), pending, denied, failed."""
    if ws.state == "active":
        return f"until {_when(ws.until)[:16]}" if ws.until > time.time() else "lapsed"
    return ws.state or "-"


def _when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment)) if moment else "-"


def _backtest(args: argparse.Namespace) -> int:
    from .backtest import parse_since, report, run_backtest
    from .runner import services
    from .runtime import make_classifier

    config = load_config(args.config)
    since = parse_since(args.since)
    wanted = args.topic or list(config.topics)
    for topic_id in wanted:
        _topic(config, topic_id)
    subset = replace(config, topics={t: config.topics[t] for t in wanted})
    classifier = make_classifier(subset, args.semantic)
    with services(config) as rt:
        result = run_backtest(rt.store, classifier, {t: config.topics[t].name for t in wanted},
                              since, examples=args.examples,
                              wrap=lambda it: progress(it, desc="backtest", unit="entry"))
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        print("\n".join(report(result)))
    return 0


def _dead_letters(args: argparse.Namespace) -> int:
    from .runner import services

    config = load_config(args.config)
    if args.action == "retry" and not args.ids and not args.all:
        print("newswatch: dead-letters retry needs alert IDs or --all", file=sys.stderr)
        return 2
    with services(config) as rt:
        dead = rt.store.records.dead()
        if args.action == "list":
            if not dead:
                print("no dead letters")
            for record_id in dead:
                letter = rt.store.records.dead_letter(record_id)
                if letter is None:
                    continue
                print(f"{record_id}  {letter.kind}  {letter.subscriber_id}  "
                      f"attempts={letter.attempts}  dead since {_when(letter.dead_since)}")
                print(f"    {letter.title}")
                print(f"    last error: {letter.last_error}")
            return 0
        wanted = dead if args.all else args.ids
        failures = 0
        for alert_id in wanted:
            if rt.store.records.revive(alert_id):
                print(f"{alert_id}: queued for delivery")
            else:
                failures += 1
                print(f"newswatch: {alert_id}: not a dead letter", file=sys.stderr)
        if wanted and failures < len(wanted):
            print("a running worker delivers them now (or the next `newswatch run`)")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
