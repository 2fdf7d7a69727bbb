"""Feed bytes -> normalised Entry values. Pure: no I/O, no Redis.

feedparser reads RSS 0.9x/1.0/2.0 and Atom; JSON Feed 1.0/1.1 is mapped here because feedparser
does not read it. Summaries become plain text; links become canonical URLs.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import io
import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
import nh3

from .errors import ParseError
from .models import Entry, parse_iso

MAX_TITLE = 500
MAX_SUMMARY = 2000
_SPACE = re.compile(r"\s+")
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gclsrc|msclkid|mc_cid|mc_eid|ocid|cmpid|cmp|"
    r"_ga|_gl|igshid|yclid|ref_src|ref_url|smid|smtyp|at_medium|at_campaign|at_custom\d*|"
    r"xtor|ns_mchannel|ns_source|ns_campaign|ns_linkname|ns_fee|taid|ito|sr_share)$",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_feed(body: bytes, *, url: str, feed_id: str, feed_name: str,
               headers: Mapping[str, str] | None = None) -> list[Entry]:
    """Parse a feed body; raise ParseError naming `url` when it yields no entries and is no feed."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if _looks_like_json(body, headers.get("content-type", "")):
        return _parse_json_feed(body, url=url, feed_id=feed_id, feed_name=feed_name)
    # Never hand feedparser a str or bytes: it treats them as a URL or a file name to open.
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers,
                              sanitize_html=False, resolve_relative_uris=False)
    source = feed_name or _clean_text(parsed.feed.get("title", "")) or url
    entries = list(_dedup(_from_feedparser(e, url, feed_id, source) for e in parsed.entries))
    if not entries and (parsed.get("bozo") or not parsed.get("version")):
        reason = parsed.get("bozo_exception") or "no feed found"
        raise ParseError(url, f"not a readable feed: {reason}")
    return entries


def _looks_like_json(body: bytes, content_type: str) -> bool:
    if "json" in content_type.lower():
        return True
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def _from_feedparser(e: Any, url: str, feed_id: str, source: str) -> Entry:
    link = _first_link(e, url)
    title = _clean_text(e.get("title", ""))[:MAX_TITLE]
    body = e.get("summary") or ""
    if not body and e.get("content"):
        body = e["content"][0].get("value", "")
    summary = _clean_text(body)[:MAX_SUMMARY]
    published = None
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: FeedParserDict.get aliases updated->published with a DeprecationWarning
        if value := dict.get(e, key):
            published = datetime.fromtimestamp(calendar.timegm(value), UTC)
            break
    guid = (e.get("id") or "").strip()
    return Entry(feed_id, guid or link or _content_id(title, summary), title, summary, link,
                 published, source)


def _first_link(e: Any, base: str) -> str | None:
    candidates = [e.get("link")]
    candidates += [lk.get("href") for lk in e.get("links", ())
                   if lk.get("rel", "alternate") == "alternate"]
    if e.get("guidislink"):
        candidates.append(e.get("id"))
    for href in candidates:
        if href and (link := canonical_url(urljoin(base, href.strip()))):
            return link
    return None


def _parse_json_feed(body: bytes, *, url: str, feed_id: str, feed_name: str) -> list[Entry]:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParseError(url, f"not a readable JSON Feed: {exc}") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
            "https://jsonfeed.org/version/"):
        raise ParseError(url, "JSON document is not a JSON Feed (no jsonfeed.org version)")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError(url, "JSON Feed has no 'items' list")
    source = feed_name or _clean_text(str(doc.get("title") or "")) or url
    base = str(doc.get("home_page_url") or doc.get("feed_url") or url)
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue    # one malformed item must not cost the others
        entries.append(_from_json_item(item, base, feed_id, source))
    if not entries and items:
        raise ParseError(url, "JSON Feed items are all malformed")
    return list(_dedup(entries))


def _from_json_item(item: dict[str, Any], base: str, feed_id: str, source: str) -> Entry:
    def text(key: str) -> str:
        value = item.get(key)
        return value if isinstance(value, str) else ""

    raw_link = text("url") or text("external_url")
    link = canonical_url(urljoin(base, raw_link)) if raw_link else None
    title = _clean_text(text("title"))[:MAX_TITLE]
    summary = _clean_text(text("summary") or text("content_html") or text("content_text"))
    summary = summary[:MAX_SUMMARY]
    if not title:  # JSON Feed allows title-less items (microblogs): use the text's start
        title = summary[:120]
    published = None
    for key in ("date_published", "date_modified"):
        try:
            published = parse_iso(text(key))
        except ValueError:
            continue
        if published:
            break
    raw_id = item.get("id")
    guid = str(raw_id).strip() if isinstance(raw_id, str | int) else ""
    return Entry(feed_id, guid or link or _content_id(title, summary), title, summary, link,
                 published, source)


def _dedup(entries: Iterable[Entry]) -> Iterable[Entry]:
    seen: set[str] = set()
    for entry in entries:
        if entry.entry_id not in seen and (entry.title or entry.summary):
            seen.add(entry.entry_id)
            yield entry


def _content_id(title: str, summary: str) -> str:
    return "sha1:" + hashlib.sha1(f"{title}\n{summary}".encode()).hexdigest()


def html_to_text(value: str) -> str:
    """Markup -> plain text: tags dropped (script/style with their content), entities decoded."""
    if "<" in value:
        value = nh3.clean(value, tags=set(), clean_content_tags={"script", "style"})
    return html.unescape(value)


def _clean_text(value: str) -> str:
    # Entities may be double-encoded by publishers (`&amp;amp;`): one more unescape is harmless
    # on clean text and fixes those.
    text = html_to_text(value)
    if "&" in text and "<" not in text:
        text = html.unescape(text)
    return _SPACE.sub(" ", text.replace("\x00", "")).strip()


def canonical_url(url: str) -> str | None:
    """The URL a page is known by: lowercase scheme and host, no default port, no fragment,
    no tracking parameters, no empty query. None for anything but http(s)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if port and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _TRACKING.match(k)]
    path = parts.path or "/"
    return urlunsplit((scheme, host, path, urlencode(query, doseq=True), ""))
