"""Alert, digest and notice bodies -> (title, Markdown) for chat tools (via Apprise).

Feed text is untrusted: every Markdown character that could make a link, an image, a heading or
HTML is escaped, so an item cannot smuggle a link or a mention into a chat. Our own `*term*`
highlights are kept.
"""

from __future__ import annotations

import re

from ..bodies import AlertBody, Body, DigestBody, DigestMaybe, DigestStory, DigestTopic, NoticeBody
from .render import single_line
from .templates import digest_count, language_note, maybe_score, safe_link, scores

_SPECIAL = re.compile(r"([\\`_\[\]()#+\-!|<>~{}.])")
_RTL = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")
MAX_EVIDENCE = 2                      # snippets per topic: a chat line, not an essay
MAX_SOURCES = 5


def md(text: str | None) -> str:
    """Feed text as inert Markdown on one line (our `*` highlights stay). Right-to-left text
    is isolated (U+2068 ... U+2069), so that an Arabic headline inside an English line keeps
    its own direction and does not reorder the words around it."""
    line = _SPECIAL.sub(r"\\\1", single_line(text or "", 2000))
    return f"\u2068{line}\u2069" if _RTL.search(line) else line


def _link(label: str, url: str | None) -> str:
    link = safe_link(url)
    return f"[{md(label)}](<{link.replace('>', '%3E')}>)" if link else md(label)


def chat_message(body: Body) -> tuple[str, str]:
    if body["type"] == "digest":
        return _digest(body)
    if body["type"] == "feed_problem":
        return _notice(body)
    return _alert(body)


def _alert(body: AlertBody) -> tuple[str, str]:
    story, topics = body["story"], body["topics"]
    names = ", ".join(t["name"] for t in topics)
    marker = "Update · " if body.get("update") else ""
    title = single_line(f"[newswatch] {marker}{names}: {story['title']}")
    lines = [f"**{_link(story['title'], story.get('url'))}**",
             f"{md(story['source']['title'])} · {md(story.get('published') or 'undated')}"
             f"{md(language_note(story.get('lang')))}"]
    related = body.get("related_to")
    if related:            # a thread reply, in the text (Apprise cannot post into a thread)
        lines.append(f"↳ Related to: {_link(related['title'], related.get('url'))}")
    for t in topics:
        lines.append(f"**{md(t['name'])}**{md(scores(t))}")
        lines += [f"> {md(ev)}" for ev in t.get("evidence", [])[:MAX_EVIDENCE]]
        lines += [f"like: {md(x['title'])} ({md(x['label'])})" for x in t.get("like", [])]
        links = (body.get("feedback") or {}).get(t["id"])
        if links:
            lines.append(f"{_link('relevant', links.get('relevant'))} · "
                         f"{_link('not relevant', links.get('not_relevant'))}")
    others = story.get("also_reported_by") or []
    if others:
        shown = ", ".join(_link(o["source"] or o["title"], o.get("url"))
                          for o in others[:MAX_SOURCES])
        more = f" and {len(others) - MAX_SOURCES} more" if len(others) > MAX_SOURCES else ""
        lines.append(f"Also reported by {shown}{more}")
    return title, "\n\n".join(lines)


def _digest(body: DigestBody) -> tuple[str, str]:
    period = body["period"]
    kind = "Daily" if period["kind"] == "daily" else "Hourly"
    title = single_line(f"[newswatch] {kind} digest {period['label']} ({period['timezone']}): "
                        f"{digest_count(body)}")
    lines = []
    for topic in body["topics"]:
        lines.append(f"**{md(topic['name'])}**")
        for story in topic["stories"]:
            lines.append(f"- {_digest_line(topic, story)}")
            lines += [f"  - ↳ {_digest_line(topic, later)}" for later in story.get("related", [])]
        if topic.get("maybe"):
            lines.append(f"_Maybe {md(topic['name'])}? Not alerted, for you to judge:_")
            lines += [f"- {_maybe_line(topic, near)}" for near in topic["maybe"]]
        lines.append("")
    return title, "\n".join(lines).strip()


def _digest_line(topic: DigestTopic, story: DigestStory) -> str:
    sources = ", ".join(dict.fromkeys(md(s["source"]) for s in story["sources"]))
    links = (story.get("feedback") or {}).get(topic["id"])
    said = (f" · {_link('relevant', links.get('relevant'))} · "
            f"{_link('not relevant', links.get('not_relevant'))}" if links else "")
    return f"{_link(story['title'], story.get('url'))} ({sources}){said}"


def _maybe_line(topic: DigestTopic, near: DigestMaybe) -> str:
    links = (near.get("feedback") or {}).get(topic["id"])
    said = (f" · {_link('relevant', links.get('relevant'))} · "
            f"{_link('not relevant', links.get('not_relevant'))}" if links else "")
    return f"{_link(near['title'], near.get('url'))} ({md(near['source'])}, " \
           f"{md(maybe_score(near))}){said}"


def _notice(body: NoticeBody) -> tuple[str, str]:
    feed = body["feed"]
    what = "is gone (HTTP 410): no longer polled" if body["problem"] == "gone" else \
        f"failed {body['errors_in_a_row']} times in a row"
    title = single_line(f"[newswatch] Feed problem: {feed['name']} {what}")
    text = (f"Feed **{md(feed['name'])}** ({md(feed['url'])}) {md(what)}\n\n"
            f"Error class: {md(body['error_class'])}\n\nLast error: {md(body['error'])}")
    return title, text
