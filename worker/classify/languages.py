"""Words in other languages: which stemmer reads a word of a language, and the keys a query
term has in each language it could be written in.

A document's words are stemmed in its own language (Snowball, from PyStemmer: French, Spanish,
German, Arabic, Persian, Russian, Turkish and two dozen more) besides English; a query's bare
term is stemmed in every language of its script, each stem tagged with its language
(`fr:otag`). A term matches a word when they share a stem in some language: `otages` in a query
finds `otage` in a French report, `negotiations` still finds `negotiate` in an English one, and
a French stem never meets an Arabic word. Arabic words lose a leading conjunction (و، ف), the
article and the prepositions written onto it before the stemmer reads them (والرهائن، للرهائن،
بالرهائن، الرهائن and رهائن share a stem); Hebrew has no Snowball stemmer, so a word also
stands without its one-letter prefixes (ו ה ב ל מ ש כ: והחטופים is also החטופים and חטופים).
Ukrainian, Bulgarian and Macedonian words go through the Russian stemmer: query and text are
cut by the same rule, which is what a match needs."""

from __future__ import annotations

from functools import lru_cache

import Stemmer

# Language (ISO 639-1) -> Snowball algorithm.
SNOWBALL = {
    "fr": "french", "es": "spanish", "de": "german", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "tr": "turkish", "ro": "romanian", "sv": "swedish", "da": "danish",
    "no": "norwegian", "nb": "norwegian", "nn": "norwegian", "fi": "finnish",
    "hu": "hungarian", "ca": "catalan", "id": "indonesian", "ms": "indonesian",
    "cs": "czech", "pl": "polish", "lt": "lithuanian", "et": "estonian", "eu": "basque",
    "ga": "irish", "eo": "esperanto", "ru": "russian", "uk": "russian", "bg": "russian",
    "mk": "russian", "sr": "serbian", "ar": "arabic", "fa": "persian", "el": "greek",
    "hy": "armenian", "hi": "hindi", "ne": "nepali", "ta": "tamil", "yi": "yiddish",
}
HEBREW = "he"
_HEBREW_PREFIXES = frozenset("והבלמשכ")
_ARABIC_CONJUNCTIONS = ("و", "ف")


def script(word: str) -> str:
    """The writing system of a word's first letter: latin, arabic, hebrew, cyrillic, greek,
    armenian, devanagari, tamil, or other."""
    for char in word:
        if not char.isalpha():
            continue
        cp = ord(char)
        if cp < 0x0250 or 0x1E00 <= cp < 0x1F00:
            return "latin"
        if 0x0370 <= cp < 0x0400 or 0x1F00 <= cp < 0x2000:
            return "greek"
        if 0x0400 <= cp < 0x0530:
            return "cyrillic"
        if 0x0530 <= cp < 0x0590:
            return "armenian"
        if 0x0590 <= cp < 0x0600 or 0xFB1D <= cp < 0xFB50:
            return "hebrew"
        if 0x0600 <= cp < 0x0780 or 0x08A0 <= cp < 0x0900 or 0xFB50 <= cp < 0xFF00:
            return "arabic"
        if 0x0900 <= cp < 0x0980:
            return "devanagari"
        if 0x0B80 <= cp < 0x0C00:
            return "tamil"
        return "other"
    return "other"


_SCRIPT_OF = {
    "arabic": "arabic", "persian": "arabic", "russian": "cyrillic", "serbian": "cyrillic",
    "greek": "greek", "armenian": "armenian", "hindi": "devanagari", "nepali": "devanagari",
    "tamil": "tamil", "yiddish": "hebrew",
}
# The algorithms whose stems a query term gets, by the term's script. Keys are tagged with
# the algorithm, not the language, so that Norwegian `nb` and `no`, or Ukrainian and Russian
# (one rule), meet.
_BY_SCRIPT: dict[str, tuple[str, ...]] = {}
for _algorithm in dict.fromkeys(SNOWBALL.values()):
    _script = _SCRIPT_OF.get(_algorithm, "latin")
    _BY_SCRIPT[_script] = (*_BY_SCRIPT.get(_script, ()), _algorithm)

_stemmers: dict[str, Stemmer.Stemmer] = {}


def _stemmer(algorithm: str) -> Stemmer.Stemmer:
    found = _stemmers.get(algorithm)
    if found is None:
        found = _stemmers[algorithm] = Stemmer.Stemmer(algorithm, 0)    # no cache: as text.py
    return found


def stemmed(lang: str, word: str) -> tuple[str, ...]:
    """The tagged keys a (folded) word has as a word of `lang`: its stem, or for Hebrew the
    word and its forms without prefixes. Empty for a language newswatch cannot stem."""
    if lang == HEBREW:
        return tuple(f"{HEBREW_TAG}:{form}" for form in _hebrew_forms(word))
    algorithm = SNOWBALL.get(lang)
    return (_stem_key(algorithm, word),) if algorithm else ()


def _stem_key(algorithm: str, word: str) -> str:
    if algorithm == "arabic":
        word = _arabic_base(word)
    return f"{algorithm}:{_stemmer(algorithm).stemWord(word)}"


# The article and the prepositions written onto it, longest first (Larkey's light10 set).
_ARABIC_ARTICLES = ("وال", "بال", "كال", "فال", "لل", "ال")


def _arabic_base(word: str) -> str:
    """A word without a leading conjunction and article: Snowball's Arabic rules decide
    what to cut by the word's length *with* them, so `الرهائن` and `رهائن` got two stems."""
    if len(word) > 3 and word.startswith(_ARABIC_CONJUNCTIONS) and \
            word[1:].startswith(_ARABIC_ARTICLES):
        word = word[1:]
    for article in _ARABIC_ARTICLES:
        if word.startswith(article) and len(word) - len(article) >= 3:
            return word[len(article):]
    if len(word) > 4 and word.startswith("و"):       # "and", written onto the word (not ف:
        return word[1:]                                # فلسطين, فرنسا begin with it)
    return word


def _hebrew_forms(word: str) -> tuple[str, ...]:
    forms = [word]
    for n in range(1, 4):          # up to three prefix letters (וכש, ומה), keeping two
        if len(word) - n < 2 or word[n - 1] not in _HEBREW_PREFIXES:
            break
        forms.append(word[n:])
    return tuple(forms)


@lru_cache(maxsize=50_000)
def term_keys(word: str) -> dict[str, str]:
    """A query term's tagged stem for each stemmer of its script (by the stemmer's tag: a
    text in one language is looked up with one key). Hebrew: the term as written; a Hebrew
    text's words carry their prefix-less forms."""
    kind = script(word)
    keys = {algorithm: _stem_key(algorithm, word) for algorithm in _BY_SCRIPT.get(kind, ())}
    if kind == "hebrew":
        keys[HEBREW_TAG] = f"{HEBREW_TAG}:{word}"
    return keys


HEBREW_TAG = "hebrew"


def tag(lang: str | None) -> str | None:
    """The tag of the stems a text in `lang` gets (its stemmer), or None (English, unknown,
    or a language newswatch does not stem)."""
    if lang == HEBREW:
        return HEBREW_TAG
    return SNOWBALL.get(lang) if lang else None


def known(lang: str | None) -> bool:
    """Whether words of this language get stems of their own."""
    return tag(lang) is not None
