"""Logging for people (text lines) or for machines (one JSON object per line).

Every record about a feed or an alert names it in its message and carries it as fields (`feed`,
`url`, `alert`, `subscriber`, `channel`, ...) through `extra=`: the JSON lines keep them as keys,
so a log pipeline can filter on one feed or one alert without parsing sentences.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import IO, Any, Literal

Format = Literal["text", "json"]
FORMATS: tuple[Format, ...] = ("text", "json")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def resolve_format(explicit: str | None = None, configured: str | None = None) -> Format:
    """The flag wins, then NEWSWATCH_LOG_FORMAT, then the config's settings.log_format."""
    value = (explicit or os.environ.get("NEWSWATCH_LOG_FORMAT") or configured or "text").lower()
    return "json" if value == "json" else "text"


def configure(level: str | int = "WARNING", fmt: Format = "text",
              stream: IO[str] | None = None) -> None:
    """One handler on the root logger, replacing any earlier one (safe to call again)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO, Celery every task it receives and finishes (beat's
    # run every second): that drowns what matters (our own lines: a poll batch that found
    # something, an alert sent). Their lines come back with DEBUG.
    quiet = logging.getLevelName(level) != "DEBUG" and level != logging.DEBUG
    for chatty in CHATTY:
        logging.getLogger(chatty).setLevel(logging.WARNING if quiet else logging.NOTSET)


CHATTY = ("httpx", "httpcore", "celery", "kombu", "amqp")


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    formatter: logging.Formatter = JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time", json_ensure_ascii=False)
    return formatter


def feed_fields(feed_id: str, url: str, **more: Any) -> dict[str, Any]:
    return {"feed": feed_id, "url": url, **more}


def alert_fields(alert_id: str, subscriber: str, channel: str, **more: Any) -> dict[str, Any]:
    return {"alert": alert_id, "subscriber": subscriber, "channel": channel, **more}
