"""OPML subscription lists in and out, categories kept.

Reading is listparser's (it copes with the OPML that real readers export: nested folders,
`category` attributes, Google Reader-era tags, missing heads); writing is ours, OPML 2.0 with one
nested outline per category path. A category is a path such as `Middle East/Gulf`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from xml.etree import ElementTree

from .errors import NewswatchError


class OpmlError(NewswatchError):
    """An OPML file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class OpmlFeed:
    url: str
    title: str | None = None
    categories: tuple[str, ...] = field(default=())
    site: str | None = None            # the outline's htmlUrl: the publication's own page


def feed_url(url: str) -> str:
    """A feed URL as HTTP: `feed://host/path` and `feed:https://host/path` (the feed: scheme
    browsers and readers hand out) mean http(s)."""
    url = url.strip()
    lower = url.lower()
    if lower.startswith("feed:http://") or lower.startswith("feed:https://"):
        return url[5:]
    if lower.startswith("feed://"):
        return "http://" + url[7:]
    return url


def read_opml(data: bytes, origin: str) -> list[OpmlFeed]:
    """The feeds of an OPML document, in document order, each once (first title wins)."""
    import listparser

    try:
        result = listparser.parse(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OpmlError(f"{origin}: cannot read OPML: {exc}") from None
    if result.get("version", "") == "" and not result["feeds"]:
        raise OpmlError(f"{origin}: not an OPML subscription list")
    sites = _sites(data)
    out: dict[str, OpmlFeed] = {}
    for item in result["feeds"]:
        raw = (item.get("url") or "").strip()
        url = feed_url(raw)
        if not url or url in out:
            continue
        paths = {"/".join(part.strip() for part in path if part.strip())
                 for path in item.get("categories", [])}
        title = (item.get("title") or "").strip() or None
        out[url] = OpmlFeed(url, title, tuple(sorted(p for p in paths if p)), sites.get(raw))
    return list(out.values())


def _sites(data: bytes) -> dict[str, str]:
    """xmlUrl -> htmlUrl of every outline that has both (listparser does not keep htmlUrl).
    Python's expat refuses entity amplification, so a hostile OPML costs nothing here."""
    sites: dict[str, str] = {}
    try:
        for _, element in ElementTree.iterparse(io.BytesIO(data)):
            if element.tag == "outline":
                xml_url, html_url = element.get("xmlUrl"), element.get("htmlUrl")
                if xml_url and html_url and html_url.strip().lower().startswith("http"):
                    sites.setdefault(xml_url.strip(), html_url.strip())
            element.clear()
    except ElementTree.ParseError:
        pass                              # listparser read it leniently; no sites, then
    return sites


def write_opml(feeds: Iterable[OpmlFeed], title: str = "newswatch feeds") -> bytes:
    """OPML 2.0: each feed nested under its first category, the others in `category`."""
    root = ElementTree.Element("opml", version="2.0")
    head = ElementTree.SubElement(root, "head")
    ElementTree.SubElement(head, "title").text = title
    ElementTree.SubElement(head, "dateCreated").text = formatdate(usegmt=True)
    body = ElementTree.SubElement(root, "body")
    folders: dict[str, ElementTree.Element] = {}

    def folder(path: str) -> ElementTree.Element:
        if path not in folders:
            parent_path, _, name = path.rpartition("/")
            parent = folder(parent_path) if parent_path else body
            folders[path] = ElementTree.SubElement(parent, "outline", text=name, title=name)
        return folders[path]

    for feed in sorted(feeds, key=lambda f: (f.categories[:1], (f.title or f.url).lower())):
        parent = folder(feed.categories[0]) if feed.categories else body
        attrs = {"type": "rss", "text": feed.title or feed.url, "title": feed.title or feed.url,
                 "xmlUrl": feed.url}
        if feed.site:
            attrs["htmlUrl"] = feed.site
        if len(feed.categories) > 1:
            attrs["category"] = ",".join("/" + c for c in feed.categories[1:])
        ElementTree.SubElement(parent, "outline", attrs)
    ElementTree.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        root, encoding="unicode").encode() + b"\n"
