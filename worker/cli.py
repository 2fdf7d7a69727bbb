"""The `newswatch` command: parses arguments, calls the core, prints. Nothing else."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from . import __version__, logs
from .commands.state import _backtest, _dead_letters, _feeds, _feeds_export, _feeds_import
from .commands.topics import (
    _classify,
    _explain,
    _feedback,
    _stories,
    _train,
)
from .config import load_config
from .errors import ConfigError, NewswatchError

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


if __name__ == "__main__":
    sys.exit(main())
