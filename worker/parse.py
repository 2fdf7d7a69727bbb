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
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from itertools import islice
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
import nh3

from .boilerplate import BOILERPLATE_SAMPLE, boilerplate, without_boilerplate
from .classify.language import detect
from .errors import ParseError
from .models import Entry, parse_iso

MAX_TITLE = 500
MAX_SUMMARY = 2000
MAX_ENTRIES = 1000
_ITEM_START = re.compile(rb"<(?:[\w.-]+:)?(?:item|entry)[\s/>]", re.IGNORECASE)
_ITEM_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>", re.IGNORECASE)
_DOCUMENT_END = re.compile(rb"</(?:[\w.-]+:)?(?:channel|feed|rdf)\b", re.IGNORECASE)
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|gclsrc|msclkid|mc_cid|mc_eid|ocid|cmpid|cmp|"
    r"_ga|_gl|igshid|yclid|ref_src|ref_url|smid|smtyp|at_medium|at_campaign|at_custom\d*|"
    r"xtor|ns_mchannel|ns_source|ns_campaign|ns_linkname|ns_fee|taid|ito|sr_share|"
    r"outputtype|amp|__twitter_impression|s_cid|wt_mc|wt\.mc_id|mkt_tok|spm|"
    r"feedtype|feedname|traffic_source|ref|icid|ncid|guccounter|guce_referrer|"
    r"guce_referrer_sig|_hsenc|_hsmi|mbid|soc_src|soc_trk|fb_ref|fb_source|fb_action_ids|"
    r"oly_enc_id|oly_anon_id|vero_id|rb_clickid|wickedid)$",
    re.IGNORECASE,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_feed(body: bytes, *, url: str, feed_id: str, feed_name: str,
               headers: Mapping[str, str] | None = None,
               max_entries: int = MAX_ENTRIES) -> list[Entry]:
    """Parse a feed body; raise ParseError naming `url` when it yields no entries and is no feed.
    Only the first `max_entries` entries are read (feeds list the newest first): the document
    is cut before the parser sees more items than that, and whatever the parser still yields
    (unclosed items nest, a cut can land anywhere) is cut again."""
    return read_feed(body, url=url, feed_id=feed_id, feed_name=feed_name, headers=headers,
                     max_entries=max_entries).entries()[1]


def read_feed(body: bytes, *, url: str, feed_id: str, feed_name: str,
              headers: Mapping[str, str] | None = None,
              max_entries: int = MAX_ENTRIES) -> Read:
    """`parse_feed` in two steps: the body parsed, then (`Read.entries`) its entries made,
    all of them or only those not known already."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    if _looks_like_json(body, headers.get("content-type", "")):
        made = _parse_json_feed(body, url=url, feed_id=feed_id, feed_name=feed_name)
        return Read(url, feed_id, source=url, lang=None, items=[], ids=[],
                    max_entries=max_entries, made=made[:max_entries])
    body = _first_items(body, max_entries)
    parsed = _feedparser(body, headers, url)
    source = feed_name or _clean_text(parsed.feed.get("title", "")) or url
    feed_lang = parsed.feed.get("language") or headers.get("content-language")
    items = parsed.entries
    unreadable = None
    if parsed.get("bozo") or not parsed.get("version"):
        unreadable = str(parsed.get("bozo_exception") or "no feed found")
    return Read(url, feed_id, source, feed_lang, items, [_given_id(e, url) for e in items],
                max_entries, unreadable=unreadable)


def _raw_texts(e: Any) -> list[str]:
    """An item's summary and contents as the feed wrote them (markup and all)."""
    return [e.get("summary") or "",
            *(c.get("value") or "" for c in e.get("content") or ())]


@dataclass
class Read:
    """A parsed feed whose entries are not made yet. Making one (its text cleaned, its
    language detected) costs more than feedparser spent on it, and a feed that changed
    mostly lists entries taken in before: those need not be made again."""

    url: str
    feed_id: str
    source: str
    lang: str | None
    items: list[Any]                      # feedparser's entries
    ids: list[tuple[str, str | None]]     # each one's guid and canonical link
    max_entries: int
    made: list[Entry] | None = None       # a JSON Feed's, made as read
    unreadable: str | None = None         # feedparser's complaint, if it had one

    @cached_property
    def boilerplate(self) -> frozenset[str]:
        """The pieces most of its items repeat: looked for only when an entry is made (a
        changed feed lists mostly entries taken in before)."""
        sample = self.items[:BOILERPLATE_SAMPLE]
        return boilerplate([" ".join(_raw_texts(e)) for e in sample], [_named(e) for e in sample])

    @property
    def given_ids(self) -> list[str]:
        """The entry ids told without making the entries: their guid, else their link."""
        return [given for guid, link in self.ids if (given := guid or link)]

    def entries(self, known: Collection[str] = ()) -> tuple[int, list[Entry]]:
        """How many distinct entries the feed lists (up to max_entries), and those whose id
        is not in `known`, made; an entry with neither guid nor link is always made (its id
        is its text's hash). Entries with no title nor text are not counted (a known one was
        not empty when taken in, and is). Raises ParseError when there is none and the
        document is no feed."""
        if self.made is not None:
            return len(self.made), [e for e in self.made if e.entry_id not in known]
        taken: set[str] = set()
        out: list[Entry] = []
        for e, (guid, link) in zip(self.items, self.ids, strict=True):
            if len(taken) >= self.max_entries:
                break
            given = guid or link
            if given is not None and given in known:
                taken.add(given)
                continue
            entry = _from_feedparser(e, guid, link, self.feed_id, self.source, self.lang,
                                     self.boilerplate)
            if entry.entry_id not in taken and (entry.title or entry.summary):
                taken.add(entry.entry_id)
                out.append(entry)
        if not taken and self.unreadable is not None:
            raise ParseError(self.url, f"not a readable feed: {self.unreadable}")
        return len(taken), out


_XML_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>")


def _feedparser(body: bytes, headers: dict[str, str], url: str) -> Any:
    """feedparser on bytes, never letting its own failures escape unnamed. (6.0.x raises
    UnicodeDecodeError on a non-UTF-8 byte inside the XML declaration's encoding: read the
    document once more without the declaration, letting it sniff the encoding.)"""
    attempts = [body]
    if _XML_DECLARATION.match(body):
        attempts.append(_XML_DECLARATION.sub(b"", body, count=1))
    error: Exception | None = None
    for attempt in attempts:
        try:
            # Never hand feedparser a str or bytes: it treats them as a URL or a file name.
            return feedparser.parse(io.BytesIO(attempt), response_headers=headers,
                                    sanitize_html=False, resolve_relative_uris=False)
        except Exception as exc:   # feedparser bugs on hostile input: named, then refused
            error = exc
    raise ParseError(url, f"feedparser failed: {type(error).__name__}: {error}")


def _first_items(body: bytes, limit: int) -> bytes:
    """The document up to its `limit`-th item, and its closing tags: cut where item
    `limit + 1` opens (closed or not, `<item/>` too). feedparser's time grows faster than
    linearly with the number of items (minutes for 100,000), so a hostile feed must not reach
    it whole."""
    starts = _ITEM_START.finditer(body)
    cut = next(islice(starts, limit, None), None)
    if cut is None:
        return body
    last = deque(_ITEM_END.finditer(body, cut.start()), maxlen=1)   # the document's last
    if last:                                                        # item end, if closed
        return body[:cut.start()] + body[last[0].end():]
    end = _DOCUMENT_END.search(body, max(cut.start(), len(body) - 4096))
    return body[:cut.start()] + (body[end.start():] if end else b"")


def _looks_like_json(body: bytes, content_type: str) -> bool:
    if "json" in content_type.lower():
        return True
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def item_text(title: str, summary: str | None, content: str | None) -> tuple[str, str]:
    """The title and text newswatch reads of an item, the same for a polled entry and an
    offline JSONL line: markup removed, entities decoded, spaces collapsed; the summary
    followed by the full content when that says more (a stub description such as "Follow our
    live coverage" and the news in content:encoded), the content alone when it contains the
    summary; capped."""
    text, full = _clean_text(summary or ""), _clean_text(content or "")
    if full and full not in text:
        text = full if not text or text in full else f"{text} {full}"
    return _clean_text(title)[:MAX_TITLE], text[:MAX_SUMMARY]


def _texts(e: Any, boiler: frozenset[str]) -> tuple[str, str]:
    """An item's title and text, less the pieces of `boiler`."""
    title, link = _named(e)
    raw, *contents = _raw_texts(e)
    content = " ".join(without_boilerplate(c, boiler, title, link) for c in contents if c)
    return item_text(title, without_boilerplate(raw, boiler, title, link), content)


def _named(e: Any) -> tuple[str, str]:
    """An item's title and link as its feed wrote them."""
    return e.get("title") or "", e.get("link") or ""


def _given_id(e: Any, url: str) -> tuple[str, str | None]:
    """An entry's guid ("" if none) and canonical absolute link."""
    return (e.get("id") or "").strip(), _first_link(e, url)


def _from_feedparser(e: Any, guid: str, link: str | None, feed_id: str, source: str,
                     feed_lang: str | None, boiler: frozenset[str] = frozenset()) -> Entry:
    """An item as an Entry; without the feed's boilerplate when it has a guid or link (an
    item with neither is known by its text's hash, which must not change with its feed's
    other items) and something else to say (an untitled item is not dropped for it)."""
    title, summary = _texts(e, boiler if guid or link else frozenset())
    if boiler and not (title or summary):
        title, summary = _texts(e, frozenset())
    hint = (e.get("title_detail") or {}).get("language") or \
        (e.get("summary_detail") or {}).get("language") or feed_lang
    published = None
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: FeedParserDict.get aliases updated->published with a DeprecationWarning
        if value := dict.get(e, key):
            published = datetime.fromtimestamp(calendar.timegm(value), UTC)
            break
    return Entry(feed_id, guid or link or _content_id(title, summary), title, summary, link,
                 published, source, detect(title, summary, hint))


def _first_link(e: Any, base: str) -> str | None:
    candidates = [e.get("link")]
    candidates += [lk.get("href") for lk in e.get("links", ())
                   if lk.get("rel", "alternate") == "alternate"]
    if e.get("guidislink"):
        candidates.append(e.get("id"))
    for href in candidates:
        if href and (link := _absolute(base, href)):
            return link
    return None


def _absolute(base: str, href: str) -> str | None:
    """The canonical absolute URL of a link; None when it is broken, or relative to a broken
    base (e.g. "http://[bad", in the link or the feed's own URL: found by the fuzzer)."""
    try:
        absolute = urljoin(base, href.strip())
    except ValueError:
        absolute = href       # an absolute link needs no base; canonical_url refuses the rest
    return canonical_url(absolute)


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
    feed_lang = doc.get("language") if isinstance(doc.get("language"), str) else None
    entries = []
    for item in items:
        if not isinstance(item, dict):
            continue    # one malformed item must not cost the others
        entries.append(_from_json_item(item, base, feed_id, source, feed_lang))
    if not entries and items:
        raise ParseError(url, "JSON Feed items are all malformed")
    return list(_dedup(entries))


def _from_json_item(item: dict[str, Any], base: str, feed_id: str, source: str,
                    feed_lang: str | None) -> Entry:
    def text(key: str) -> str:
        value = item.get(key)
        return value if isinstance(value, str) else ""

    raw_link = text("url") or text("external_url")
    link = _absolute(base, raw_link) if raw_link else None
    title, summary = item_text(text("title"), text("summary"),
                               text("content_html") or text("content_text"))
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
                 published, source, detect(title, summary, text("language") or feed_lang))


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
    return " ".join(text.replace("\x00", "").split())    # as re's \s+ -> " ", 4x faster


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
    return urlunsplit((scheme, host, _canonical_path(parts.path), urlencode(query, doseq=True),
                       ""))


_AMP_PATH = re.compile(r"(?:/amp(?=/|$)|\.amp(?=\.html?$|$))", re.IGNORECASE)


def _canonical_path(path: str) -> str:
    """The page's path without its AMP variant marks (`/amp/`, `/amp`, `.amp.html`) and
    without a trailing slash (but the root's)."""
    path = _AMP_PATH.sub("", path) or "/"
    if path.startswith("/amp/"):
        path = path[4:]
    return path.rstrip("/") or "/"
