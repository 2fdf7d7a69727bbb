"""Alert -> webhook body and email message. Pure; feed text is escaped, never trusted."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate
from html import escape as html_escape
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from ..models import Alert, Entry, iso

MAX_SUBJECT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def also_reported(alert: Alert, others: Iterable[Entry]) -> list[Entry]:
    """The story's other copies (a syndicated copy under the same URL counts: another outlet
    carried it), excluding the alerted entry itself."""
    seen = {alert.entry.key}
    out = []
    for entry in others:
        if entry.key not in seen:
            seen.add(entry.key)
            out.append(entry)
    return out


def webhook_body(alert: Alert, feed_url: str, others: Iterable[Entry] = (),
                 categories: Iterable[str] = ()) -> dict[str, Any]:
    """The webhook JSON body (DESIGN.md contract; `source.categories` is the feed's folders)."""
    e = alert.entry
    return {
        "type": "alert",
        "id": alert.id,
        "update": alert.update,
        "subscriber": alert.subscriber_id,
        "topics": [m.to_dict() for m in alert.matches],
        "story": {
            "id": alert.story_id, "title": e.title, "url": e.link, "published": iso(e.published),
            "summary": e.summary, "source": {"feed": feed_url, "title": e.source_title,
                                          "categories": list(categories)},
            "also_reported_by": [{"title": o.title, "url": o.link, "source": o.source_title}
                                 for o in also_reported(alert, others)],
        },
        "detected_at": iso(alert.detected_at),
    }


def single_line(text: str, limit: int = MAX_SUBJECT) -> str:
    """Header-safe text: no CR/LF or other controls, bounded length."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def safe_link(url: str | None) -> str | None:
    return url if url and urlsplit(url).scheme in ("http", "https") else None


def email_message(body: dict[str, Any], *, to: str, from_address: str,
                  domain: str = "newswatch", unsubscribe_url: str | None = None) -> EmailMessage:
    """multipart/alternative (text + HTML) for one alert body as built by `webhook_body`."""
    story, topics = body["story"], body["topics"]
    names = ", ".join(t["name"] for t in topics)
    msg = EmailMessage()
    marker = "Update · " if body.get("update") else ""
    msg["Subject"] = single_line(f"[newswatch] {marker}{names}: {story['title']}")
    msg["From"] = from_address
    msg["To"] = to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{body['id']}@{domain}>"   # stable across retries: receivers dedup
    mailto = f"<mailto:{from_address}?subject={quote('unsubscribe ' + to)}>"
    if unsubscribe_url:
        # RFC 8058 one-click: an HTTPS URL that the mail client POSTs to.
        query = urlencode({"subscriber": body["subscriber"], "alert": body["id"]})
        joiner = "&" if "?" in unsubscribe_url else "?"
        msg["List-Unsubscribe"] = f"<{unsubscribe_url}{joiner}{query}>, {mailto}"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    else:
        msg["List-Unsubscribe"] = mailto
    msg["X-Newswatch-Alert"] = body["id"]
    msg.set_content(_text(story, topics))
    msg.add_alternative(_html(story, topics), subtype="html")
    return msg


def digest_email(body: dict[str, Any], *, to: str, from_address: str,
                 domain: str = "newswatch", unsubscribe_url: str | None = None) -> EmailMessage:
    """One message for a digest period: topics, one entry per story with all its sources."""
    period = body["period"]
    kind = "Daily" if period["kind"] == "daily" else "Hourly"
    msg = EmailMessage()
    msg["Subject"] = single_line(f"[newswatch] {kind} digest {period['label']} "
                                 f"({period['timezone']}): {body['stories']} stories")
    msg["From"], msg["To"] = from_address, to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{body['id']}@{domain}>"
    msg["List-Unsubscribe"] = f"<mailto:{from_address}?subject={quote('unsubscribe ' + to)}>"
    lines = [f"{kind} digest, {period['label']} ({period['timezone']})", ""]
    html = ["<!doctype html><html><body style=\"font-family:sans-serif;max-width:40em\">",
            f"<h2>{html_escape(kind)} digest, {html_escape(period['label'])} "
            f"({html_escape(period['timezone'])})</h2>"]
    for topic in body["topics"]:
        lines += [topic["name"], "=" * len(topic["name"])]
        html.append(f"<h3>{html_escape(topic['name'])}</h3><ul>")
        for story in topic["stories"]:
            also = f" (also: {', '.join(story['also_topics'])})" if story["also_topics"] else ""
            lines.append(f"- {single_line(story['title'], 300)}{also}")
            sources = ", ".join(dict.fromkeys(s["source"] for s in story["sources"]))
            lines.append(f"  {story.get('url') or ''}  [{sources}]".rstrip())
            link = safe_link(story.get("url"))
            title = html_escape(story["title"])
            html.append(f'<li><a href="{html_escape(link)}">{title}</a>' if link
                        else f"<li>{title}")
            html.append(f" <span style=\"color:#555\">{html_escape(sources + also)}</span></li>")
        lines.append("")
        html.append("</ul>")
    html.append("</body></html>")
    msg.set_content("\n".join(lines) + "\n")
    msg.add_alternative("\n".join(html), subtype="html")
    return msg


def notice_email(body: dict[str, Any], *, to: str, from_address: str,
                 domain: str = "newswatch", unsubscribe_url: str | None = None) -> EmailMessage:
    """An operator notice: a feed is gone (410) or keeps failing."""
    feed = body["feed"]
    what = "is gone (HTTP 410): no longer polled" if body["problem"] == "gone" else \
        f"failed {body['errors_in_a_row']} times in a row"
    msg = EmailMessage()
    msg["Subject"] = single_line(f"[newswatch] Feed problem: {feed['name']} {what}")
    msg["From"], msg["To"] = from_address, to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{body['id']}@{domain}>"
    text = (f"Feed {feed['name']} ({feed['url']}) {what}.\n\n"
            f"Error class: {body['error_class']}\nLast error: {body['error']}\n")
    msg.set_content(text)
    msg.add_alternative(f"<p>{html_escape(text).replace(chr(10), '<br>')}</p>", subtype="html")
    return msg


def _text(story: dict[str, Any], topics: list[dict[str, Any]]) -> str:
    lines = [story["title"], ""]
    if story.get("url"):
        lines.append(story["url"])
    lines.append(f"{story['source']['title']} · {story.get('published') or 'undated'}")
    lines += ["", story.get("summary") or "", ""]
    for t in topics:
        lines.append(f"Matched topic: {t['name']} ({t['id']}){_semantic(t)}")
        lines += [f"  {ev}" for ev in t.get("evidence", [])]
        if t.get("clauses"):
            lines.append(f"  because: {'; '.join(t['clauses'])}")
    if story.get("also_reported_by"):
        lines += ["", "Also reported by:"]
        lines += [f"  {o['source']}: {o['title']} {o.get('url') or ''}".rstrip()
                  for o in story["also_reported_by"]]
    return "\n".join(lines) + "\n"


def _html(story: dict[str, Any], topics: list[dict[str, Any]]) -> str:
    esc = html.escape
    link = safe_link(story.get("url"))
    title = esc(story["title"])
    heading = f'<a href="{esc(link)}">{title}</a>' if link else title
    parts = [
        "<!doctype html><html><body style=\"font-family:sans-serif;max-width:40em\">",
        f"<h2 style=\"margin-bottom:0.2em\">{heading}</h2>",
        f"<p style=\"color:#555;margin-top:0\">{esc(story['source']['title'])} · "
        f"{esc(story.get('published') or 'undated')}</p>",
        f"<p>{esc(story.get('summary') or '')}</p>",
    ]
    for t in topics:
        parts.append(f"<p><strong>{esc(t['name'])}</strong>{esc(_semantic(t))}</p><ul>")
        parts += [f"<li>{_emphasis(esc(ev))}</li>" for ev in t.get("evidence", [])]
        parts.append("</ul>")
        if t.get("clauses"):
            parts.append(f"<p style=\"color:#555\">because: {esc('; '.join(t['clauses']))}</p>")
    if story.get("also_reported_by"):
        parts.append("<p>Also reported by:</p><ul>")
        for o in story["also_reported_by"]:
            href = safe_link(o.get("url"))
            text = f"{esc(o['source'])}: {esc(o['title'])}"
            parts.append(f'<li><a href="{esc(href)}">{text}</a></li>' if href
                         else f"<li>{text}</li>")
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _semantic(topic: dict[str, Any]) -> str:
    return f" · semantic {topic['semantic']:.2f}" if topic.get("semantic") is not None else ""


def _emphasis(escaped: str) -> str:
    return re.sub(r"\*([^*]+)\*", r"<mark>\1</mark>", escaped)
