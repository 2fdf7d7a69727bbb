"""A feed's boilerplate: the pieces of its items' text (paragraphs, lines, " - " parts,
sentences) that most of its items repeat word for word ("Subscribe to our channel: ..."). Each
one is about no item, yet shared words are what makes two reports one story, and every alert
would carry it. Found among the first BOILERPLATE_SAMPLE items with str.split (a regular
expression over their markup cost a quarter of what parsing the feed did).

A footer can name its item ('The post <a href="LINK">TITLE</a> appeared first on Site.', as a
popular WordPress SEO plugin writes by default): there the item's own link and title (as markup
writes it, and as it is) stand as marks, and it is the same piece in every item.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

_SEPARATORS = ("</p>", "<br>", "<br/>", "<br />", "\n", " - ", " \u2013 ", " \u2014 ", " | ",
               ". ")
BOILERPLATE_SAMPLE = 12
BOILERPLATE_SHARE = 0.5       # of those items, and at least BOILERPLATE_ITEMS of them
BOILERPLATE_ITEMS = 3
BOILERPLATE_MIN_CHARS = 8     # shorter pieces ("Video", "AP") are left alone


def boilerplate(texts: Sequence[str], named: Sequence[tuple[str, str]] = ()
                ) -> frozenset[str]:
    """The pieces that at least BOILERPLATE_SHARE of a feed's first BOILERPLATE_SAMPLE items
    repeat, and at least BOILERPLATE_ITEMS of them: none for a feed of fewer items. `named`:
    each item's title and link, marked where its text names them (`_marked`)."""
    texts = texts[:BOILERPLATE_SAMPLE]
    need = max(BOILERPLATE_ITEMS, BOILERPLATE_SHARE * len(texts))
    if len(texts) < need:
        return frozenset()
    counts: dict[str, int] = {}
    for i, text in enumerate(texts):
        for piece in set(_pieces(_marked(text, *named[i])[0] if i < len(named) else text)):
            if len(piece) >= BOILERPLATE_MIN_CHARS:
                counts[piece] = counts.get(piece, 0) + 1
    return frozenset(piece for piece, n in counts.items() if n >= need)


def _pieces(text: str) -> list[str]:
    pieces = [text]
    for sep in _SEPARATORS:
        pieces = [part for piece in pieces for part in piece.split(sep)]
    return [piece.strip() for piece in pieces]


_MARKS = ("\ue000", "\ue001", "\ue002")


def _marked(text: str, title: str, link: str) -> tuple[str, list[tuple[str, str]]]:
    """`text` with the item's link and title marked, and what each mark stands for."""
    marks: list[tuple[str, str]] = []
    if any(mark in text for mark in _MARKS):
        return text, marks
    for mark, form in zip(_MARKS, (link, html.escape(title, quote=False), title), strict=True):
        if len(form) >= BOILERPLATE_MIN_CHARS and form in text:
            text = text.replace(form, mark)
            marks.append((mark, form))
    return text, marks


def without_boilerplate(text: str, pieces: frozenset[str], title: str = "",
                        link: str = "") -> str:
    """`text` (markup or not) less the pieces of `boilerplate`, the rest as it was."""
    if not pieces or not text:
        return text
    marked, marks = _marked(text, title, link)
    kept = _without(marked, pieces, 0)
    for mark, form in marks:
        kept = kept.replace(mark, form)
    return kept


def _without(text: str, pieces: frozenset[str], level: int) -> str:
    if level == len(_SEPARATORS):
        return "" if text.strip() in pieces else text
    sep = _SEPARATORS[level]
    parts = [_without(part, pieces, level + 1) for part in text.split(sep)]
    kept = sep.join(part for part in parts if part)
    if sep == ". " and kept and not parts[-1]:
        kept += "."             # a last sentence gone: the one before it keeps its stop
    return kept
