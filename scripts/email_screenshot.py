"""Render the seed story's alert email and take its picture in headless Chromium.

    python scripts/email_screenshot.py [--out docs/email.png] [--html FILE]

The alert is built the way the worker builds it: the seed feeds parsed, the shipped topics
matched, the second outlet's copy listed under "also reported by". Needs Debian's `chromium`
(or CHROMIUM=/path/to/chrome); it runs with no network and a throwaway profile.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.config import load_config  # noqa: E402
from worker.deliver import render  # noqa: E402
from worker.models import Alert  # noqa: E402
from worker.parse import parse_feed  # noqa: E402
from worker.runtime import make_classifier  # noqa: E402

SEED = "Hamas says indirect talks with Israel resumes in Qatari capital"


def seed_email_html() -> str:
    config = load_config(ROOT / "config" / "newswatch.yaml")
    levant = parse_feed((ROOT / "seeds" / "levant-wire.xml").read_bytes(), url="seed",
                        feed_id="levant", feed_name="Levant Wire")
    gulf = parse_feed((ROOT / "seeds" / "gulf-daily.atom").read_bytes(), url="seed",
                      feed_id="gulf", feed_name="Gulf Daily Monitor")
    entry = next(e for e in levant if e.title == SEED)
    copy = next(e for e in gulf if "Doha" in e.title)
    matches = make_classifier(config).classify(entry.title, entry.summary)
    alert = Alert("a3f1c2d4e5f60718293a4b5c", "desk", "s-doha", entry, tuple(matches),
                  datetime(2025, 1, 4, 14, 6, tzinfo=UTC))
    body = render.webhook_body(alert, "https://levantwire.example/rss", [entry, copy])
    msg = render.email_message(body, to="desk@example.org", from_address="alerts@example.org")
    html = msg.get_body(("html",))
    assert html is not None
    return str(html.get_content())


def screenshot(html: str, out: Path, width: int = 720, height: int = 900) -> None:
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        raise SystemExit("no Chromium: apt-get install chromium (or set CHROMIUM)")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "email.html"
        page.write_text(html, encoding="utf-8")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                        f"--user-data-dir={tmp}/profile", f"--window-size={width},{height}",
                        f"--screenshot={out.resolve()}", page.as_uri()],
                       check=True, capture_output=True, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "email.png")
    parser.add_argument("--html", type=Path, help="also write the HTML here")
    args = parser.parse_args()
    html = seed_email_html()
    if args.html:
        args.html.write_text(html, encoding="utf-8")
    screenshot(html, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
