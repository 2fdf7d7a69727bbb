"""Chat delivery through Apprise (Slack, Telegram, Discord, ntfy, Matrix, ... by URL).

Apprise says only whether a notification went out; the HTTP status, when there was one, is in
its log entries for this call (`error=NNN`). A 4xx other than 408/425/429 will not change on a
retry and is dead-lettered at once, like a webhook's; anything else is retried with the same
backoff. Apprise is an optional extra: `pip install 'newswatch[apprise]'`.
"""

from __future__ import annotations

import re
from typing import Any

from ..bodies import Body
from ..errors import DeliveryError
from .attempt import redact
from .chat import chat_message
from .retry import RETRYABLE_STATUS

_STATUS = re.compile(r"\berror=(\d{3})\b")


def load() -> Any:
    try:
        import apprise
    except ImportError:
        return None
    return apprise


def url_problem(url: str) -> str | None:
    """Why Apprise cannot use this URL (or is missing), else None."""
    apprise = load()
    if apprise is None:
        return "apprise subscribers need the extra: pip install 'newswatch[apprise]'"
    if not apprise.Apprise().add(url):
        return "not a notification URL that Apprise knows (see its wiki for the schemes)"
    return None


def in_thread(notifier: Any, body: Body) -> None:
    """Post an alert into its story's thread where the service threads by a key the sender
    chooses (Google Chat's thread key: the thread's story id), unless the URL names its own.
    Services that thread only under a message id Apprise does not return (Slack, Discord,
    Matrix) get the "Related to" line of the text instead."""
    thread = body.get("thread") if body["type"] == "alert" else None
    for service in notifier:
        if thread and hasattr(service, "thread_key") and not service.thread_key:
            service.thread_key = thread


def send_apprise(url: str, body: Body, *, timeout: float, deadline: float) -> None:
    """Notify through Apprise: `timeout` per network step, `deadline` for the whole call. The
    caller's netguard scope checks every connection Apprise opens, for any scheme and every
    redirect (its worker threads carry the caller's context)."""
    apprise = load()
    if apprise is None:
        raise DeliveryError(redact(url), url_problem(url) or "apprise missing",
                            retryable=False)
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise DeliveryError(redact(url), "not a notification URL that Apprise knows",
                            retryable=False)
    for service in notifier:
        service.socket_connect_timeout = service.socket_read_timeout = timeout
    in_thread(notifier, body)
    title, text = chat_message(body)
    result = notifier.notify(body=text, title=title, body_format=apprise.NotifyFormat.MARKDOWN,
                             timeout=deadline)
    if result:
        return
    messages = [entry.message for entry in result.logs()] if hasattr(result, "logs") else []
    codes = [int(m.group(1)) for m in map(_STATUS.search, messages) if m]
    status = codes[-1] if codes else None
    reason = messages[-1] if messages else "Apprise reported a failure"
    retryable = status is None or status in RETRYABLE_STATUS
    raise DeliveryError(redact(url), reason, retryable=retryable)


