"""Commands about what runs: feeds status, import and export, backtest, dead letters."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import load_config
from ..errors import NewswatchError
from ..progress import progress
from .topics import _topic

if TYPE_CHECKING:
    from ..store import WebSubState


def _feeds(args: argparse.Namespace) -> int:
    from ..runner import services

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
    from ..feedlist import describe, import_opml

    config = load_config(args.config)
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise NewswatchError(f"{args.file}: cannot read: {exc.strerror or exc}") from None
    result = import_opml(config, data, args.file)
    print("\n".join(describe(result)))
    return 0


def _feeds_export(args: argparse.Namespace) -> int:
    from ..feedlist import export_opml

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
    from ..backtest import parse_since, report, run_backtest
    from ..runner import services
    from ..runtime import make_classifier

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
    from ..runner import services

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

