"""Email HTML: one centred card, inline styles and presentation tables (what mail clients
render alike), every piece of feed text escaped. The plain-text twins live in render.py.
"""

from __future__ import annotations

import re
from datetime import datetime
from html import escape
from urllib.parse import urlsplit

from ..bodies import (
    AlertBody,
    DigestBody,
    DigestMaybe,
    DigestStory,
    DigestTopic,
    Links,
    NoticeBody,
    TopicMatch,
)
from ..classify import language

ACCENT, INK, MUTED, RULE = "#b4232a", "#111827", "#6b7280", "#e5e7eb"
FONT = "-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"


def alert_html(body: AlertBody) -> str:
    """The alert card. Feed text is marked `dir="auto"` (and with its language): an Arabic,
    Hebrew or Persian headline reads right to left inside an English card."""
    story, topics = body["story"], body["topics"]
    link = safe_link(story.get("url"))
    title = escape(story["title"])
    lang = _lang_attr(story.get("lang"))
    heading = (f'<a href="{escape(link)}" style="color:{INK};text-decoration:none">{title}</a>'
               if link else title)
    marker = "Update" if body.get("update") else "Alert"
    rows = [
        _row(f'<h1 dir="auto"{lang} style="margin:0 0 6px;font-size:22px;line-height:1.3;'
             f'color:{INK}">{heading}</h1>'
             f'<p style="margin:0;font-size:13px;color:{MUTED}">'
             f"{escape(story['source']['title'])} · {escape(when(story.get('published')))}"
             f"{escape(language_note(story.get('lang')))}</p>",
             "24px 28px 6px"),
    ]
    related = body.get("related_to")
    if related:
        rows.append(_row(f'<p dir="auto" style="margin:0;font-size:13px;color:{MUTED}">'
                         f"Related to: {_linked(related['title'], safe_link(related.get('url')))}"
                         "</p>", "4px 28px 6px"))
    if story.get("summary"):
        rows.append(_row(f'<p dir="auto"{lang} style="margin:0;font-size:15px;line-height:1.6;'
                         f'color:#374151">{escape(story["summary"])}</p>', "10px 28px 6px"))
    for t in topics:
        evidence = "".join(f'<p dir="auto" style="margin:6px 0 0;font-size:14px;'
                           f'line-height:1.5;color:{INK}">{highlight(escape(ev))}</p>'
                           for ev in t.get("evidence", []))
        because = (f'<p style="margin:8px 0 0;font-size:12px;color:{MUTED}">because: '
                   f"{escape('; '.join(t['clauses']))}</p>" if t.get("clauses") else "")
        like = "".join(f'<p dir="auto" style="margin:4px 0 0;font-size:12px;color:{MUTED}">'
                       f"like: {escape(x['title'])} ({escape(x['label'])})</p>"
                       for x in t.get("like", []))
        rows.append(_row(
            f'<div style="border-left:3px solid {ACCENT};background:#fdf2f2;padding:10px 14px;'
            f'border-radius:4px"><p style="margin:0;font-size:12px;font-weight:600;'
            f'letter-spacing:.03em;color:{ACCENT};text-transform:uppercase">Matched: '
            f"{escape(t['name'])}{escape(scores(t))}</p>{evidence}{because}{like}"
            f"{_feedback(t['name'], body.get('feedback', {}).get(t['id']))}</div>",
            "12px 28px 4px"))
    others = story.get("also_reported_by") or []
    if others:
        items = "".join(f'<li dir="auto" style="margin:0 0 4px">'
                        f'{_linked(o["title"], safe_link(o.get("url")))}'
                        f' <span style="color:{MUTED}">· {escape(o["source"])}</span></li>'
                        for o in others)
        rows.append(_row(f'<p style="margin:0 0 6px;font-size:13px;font-weight:600;'
                         f'color:#374151">Also reported by {len(others)} more</p>'
                         f'<ul style="margin:0;padding-left:18px;font-size:14px;'
                         f'line-height:1.5;color:{INK}">{items}</ul>', "14px 28px 4px"))
    if link:
        rows.append(_row(f'<a href="{escape(link)}" style="display:inline-block;background:'
                         f'{INK};color:#ffffff;padding:10px 18px;border-radius:6px;'
                         f'text-decoration:none;font-size:14px;font-weight:600">'
                         "Read the story &rarr;</a>", "18px 28px 26px"))
    names = " · ".join(escape(t["name"]) for t in topics)
    return _page(story["title"], story.get("summary") or "", f"{marker} · {names}", rows,
                 f"Sent to {escape(body['subscriber'])} because this story matches a watch "
                 "topic. One alert per story: later copies from other outlets are listed here, "
                 "not sent again.")


def _feedback(name: str, links: Links | None) -> str:
    """The reader's two links for a topic: each opens a page that asks before recording."""
    if not links:
        return ""
    style = (f"display:inline-block;margin:0 6px 0 0;padding:3px 10px;border-radius:4px;"
             f"border:1px solid {MUTED};color:{INK};text-decoration:none;font-size:12px")
    relevant, other = safe_link(links.get("relevant")), safe_link(links.get("not_relevant"))
    if not relevant or not other:
        return ""
    return (f'<p style="margin:10px 0 0;font-size:12px;color:{MUTED}">Is this '
            f"{escape(name)} news? "
            f'<a href="{escape(relevant)}" style="{style}">Relevant</a>'
            f'<a href="{escape(other)}" style="{style}">Not relevant</a></p>')


def digest_html(body: DigestBody) -> str:
    period = body["period"]
    kind = "Daily" if period["kind"] == "daily" else "Hourly"
    rows = [_row(f'<h1 style="margin:0;font-size:22px;color:{INK}">{kind} digest</h1>'
                 f'<p style="margin:4px 0 0;font-size:13px;color:{MUTED}">'
                 f"{escape(period['label'])} ({escape(period['timezone'])}) · "
                 f"{escape(digest_count(body))}</p>", "24px 28px 6px")]
    for topic in body["topics"]:
        items = []
        for story in topic["stories"]:
            thread = "".join(_digest_item(topic, later) for later in story.get("related", []))
            if thread:                  # the thread's later alerts, under its first
                thread = (f'<ul style="margin:6px 0 0;padding-left:16px;border-left:2px solid '
                          f'{RULE}">{thread}</ul>')
            items.append(_digest_item(topic, story, thread))
        rows.append(_row(f'<p style="margin:0 0 6px;font-size:12px;font-weight:600;'
                         f'letter-spacing:.03em;color:{ACCENT};text-transform:uppercase">'
                         f"{escape(topic['name'])}</p>{_list(items)}{_maybe_section(topic)}",
                         "14px 28px 6px"))
    return _page(f"{kind} digest {period['label']}", "", f"{kind} digest", rows,
                 f"Sent to {escape(body['subscriber'])}: one message per period, one line per "
                 "story with all its sources.")


def _digest_item(topic: DigestTopic, story: DigestStory, thread: str = "") -> str:
    sources = ", ".join(dict.fromkeys(s["source"] for s in story["sources"]))
    also = f" · also {', '.join(story['also_topics'])}" if story["also_topics"] else ""
    said = "".join(_feedback(name, story.get("feedback", {}).get(t_id))
                   for t_id, name in _story_topics(topic, story))
    related = (f'<br><span style="font-size:12px;color:{MUTED}">related to: '
               f"{escape(story['related_to']['title'])}</span>" if "related_to" in story else "")
    return (f'<li dir="auto" style="margin:0 0 8px">'
            f'{_linked(story["title"], safe_link(story.get("url")))}{related}<br>'
            f'<span style="font-size:12px;color:{MUTED}">{escape(sources + also)}'
            f"</span>{said}{thread}</li>")


def digest_count(body: DigestBody) -> str:
    """What a digest holds, for its subject: "3 stories", "3 stories, 2 maybe", or for a
    subscriber alerted at once, its day's "2 maybe (not alerted)"."""
    maybe = sum(len(t.get("maybe", [])) for t in body["topics"])
    if maybe and not body["stories"]:
        return f"{maybe} maybe (not alerted)"
    return f"{body['stories']} stories" + (f", {maybe} maybe" if maybe else "")


def maybe_score(near: DigestMaybe) -> str:
    return f"{near['by']} {near['score']:.2f}, alerts from {near['threshold']:.2f}"


def _maybe_section(topic: DigestTopic) -> str:
    """A topic's "maybe" lines: items it did not alert, set apart, each with its links."""
    if not topic.get("maybe"):
        return ""
    items = [
        f'<li dir="auto"{_lang_attr(near.get("lang"))} style="margin:0 0 8px">'
        f'{_linked(near["title"], safe_link(near.get("url")))}<br>'
        f'<span style="font-size:12px;color:{MUTED}">{escape(near["source"])} · '
        f"{escape(maybe_score(near))}</span>"
        f"{_feedback(topic['name'], near.get('feedback', {}).get(topic['id']))}</li>"
        for near in topic["maybe"]]
    return (f'<div style="margin:10px 0 0;padding:8px 12px;border:1px dashed {RULE};'
            f'border-radius:4px"><p style="margin:0 0 6px;font-size:12px;color:{MUTED}">'
            f"Maybe {escape(topic['name'])}? Not alerted: the nearest misses, for you to judge "
            f"(the topic learns from your verdict).</p>{_list(items)}</div>")


def _list(items: list[str]) -> str:
    """A digest's list of stories or maybe lines; nothing for none."""
    if not items:
        return ""
    return (f'<ul style="margin:0;padding-left:18px;font-size:14px;line-height:1.45;'
            f'color:{INK}">{"".join(items)}</ul>')


def _story_topics(topic: DigestTopic, story: DigestStory) -> list[tuple[str, str]]:
    """(topic id, name) of a digest story's feedback links: its heading topic first."""
    said = story.get("feedback") or {}
    ids = [topic["id"], *(t for t in said if t != topic["id"])]
    names = {topic["id"]: topic["name"]}
    others = iter(story.get("also_topics") or [])
    return [(t, names.get(t) or next(others, t)) for t in ids if t in said]


def notice_html(body: NoticeBody, what: str) -> str:
    feed = body["feed"]
    rows = [_row(f'<h1 style="margin:0 0 8px;font-size:20px;color:{INK}">Feed problem: '
                 f"{escape(feed['name'])}</h1>"
                 f'<p style="margin:0;font-size:14px;line-height:1.6;color:#374151">'
                 f"{escape(feed['url'])} {escape(what)}.</p>"
                 f'<p style="margin:10px 0 0;font-size:13px;color:{MUTED}">Error class: '
                 f"{escape(body['error_class'])}<br>Last error: {escape(body['error'])}</p>",
                 "24px 28px 24px")]
    return _page(f"Feed problem: {feed['name']}", "", "Operator notice", rows,
                 "Sent to the operators listed in settings.operators.")


def _lang_attr(lang: str | None) -> str:
    """` lang="ar"` for a known language code (anything else is left out, never echoed)."""
    return f' lang="{lang}"' if lang and lang.isalpha() and len(lang) <= 3 else ""


def safe_link(url: str | None) -> str | None:
    """Only http(s) links become links (no javascript:, data:, file:)."""
    return url if url and urlsplit(url).scheme in ("http", "https") else None


def when(published: str | None) -> str:
    """`2025-01-04T14:05:00Z` -> `4 Jan 2025, 14:05 UTC`."""
    if not published:
        return "undated"
    try:
        moment = datetime.fromisoformat(published.replace("Z", "+00:00"))
    except ValueError:
        return published
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def highlight(escaped: str) -> str:
    return re.sub(r"\*([^*]+)\*", r'<mark style="background:#fde68a;color:inherit;'
                                  r'padding:0 2px;border-radius:2px">\1</mark>', escaped)


def _linked(text: str, url: str | None) -> str:
    return (f'<a href="{escape(url)}" style="color:{INK}">{escape(text)}</a>' if url
            else escape(text))


def _row(html: str, padding: str) -> str:
    return f'<tr><td style="padding:{padding}">{html}</td></tr>'


def _page(title: str, preheader: str, kicker: str, rows: list[str], footer: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="color-scheme" content="light">'
        f"<title>{escape(title)}</title></head>"
        f'<body style="margin:0;padding:0;background:#f3f4f6">'
        f'<div style="display:none;max-height:0;overflow:hidden">{escape(preheader[:140])}'
        "</div>"
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        'style="background:#f3f4f6"><tr><td align="center" style="padding:24px 12px">'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" '
        f'style="max-width:600px;background:#ffffff;border:1px solid {RULE};border-radius:8px;'
        f'font-family:{FONT};color:{INK}">'
        f'<tr><td style="padding:14px 28px;border-bottom:1px solid {RULE};font-size:12px;'
        f'color:{MUTED}"><strong style="color:{ACCENT};letter-spacing:.08em">NEWSWATCH'
        f"</strong>&nbsp;&nbsp;{kicker}</td></tr>"
        + "".join(rows)
        + f'<tr><td style="padding:14px 28px;border-top:1px solid {RULE};font-size:12px;'
        f'line-height:1.5;color:#9ca3af">{footer}</td></tr>'
        "</table></td></tr></table></body></html>")


def scores(topic: TopicMatch) -> str:
    """The model's probability and the similarity, when they were scored: ` · model 0.93`."""
    out = f" · model {topic['model']:.2f}" if topic.get("model") is not None else ""
    if topic.get("semantic") is not None:
        out += f" · semantic {topic['semantic']:.2f}"
    return out


def language_note(lang: str | None) -> str:
    """` · Arabic` for an item not in English (the alert is in its own language)."""
    return f" · {language.name(lang)}" if lang and lang != "en" else ""
