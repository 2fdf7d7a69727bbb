"""CLI contracts of DESIGN.md: classify and stories JSONL, explain, exit codes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, shared_dir
from worker.classify import semantic
from worker.cli import main

CONFIG = str(ROOT / "config" / "newswatch.yaml")


def run_cli(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_classify_jsonl_contract() -> None:
    lines = [
        {"id": "a", "title": "Hamas says indirect talks with Israel resume in Doha",
         "summary": "A one-week ceasefire to locate hostages who could be released."},
        {"id": 7, "title": "Weather", "summary": "Sunny."},
        {"id": "c", "title": "Truce talks resume in Cairo",
         "content": "<p>Negotiators <b>met</b> Hamas and Israeli envoys</p>",
         "link": "https://x.example", "published": "2025-01-04", "source": "X", "extra": 1},
    ]
    out = run_cli(["classify", "--config", CONFIG],
                  "\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", 7, "c"]
    assert rows[0]["topics"] == ["ceasefire-talks", "hostage-releases"]
    assert rows[1] == {"id": 7, "lang": "en", "topics": [], "matches": []}
    assert rows[0]["lang"] == "en"
    assert rows[2]["topics"] == ["ceasefire-talks"]
    match = rows[0]["matches"][1]
    assert {"topic", "score", "evidence"} <= set(match) and match["topic"] == "hostage-releases"
    assert "hostage* = hostages" in match["clauses"]
    if semantic.available():            # the shipped topics are decided by their models
        assert match["score"] == match["model"] and 0.5 < match["model"] <= 1
        assert match["clauses"][-1].startswith("model ")
        assert len(match["like"]) == 2 and {x["label"] for x in match["like"]} <= {
            "relevant", "not relevant"}
    else:
        assert "model" not in match and "semantic" not in match
    assert any("*hostages*" in e for e in match["evidence"])


def test_classify_reports_bad_lines_and_goes_on() -> None:
    out = run_cli(["classify", "--config", CONFIG], '{"title": "no id"}\nnot json\n'
                  '{"id": "ok", "title": "truce talks"}\n')
    assert out.returncode == 1
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert len(rows) == 3 and rows[2]["topics"] == ["ceasefire-talks"]
    assert rows[0]["error"].startswith("-:1: id:")
    assert "-:2:" in out.stderr


@pytest.mark.parametrize("command", ["classify", "stories"])
def test_a_bad_line_costs_only_itself(command: str) -> None:
    """A line that is not UTF-8, or longer than the cap, gets an error line; the lines
    before and after it get their results, in order."""
    good = b'{"id": "a", "title": "truce talks resume", "published": "2025-01-04"}\n'
    huge = b'{"id": "h", "title": "' + b"x" * (2 << 20) + b'"}\n'
    stdin = good + b'{"id": "b", "title": "\xff\xfe truce"}\n' + huge + \
        good.replace(b'"a"', b'"c"')
    out = subprocess.run([sys.executable, "-m", "worker.cli", command, "--config", CONFIG],
                         input=stdin, capture_output=True, timeout=60, cwd=ROOT)
    rows = [json.loads(x) for x in out.stdout.splitlines()]
    assert out.returncode == 1 and [r["id"] for r in rows] == ["a", None, None, "c"]
    assert rows[1]["error"].startswith("-:2: line: not UTF-8")
    assert rows[2]["error"] == "-:3: line: longer than 1,048,576 bytes, skipped"


def test_classify_is_deterministic() -> None:
    eval_file = shared_dir("eval") / "dev.jsonl"
    first = run_cli(["classify", "--config", CONFIG, str(eval_file)], "")
    second = run_cli(["classify", "--config", CONFIG, str(eval_file)], "")
    assert first.returncode == 0 and first.stdout == second.stdout
    assert len(first.stdout.splitlines()) == len(eval_file.read_text().splitlines())


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explain", "--config", CONFIG, "--topic", "hostage-releases",
                 "Four hostages freed in exchange for prisoners"])
    out = capsys.readouterr().out
    assert code == 0
    assert "✓ hostage*  found: hostages" in out
    assert "✗ captiv*  not in the text" in out
    assert "=> MATCHES" in out and "*hostages*" in out
    code = main(["explain", "--config", CONFIG, "--topic", "ceasefire-talks",
                 "Derby ends in goalless truce; talks of a signing"])
    assert code == 1 and "=> excluded" in capsys.readouterr().out
    code = main(["explain", "--config", CONFIG, "--topic", "ceasefire-talks",
                 "Talks with the rebel group resumed"])
    out = capsys.readouterr().out
    assert code == 0
    assert "✓ both within 8 words of each other:" in out and "found: rebel" in out
    assert "✗ ANY of: ceasefire, truce, armistice" in out      # failed lists on one line
    assert main(["explain", "--config", CONFIG, "--topic", "nope", "x"]) == 1
    assert "unknown topic 'nope'" in capsys.readouterr().err


def test_explain_reads_the_summary_as_classify_does(capsys: pytest.CaptureFixture[str]) -> None:
    """`summary:` clauses hold in explain as in classify (explain read every word as title)."""
    item = {"id": "x", "title": "Hostages freed", "summary": "A truce deal was signed."}
    rows = json.loads(run_cli(["classify", "--config", CONFIG], json.dumps(item)).stdout)
    code = main(["explain", "--config", CONFIG, "--topic", "ceasefire-talks", "--item",
                 json.dumps(item)])
    capsys.readouterr()
    assert ("ceasefire-talks" in rows["topics"]) == (code == 0)
    code = main(["explain", "--config", CONFIG, "--topic", "hostage-releases",
                 "Hostages freed", "--summary", "A truce deal was signed."])
    assert code == 0 and "=> MATCHES" in capsys.readouterr().out
    assert main(["explain", "--config", CONFIG, "--topic", "hostage-releases"]) == 1
    assert "needs a TEXT" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["dev.jsonl", "dev2.jsonl", "dev_ml.jsonl"])
def test_explain_and_classify_always_agree(name: str) -> None:
    """Property over every labelled item and topic: explain's verdict is classify's."""
    from worker.classify.explain import explain_topic
    from worker.commands.topics import Item, _item_text
    from worker.config import load_config
    from worker.runtime import make_classifier

    config = load_config(CONFIG)
    classifier = make_classifier(config, semantic=False)
    lines = (shared_dir("eval") / name).read_text().splitlines()
    items = [_item_text(Item.model_validate_json(line)) for line in lines if line.strip()]
    found = classifier.classify_many(items)
    for (title, summary), matches in zip(items, found, strict=True):
        for topic_id in config.topics:
            explanation = explain_topic(classifier, topic_id, title, summary)
            assert explanation.matched == any(m.topic_id == topic_id for m in matches)
            assert explanation.lines[-1 - len(explanation.match.evidence if explanation.match
                                              else ())].startswith("=> ")


def test_stories_contract(tmp_path: Path) -> None:
    items = [
        {"id": "1", "title": "Hamas says indirect talks with Israel resume in Qatari capital",
         "link": "https://a.example/x?utm_source=rss", "published": "2025-01-04T14:00:00Z"},
        {"id": "2", "title": "Hamas: indirect talks with Israel resume in Qatari capital Doha",
         "link": "https://b.example/y", "published": "2025-01-04T15:00:00Z"},
        {"id": "3", "title": "Unrelated earthquake", "link": "https://A.example/x#top",
         "published": "2025-01-04T16:00:00Z"},
        {"id": "4", "title": "Hamas says indirect talks with Israel resume in Qatari capital",
         "link": "https://c.example/z", "published": "2025-03-01T10:00:00Z"},
    ]
    modes = [["--no-semantic"]]
    if importlib.util.find_spec("onnxruntime"):
        modes.append(["--semantic"])            # the model's evidence, same contract
    for mode in modes:
        out = run_cli(["stories", "--config", CONFIG, *mode],
                      "\n".join(json.dumps(i) for i in items))
        assert out.returncode == 0, out.stderr
        rows = [json.loads(x) for x in out.stdout.splitlines()]
        assert [r["id"] for r in rows] == ["1", "2", "3", "4"]
        stories = [r["story"] for r in rows]
        assert stories[0] == stories[1] == stories[2]     # rewrite; same canonical URL
        assert stories[3] != stories[0]                   # same words, two months later


def test_progress_on_a_terminal_only(tmp_path: Path) -> None:
    """Long CLI work draws a bar on a terminal's stderr and stays quiet when piped."""
    import fcntl
    import pty
    import struct
    import termios

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": i, "title": f"Truce talks resume, day {i}"})
                             + "\n" for i in range(3000)))
    # Lexical: the model would embed 6,000 texts here, a minute of a slow CPU per run, and
    # the bar is the same whatever the work.
    args = [sys.executable, "-m", "worker.cli", "classify", "--config", CONFIG, "--no-semantic",
            str(items)]
    piped = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""
    assert len(piped.stdout.splitlines()) == 3000
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with open(tmp_path / "out.jsonl", "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=follower)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:                      # EIO: the terminal closed with the process
            break
        seen += chunk
    assert proc.wait(120) == 0
    os.close(leader)
    assert b"classify" in seen and b"item" in seen      # tqdm's bar: "classify: 3000item ..."
