"""`newswatch feeds import|export`: the config's feed list as OPML, both ways.

Imported feeds go into the OPML file that the config lists (its first `- opml:` entry), so the
YAML a person wrote is never rewritten; with no such entry, `feeds.opml` is created beside the
config and one line naming it is added to the config's `feeds:` list. Nothing is written
unless the config still loads afterwards; a feed already configured is not added twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from . import files
from .config import Config, load_config
from .errors import ConfigError, NewswatchError
from .opml import OpmlFeed, read_opml, write_opml
from .progress import progress

MANAGED = "feeds.opml"


@dataclass
class ImportResult:
    target: Path
    added: list[OpmlFeed] = field(default_factory=list)
    known: list[OpmlFeed] = field(default_factory=list)
    skipped: list[tuple[OpmlFeed, str]] = field(default_factory=list)
    config_edited: bool = False


def export_opml(config: Config) -> bytes:
    return write_opml((OpmlFeed(f.url, f.name, f.categories, f.site) for f in config.feeds),
                      title=f"newswatch feeds ({config.path.name})")


def import_opml(config: Config, data: bytes, origin: str) -> ImportResult:
    """Add the OPML's feeds that are not configured yet; see the module docstring."""
    incoming = read_opml(data, origin)
    text = config.path.read_text(encoding="utf-8")
    listed = _listed_opml(text)
    target = config.resolve_path(listed or MANAGED)
    result = ImportResult(target)
    known = {_same(f.url) for f in config.feeds}
    managed = read_opml(target.read_bytes(), str(target)) if target.exists() else []
    known |= {_same(f.url) for f in managed}
    for feed in progress(incoming, total=len(incoming), desc="import", unit="feed"):
        problem = _problem(feed.url)
        if problem:
            result.skipped.append((feed, problem))
        elif _same(feed.url) in known:
            result.known.append(feed)
        else:
            known.add(_same(feed.url))
            result.added.append(feed)
    if not result.added:
        return result
    new_config = text if listed else _add_opml_entry(text, MANAGED, config.path)
    result.config_edited = new_config != text
    old_opml = target.read_bytes() if target.exists() else None
    files.replace(target, write_opml([*managed, *result.added]))
    files.replace(config.path, new_config.encode())
    try:
        load_config(config.path)
    except ConfigError as exc:              # put both files back as they were
        files.replace(config.path, text.encode())
        if old_opml is None:
            target.unlink()
        else:
            files.replace(target, old_opml)
        raise NewswatchError("import undone, the config would not load: "
                             + "; ".join(exc.problems)) from None
    return result


def _problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        return f"not an http(s) URL: {url!r}"
    if not parts.hostname:
        return f"no host in {url!r}"
    return None


def _same(url: str) -> str:
    """The form two spellings of one feed URL share (scheme and host case, default port)."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, 80, 443) else None
    netloc = f"{host}:{port}" if port else host
    return f"{parts.scheme.lower()}://{netloc}{parts.path or '/'}" + \
        (f"?{parts.query}" if parts.query else "")


def _listed_opml(text: str) -> str | None:
    data = yaml.safe_load(text) or {}
    for entry in data.get("feeds") or ():
        if isinstance(entry, dict) and isinstance(entry.get("opml"), str):
            return str(entry["opml"])
    return None


def _add_opml_entry(text: str, name: str, path: Path) -> str:
    """The config text with `- opml: NAME` added to its `feeds:` list, all else untouched."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise NewswatchError(f"{path}: the config is not a mapping")
    pairs = root.value if root is not None else []
    feeds = next((v for k, v in pairs if k.value == "feeds"), None)
    entry = f"opml: {name}"
    if feeds is None:
        return text.rstrip("\n") + f"\nfeeds:\n  - {entry}\n"
    if isinstance(feeds, yaml.SequenceNode) and feeds.value and not feeds.flow_style:
        lines = text.splitlines(keepends=True)
        first = feeds.value[0].start_mark
        line = lines[first.line]
        dash = line.rfind("-", 0, first.column)
        lines.insert(first.line, f"{line[:dash]}- {entry}\n")
        return "".join(lines)
    if isinstance(feeds, yaml.SequenceNode) and feeds.flow_style:
        opening = feeds.start_mark.index + 1
        joiner = ", " if feeds.value else ""
        return f"{text[:opening]}{{{entry}}}{joiner}{text[opening:]}"
    if isinstance(feeds, yaml.ScalarNode) and feeds.value in ("", "~", "null"):
        start, end = feeds.start_mark.index, feeds.end_mark.index
        return f"{text[:start].rstrip()} [{{{entry}}}]{text[end:]}"
    raise NewswatchError(f"{path}:{feeds.start_mark.line + 1}: feeds: expected a list")


def describe(result: ImportResult) -> list[str]:
    lines = [f"imported {len(result.added)} new feeds into {result.target}"
             + (f" ({len(result.known)} already configured)" if result.known else "")]
    if result.config_edited:
        lines.append(f"added '- opml: {result.target.name}' to the config's feeds")
    for feed, why in result.skipped:
        lines.append(f"skipped {feed.title or feed.url}: {why}")
    return lines
