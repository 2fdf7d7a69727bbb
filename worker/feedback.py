"""Readers' feedback: "relevant" / "not relevant" links in every alert, and what they record.

A link is a signed token: the alert, the topic, the verdict and when the link stops working,
under an HMAC-SHA256 of `settings.feedback_secret` (no login, nothing to look up before the
signature holds). Opening a link shows a page with one button: mail scanners and chat
previews open links on their own, so the verdict is recorded by the button's POST, never by
a GET. Each link records once: a replay (the same link again) changes nothing and says so;
the other link of the pair still can (a reader may change their mind).

Feedback is per topic and story, not per subscriber: every reader of a topic teaches the same
topic, and the last verdict on a story stands. It is kept with the alerted entry's text (the
entry itself ages out of Redis), for `newswatch train`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from .classify.learned import Example
from .errors import NewswatchError
from .models import Entry

if TYPE_CHECKING:
    from aiohttp import web

    from .config import Config, Settings
    from .models import Alert
    from .store import Store

Verdict = Literal["relevant", "not_relevant"]
VERDICTS: tuple[Verdict, ...] = ("relevant", "not_relevant")
MAX_TOKEN = 600            # characters: longer is not one of ours, refused before any work
SIGNATURE_BYTES = 16       # 128-bit tag, truncated HMAC-SHA256 (RFC 2104 §5 allows it)


class FeedbackError(NewswatchError):
    """A link that records nothing: forged, expired, malformed, or for an unknown alert."""


@dataclass(frozen=True)
class Claim:
    alert_id: str
    topic_id: str
    verdict: Verdict
    expires: int             # unix seconds


@dataclass(frozen=True)
class Outcome:
    """What a feedback did: recorded (first verdict on this story), changed (the opposite of
    the last one), unchanged (the same verdict again, by a new link), replayed (this link was
    used before: nothing changed)."""

    status: Literal["recorded", "changed", "unchanged", "replayed"]
    claim: Claim
    title: str
    topic_name: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return _b64(digest[:SIGNATURE_BYTES])


def make_token(secret: str, claim: Claim) -> str:
    payload = _b64(json.dumps([1, claim.alert_id, claim.topic_id, claim.verdict,
                               claim.expires], separators=(",", ":")).encode())
    return f"{payload}.{_sign(secret, payload)}"


def read_token(secret: str, token: str, now: float | None = None) -> Claim:
    """The claim of a token this secret signed and that has not expired; FeedbackError
    otherwise (the signature is checked before anything in the token is read)."""
    if len(token) > MAX_TOKEN or token.count(".") != 1 or not token.isascii():
        raise FeedbackError("not a feedback link")
    payload, signature = token.split(".")
    if not hmac.compare_digest(_sign(secret, payload).encode(), signature.encode()):
        raise FeedbackError("this link was not made by this newswatch (bad signature)")
    try:
        version, alert_id, topic_id, verdict, expires = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        raise FeedbackError("not a feedback link") from None
    if version != 1 or verdict not in VERDICTS or not isinstance(expires, int):
        raise FeedbackError("not a feedback link")
    if (time.time() if now is None else now) > expires:
        raise FeedbackError("this link has expired")
    return Claim(str(alert_id), str(topic_id), verdict, expires)


def token_key(token: str) -> str:
    """A used token, as the store remembers it (its hash: the token itself grants a vote)."""
    return hashlib.sha256(token.encode()).hexdigest()[:32]


def links(settings: Settings, alert: Alert) -> dict[str, dict[str, str]] | None:
    """{topic id: {"relevant": URL, "not_relevant": URL}} for an alert, when feedback links
    are configured. The same alert always gets the same links (they expire `feedback_days`
    after it was detected), so a retried delivery carries the same body."""
    return record_links(settings, alert.id, [m.topic_id for m in alert.matches],
                        alert.detected_at)


def record_links(settings: Settings, record_id: str, topic_ids: Iterable[str], at: datetime
                 ) -> dict[str, dict[str, str]] | None:
    """The links of an alert or a digest's "maybe" line shown `at` (they work for
    `feedback_days` from then), per topic."""
    if not settings.feedback_links:
        return None
    assert settings.feedback_secret is not None
    secret, base = settings.feedback_secret, f"{settings.public_url}/feedback/"
    expires = int(at.timestamp()) + settings.feedback_days * 86400
    return {t: {v: base + make_token(secret, Claim(record_id, t, v, expires)) for v in VERDICTS}
            for t in topic_ids}


@dataclass(frozen=True)
class Judged:
    """What a verdict is on: an alert's entry, or that of a digest's "maybe" line (an item
    the topic did not alert; its own story, for verdicts, is its entry)."""

    entry: Entry
    story: str
    subscriber: str
    topics: tuple[str, ...]        # the topics it was shown for
    maybe: bool = False


def judged(store: Store, record_id: str) -> Judged:
    found = store.records.load_alert(record_id)
    if found is not None:
        alert = found.alert
        return Judged(alert.entry, alert.story_id, alert.subscriber_id,
                      tuple(m.topic_id for m in alert.matches))
    line = store.maybes.line(record_id)
    if line is not None:
        return Judged(Entry.from_dict(line["entry"]), line["story"], line["subscriber"],
                      (line["topic"],), True)
    raise FeedbackError(f"alert {record_id!r} is not known (or has aged out): nothing recorded")


def record(store: Store, config: Config, claim: Claim, *, via: str,
           token: str | None = None) -> Outcome:
    """Record a verdict on the alert's story for the topic, with the alerted entry's text.
    With a token, only once per token (a replay is reported, and changes nothing)."""
    on = judged(store, claim.alert_id)
    if claim.topic_id not in config.topics:
        known = ", ".join(sorted(config.topics))
        raise FeedbackError(f"unknown topic {claim.topic_id!r} (known: {known})")
    e = on.entry
    data = {"verdict": claim.verdict, "title": e.title, "summary": e.summary, "lang": e.lang,
            "story": on.story, "alert": claim.alert_id, "subscriber": on.subscriber,
            "at": round(time.time(), 3), "via": via}
    if on.maybe:
        data["maybe"] = True
    ttl = max(60, claim.expires - int(time.time()) + 86400)
    fresh, before = store.verdicts.record(claim.topic_id, on.story, data,
                                          token_key(token) if token else None, ttl)
    if not fresh:
        status: Literal["recorded", "changed", "unchanged", "replayed"] = "replayed"
    elif before is None:
        status = "recorded"
    else:
        status = "unchanged" if before == claim.verdict else "changed"
    return Outcome(status, claim, e.title, config.topics[claim.topic_id].name)


def examples(store: Store, topic_id: str) -> list[Example]:
    """A topic's feedback as training examples (one per story, its last verdict)."""
    return [Example(r["title"], r.get("summary") or "", r["verdict"] == "relevant",
                    f"story-{r['story']}", "feedback", r.get("lang"))
            for r in store.verdicts.of(topic_id)]


def listing(store: Store, topics: Iterable[str]) -> list[dict[str, Any]]:
    """Every feedback of these topics, newest first."""
    rows = [{"topic": t, **r} for t in topics for r in store.verdicts.of(t)]
    return sorted(rows, key=lambda r: -float(r.get("at", 0)))


# -- the page a link opens -------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>newswatch: {heading}</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 34rem; margin: 3rem auto;
        padding: 0 1rem; color: #1f2328; }}
h1 {{ font-size: 1.25rem; }}
.story {{ padding: .75rem 1rem; border-left: 4px solid #8c959f; background: #f6f8fa; }}
button {{ font: inherit; padding: .5rem 1.25rem; border-radius: 6px; border: 1px solid #1f883d;
          background: #1f883d; color: #fff; cursor: pointer; }}
.note {{ color: #59636e; font-size: .9rem; }}
</style></head>
<body><main>
<h1 id="heading">{heading}</h1>
{body}
</main></body></html>
"""


def page(heading: str, body: str, status: int = 200) -> web.Response:
    from aiohttp import web

    return web.Response(status=status, content_type="text/html", charset="utf-8",
                        text=_PAGE.format(heading=html.escape(heading), body=body),
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                                 "X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": "default-src 'none'; "
                                 "style-src 'unsafe-inline'; form-action 'self'"})


def _label(verdict: str) -> str:
    return "relevant" if verdict == "relevant" else "not relevant"


def add_routes(app: web.Application, store: Store, config: Config) -> None:
    """GET /feedback/{token}: the question, with one button; POST: record it."""
    import asyncio

    settings = config.settings
    if not settings.feedback_links:
        return
    assert settings.feedback_secret is not None
    secret = settings.feedback_secret

    def story_line(claim: Claim) -> str:
        e = judged(store, claim.alert_id).entry
        lang = html.escape(e.lang or "", quote=True)
        return f'<p class="story" dir="auto" lang="{lang}">{html.escape(e.title)}</p>'

    async def ask(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            claim = read_token(secret, token)
            story = await asyncio.to_thread(story_line, claim)
        except FeedbackError as exc:
            return page("This link records nothing", f"<p>{html.escape(str(exc))}.</p>", 400)
        topic = config.topics.get(claim.topic_id)
        plain = topic.name if topic else claim.topic_id
        name = html.escape(plain)
        return page(f"Mark as {_label(claim.verdict)} for {plain}?",
                    f"{story}<p>Tell newswatch this story is <strong>{_label(claim.verdict)}"
                    f"</strong> to the topic <strong>{name}</strong>. The topic learns from "
                    "what its readers say.</p>"
                    '<form method="post"><button type="submit">Confirm</button></form>'
                    '<p class="note">Nothing is recorded until you confirm.</p>')

    async def confirm(request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            claim = read_token(secret, token)
            outcome = await asyncio.to_thread(record, store, config, claim, via="link",
                                              token=token)
        except FeedbackError as exc:
            return page("This link records nothing", f"<p>{html.escape(str(exc))}.</p>", 400)
        said = {"recorded": "Thank you: recorded.",
                "changed": "Thank you: your verdict replaces the earlier one.",
                "unchanged": "Thank you: that is what this topic had already been told.",
                "replayed": "This link was already used: nothing changed."}[outcome.status]
        return page(said, f'<p class="story" dir="auto">{html.escape(outcome.title)}</p>'
                          f"<p>{_label(claim.verdict).capitalize()} to "
                          f"<strong>{html.escape(outcome.topic_name)}</strong>.</p>")

    app.router.add_get("/feedback/{token}", ask)
    app.router.add_post("/feedback/{token}", confirm)


def when(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().strftime("%Y-%m-%d %H:%M")
