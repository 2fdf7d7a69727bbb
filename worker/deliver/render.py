"""Alert -> webhook body and email message. Pure; feed text is escaped, never trusted."""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import quote, urlencode

from ..bodies import (
    AlertBody,
    DigestBody,
    DigestMaybe,
    DigestStory,
    Links,
    NoticeBody,
    RelatedTo,
    Story,
    TopicMatch,
)
from ..models import Alert, Entry, iso
from .templates import (
    alert_html,
    digest_count,
    digest_html,
    language_note,
    maybe_score,
    notice_html,
    scores,
    when,
)

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
                 categories: Iterable[str] = (),
                 feedback: dict[str, Links] | None = None) -> AlertBody:
    """The webhook JSON body (DESIGN.md contract; `source.categories` is the feed's folders;
    `feedback`: per topic, the readers' "relevant" / "not relevant" links, when configured)."""
    e = alert.entry
    body: AlertBody = {
        "type": "alert",
        "id": alert.id,
        "update": alert.update,
        "subscriber": alert.subscriber_id,
        "topics": [m.to_dict() for m in alert.matches],
        "story": {
            "id": alert.story_id, "title": e.title, "url": e.link, "published": iso(e.published),
            "summary": e.summary, "lang": e.lang,
            "source": {"feed": feed_url, "title": e.source_title,
                       "categories": list(categories)},
            "also_reported_by": [{"title": o.title, "url": o.link, "source": o.source_title}
                                 for o in also_reported(alert, others)],
        },
        "detected_at": iso(alert.detected_at),
        "thread": alert.thread_id,
        "related_to": {"story": alert.related.story, "title": alert.related.title,
                       "url": alert.related.url} if alert.related else None,
        "reply_to": alert.reply_to,
    }
    if feedback:
        body["feedback"] = feedback
    return body


def single_line(text: str, limit: int = MAX_SUBJECT) -> str:
    """Header-safe text: no CR/LF or other controls, bounded length."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def email_message(body: AlertBody, *, to: str, from_address: str,
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
    if body.get("reply_to"):        # a related report or an update: in the story's thread
        msg["In-Reply-To"] = f"<{body['reply_to']}@{domain}>"
        msg["References"] = f"<{body['reply_to']}@{domain}>"
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
    msg.set_content(_text(story, topics, body.get("feedback") or {}, body.get("related_to")))
    msg.add_alternative(alert_html(body), subtype="html")
    return msg


def digest_email(body: DigestBody, *, to: str, from_address: str,
                 domain: str = "newswatch", unsubscribe_url: str | None = None) -> EmailMessage:
    """One message for a digest period: topics, one entry per story with all its sources."""
    period = body["period"]
    kind = "Daily" if period["kind"] == "daily" else "Hourly"
    msg = EmailMessage()
    msg["Subject"] = single_line(f"[newswatch] {kind} digest {period['label']} "
                                 f"({period['timezone']}): {digest_count(body)}")
    msg["From"], msg["To"] = from_address, to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{body['id']}@{domain}>"
    msg["List-Unsubscribe"] = f"<mailto:{from_address}?subject={quote('unsubscribe ' + to)}>"
    lines = [f"{kind} digest, {period['label']} ({period['timezone']})", ""]
    for topic in body["topics"]:
        lines += [topic["name"], "=" * len(topic["name"])]
        for story in topic["stories"]:
            lines += _digest_story(story, "- ", "  ")
            for later in story.get("related", []):     # its thread, under it
                lines += _digest_story(later, "    ↳ ", "      ")
        if topic.get("maybe"):
            lines += ["", f"Maybe {topic['name']}? Not alerted: the nearest misses, for you "
                          "to judge (the topic learns from your verdict)"]
            lines += [line for near in topic["maybe"] for line in _maybe_line(near)]
        lines.append("")
    msg.set_content("\n".join(lines) + "\n")
    msg.add_alternative(digest_html(body), subtype="html")
    return msg


def _digest_story(story: DigestStory, bullet: str, indent: str) -> list[str]:
    also = f" (also: {', '.join(story['also_topics'])})" if story["also_topics"] else ""
    lines = [f"{bullet}{single_line(story['title'], 300)}{also}"]
    if "related_to" in story:
        lines.append(f"{indent}related to: {single_line(story['related_to']['title'], 300)}")
    sources = ", ".join(dict.fromkeys(s["source"] for s in story["sources"]))
    lines.append(f"{indent}{story.get('url') or ''}  [{sources}]".rstrip())
    for topic_id, links in (story.get("feedback") or {}).items():
        lines.append(f"{indent}{topic_id}: relevant {links['relevant']} · not relevant "
                     f"{links['not_relevant']}")
    return lines


def _maybe_line(near: DigestMaybe) -> list[str]:
    url = near.get("url")
    lines = [f"- {single_line(near['title'], 300)}",
             f"  {url + '  ' if url else ''}[{near['source']}] {maybe_score(near)}"]
    for topic_id, links in (near.get("feedback") or {}).items():
        lines.append(f"  {topic_id}: relevant {links['relevant']} · not relevant "
                     f"{links['not_relevant']}")
    return lines


def notice_email(body: NoticeBody, *, to: str, from_address: str,
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
    msg.add_alternative(notice_html(body, what), subtype="html")
    return msg


def _text(story: Story, topics: list[TopicMatch], feedback: dict[str, Links],
          related: RelatedTo | None = None) -> str:
    lines = [story["title"], ""]
    if story["url"]:
        lines.append(story["url"])
    lines.append(f"{story['source']['title']} · {when(story.get('published'))}"
                 f"{language_note(story.get('lang'))}")
    if related:
        lines.append(f"Related to: {related['title']} {related.get('url') or ''}".rstrip())
    lines += ["", story.get("summary") or "", ""]
    for t in topics:
        lines.append(f"Matched topic: {t['name']} ({t['id']}){scores(t)}")
        lines += [f"  {ev}" for ev in t.get("evidence", [])]
        if t.get("clauses"):
            lines.append(f"  because: {'; '.join(t['clauses'])}")
        lines += [f"  like: {like['title']} ({like['label']})" for like in t.get("like", [])]
        if t["id"] in feedback:
            links = feedback[t["id"]]
            lines += [f"  Relevant to {t['name']}? {links['relevant']}",
                      f"  Not relevant? {links['not_relevant']}"]
    if story.get("also_reported_by"):
        lines += ["", "Also reported by:"]
        lines += [f"  {o['source']}: {o['title']} {o.get('url') or ''}".rstrip()
                  for o in story["also_reported_by"]]
    return "\n".join(lines) + "\n"
