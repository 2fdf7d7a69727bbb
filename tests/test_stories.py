"""Story clustering: the rule (pure), the same rule in Redis, and its bounds.

The reports below are written for these tests (invented outlets and wording, in the style of
wire copy); the labelled real items live in ../shared/eval and are measured by bench/stories.py.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import ROOT
from worker import pipeline, stories
from worker.classify import Classifier
from worker.config import load_config
from worker.models import Entry
from worker.runtime import make_classifier
from worker.store import Store

T0 = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
CONFIG = ROOT / "config" / "newswatch.yaml"

TRUCE = [   # one event, told by three outlets within hours
    ("Sudan's army and RSF agree to 72-hour truce at Jeddah talks",
     "Saudi and US mediators said the warring sides signed a short truce to let aid into "
     "Khartoum."),
    ("Warring Sudanese factions sign three-day ceasefire after Jeddah negotiations",
     "The army and the Rapid Support Forces agreed to halt fighting for 72 hours, Saudi Arabia "
     "and the United States said."),
    ("Khartoum truce: army and RSF commit to 72-hour pause brokered in Jeddah",
     "Mediators from Saudi Arabia and the US announced the three-day truce late on Sunday."),
]
SAME_TOPIC_OTHER_EVENT = (
    "Fighting rages in Darfur as El Fasher hospital is shelled",
    "Doctors said the main hospital in El Fasher was hit as RSF fighters advanced; the Jeddah "
    "truce does not cover Darfur.")
UNRELATED = ("Storm cuts power to thousands of homes in Wales",
             "Engineers worked through the night as winds of 90mph brought down lines.")


def story_ids(items: Any, **kw: Any) -> list[str]:
    """The story of each item (`newswatch stories`' "story"): folded together only when sure."""
    return [a.story for a in stories.cluster(items, **kw)]


def threads(items: Any, **kw: Any) -> list[str]:
    """The thread of each item: its story, or the story it was threaded under."""
    return [a.thread for a in stories.cluster(items, **kw)]


def entry(n: int, title: str, summary: str, when: datetime | None, link: str | None = None,
          ) -> Entry:
    return Entry(f"feed{n}", f"g{n}", title, summary, link or f"https://outlet{n}.example/{n}",
                 when, f"Outlet {n}")


def day_of_news() -> list[tuple[str, Entry]]:
    items = [entry(n, t, s, T0 + timedelta(hours=2 * n)) for n, (t, s) in enumerate(TRUCE)]
    items.append(entry(7, *SAME_TOPIC_OTHER_EVENT, T0 + timedelta(hours=3)))
    items.append(entry(8, *UNRELATED, T0 + timedelta(hours=1)))
    return [(str(n), e) for n, e in enumerate(items)]


def test_rewrites_of_one_event_are_one_story_and_other_events_are_not() -> None:
    got = threads(day_of_news())
    assert got[0] == got[1] == got[2]
    assert len({got[0], got[3], got[4]}) == 3


def test_the_same_words_days_later_are_a_new_story() -> None:
    title, summary = TRUCE[0]
    items = [("a", entry(1, title, summary, T0)),
             ("b", entry(2, title, summary, T0 + timedelta(days=5))),      # outside 72 h
             ("c", entry(3, title.replace("Jeddah", "renewed Jeddah"), summary,
                         T0 + timedelta(days=2)))]
    got = threads(items)
    assert got == ["a", "b", "a"]      # identical copy two days on still joins; five days: no
    # A looser rewrite is only close enough when close in time as well.
    loose = [("a", entry(1, *TRUCE[0], T0)), ("b", entry(2, *TRUCE[1], T0 + timedelta(days=2)))]
    assert threads(loose) == ["a", "b"]


def test_undated_reports_need_more_resemblance() -> None:
    dated = [(str(n), entry(n, t, s, T0 + timedelta(hours=n))) for n, (t, s) in
             enumerate(TRUCE[:2])]
    undated = [(str(n), entry(n, t, s, None)) for n, (t, s) in enumerate(TRUCE[:2])]
    assert len(set(threads(dated))) == 1
    assert len(set(threads(undated))) == 2
    same = [("a", entry(1, *TRUCE[0], None)), ("b", entry(2, *TRUCE[0], None))]
    assert threads(same) == ["a", "a"]


def test_words_every_story_uses_weigh_little() -> None:
    # Two reports sharing only the words of the week's running story ("Gaza ceasefire talks")
    # are different news once many stories of the window use those words.
    running = ["aid convoy reaches Rafah", "Qatar hosts envoys", "Egypt proposes new draft",
               "Hamas studies offer", "families protest in Tel Aviv", "UN urges restraint"]
    week = [(f"w{n}", entry(n, f"Gaza ceasefire talks: {topic}",
                            f"Report {n} on the running story: {topic}.",
                            T0 - timedelta(hours=n))) for n, topic in enumerate(running)]
    a = ("a", entry(20, "Gaza ceasefire talks: mediators meet in Cairo",
                    "Egyptian and Qatari mediators met Hamas officials on Sunday to discuss a "
                    "new proposal.", T0))
    b = ("b", entry(21, "Gaza ceasefire talks: strikes hit Khan Younis",
                    "Israeli strikes hit homes overnight, killing at least 12 people, health "
                    "officials said.", T0))
    got = threads([*week, a, b])
    assert len({got[-1], got[-2]}) == 2
    # Alone, with nothing else to compare them to, the shared words count as much as any.
    lone = [(k, replace(e, summary="")) for k, e in (a, b)]
    assert threads(lone) == ["a", "a"]


def test_words_the_topics_look_for_do_not_make_one_event() -> None:
    vocabulary = shipped_vocabulary()
    assert "hostag" in vocabulary.topical("Hostages freed") and \
        "mali" not in vocabulary.topical("Hostages freed in Mali")
    mali = ("a", entry(1, "Mali: kidnapped aid workers freed",
                       "The aid workers abducted in Mali were released.", T0))
    gaza = ("b", entry(2, "Gaza: kidnapped fishermen freed",
                       "The fishermen abducted in Gaza were released.", T0 + timedelta(hours=1)))
    # Every alert of a hostage-release topic says "kidnapped", "freed", "released": two
    # releases in two countries share nothing else, and stay two stories.
    assert threads([mali, gaza], vocabulary=vocabulary) == ["a", "b"]
    assert threads([mali, gaza]) == ["a", "a"]     # without the topics' words: merged
    again = ("c", entry(3, "Aid workers kidnapped in Mali are free",
                        "Mali's government said the abducted aid workers were released.",
                        T0 + timedelta(hours=2)))
    assert threads([mali, gaza, again], vocabulary=vocabulary) == ["a", "b", "a"]


ROUNDS = [   # a truce's daily handovers: wire copy that differs in little but the round
    ("Hamas frees first group of hostages as Gaza truce holds",
     "Thirteen Israelis were handed to the Red Cross and taken into Egypt, as Israel released 39 "
     "Palestinian prisoners."),
    ("Gaza truce holds as Hamas frees second group of hostages",
     "Thirteen Israelis were handed to the Red Cross and taken into Egypt, as Israel released 39 "
     "more Palestinian prisoners."),
]


def test_reports_that_number_rounds_differently_are_two_events() -> None:
    first, second = ROUNDS
    items = [("a", entry(1, *first, T0)),
             ("b", entry(2, first[0].replace("frees", "releases"), first[1],
                         T0 + timedelta(hours=2))),
             ("c", entry(3, *second, T0 + timedelta(days=1))),
             ("d", entry(4, "Second group of hostages freed on day 2 of the truce", second[1],
                         T0 + timedelta(days=1, hours=1)))]
    got = story_ids(items)
    assert {got[2], got[3]}.isdisjoint({got[0], got[1]})     # never folded into the first round
    assert threads(items) == ["a", "a", "a", "a"]            # alerted, in the first round's thread
    # The same reports without their numbers are alike enough to be one story: the words are.
    bare = [(k, replace(e, title=e.title.replace("first ", "").replace("second ", "")))
            for k, e in items[:3]]
    assert threads(bare) == ["a", "a", "a"]


HOMECOMING = [   # a hostage freed one day, home the next: the second day's news is new news
    ("Aid worker Marta Lindqvist freed after 400 days held in the Sahel",
     "The Swedish aid worker, kidnapped in Niger in 2023, was handed to mediators on Monday and "
     "flown to Niamey."),
    ("Sahel kidnappers free Swedish aid worker Marta Lindqvist after 400 days",
     "Lindqvist was released on Monday, mediators said; she is in Niamey."),
    ("Freed aid worker Marta Lindqvist lands in Stockholm",
     "The Swedish aid worker, held for 400 days in the Sahel, landed in Stockholm on Tuesday "
     "after her release in Niger."),
    ("Marta Lindqvist, freed Sahel hostage, is home in Sweden",
     "Lindqvist, the Swedish aid worker held for 400 days, arrived in Stockholm on Tuesday."),
]


def homecoming(start: datetime = T0, first: int = 0) -> list[tuple[str, Entry]]:
    """HOMECOMING as four outlets' entries "a".."d": two on the day, two a day later."""
    return [(k, entry(first + n, *report, start + timedelta(hours=h)))
            for n, (k, report, h) in enumerate(zip("abcd", HOMECOMING, (0, 3, 24, 26),
                                                   strict=True))]


def shipped_vocabulary() -> stories.Vocabulary:
    return stories.Vocabulary(*make_classifier(load_config(CONFIG), False).vocabulary)


def test_reports_that_date_their_news_differently_are_two_events() -> None:
    items = homecoming()
    got = story_ids(items)
    assert {got[2], got[3]}.isdisjoint({got[0], got[1]})     # the homecoming is news of its own
    assert threads(items) == ["a", "a", "a", "a"]            # in the release's thread
    # Without their weekdays the words make it one story: release and homecoming alike.
    undated = [(k, replace(e, summary=e.summary.replace(" on Monday", "")
                           .replace(" on Tuesday", ""))) for k, e in items]
    assert threads(undated) == ["a", "a", "a", "a"]


def test_day_by_day_sequences_keep_their_days_apart() -> None:
    """tests/data/story_sequences.jsonl (ours): daily handovers, a week of talks, a release and
    the homecoming. No two days' events share a story; most copies of a day find each other."""
    rows = [json.loads(line) for line in
            (ROOT / "tests" / "data" / "story_sequences.jsonl").read_text().splitlines()]
    items = [(r["id"], entry(n, r["title"], r["summary"], datetime.fromisoformat(r["published"])))
             for n, r in enumerate(rows)]
    vocabulary = shipped_vocabulary()
    placed = dict(zip([r["id"] for r in rows], stories.cluster(items, vocabulary=vocabulary),
                      strict=True))
    same = [(a["story"] == b["story"], placed[a["id"]].story == placed[b["id"]].story,
             placed[a["id"]].thread == placed[b["id"]].thread)
            for a, b in itertools.combinations(rows, 2)]
    assert not any(folded and not true for true, folded, _ in same)      # nothing hidden
    found = sum(threaded for true, _, threaded in same if true)
    assert found / sum(true for true, _, _ in same) >= 0.9


def test_a_daily_roundup_is_a_story_a_day() -> None:
    # The same template every day ("key events, day N"): alike in every word but the day.
    days = [(f"d{n}", entry(n, f"Sudan war: list of key events, day {1_026 + n:,}",
                            "Here is where things stand as the war between the army and the RSF "
                            "goes on.", T0 + timedelta(days=n))) for n in range(3)]
    assert story_ids(days) == ["d0", "d1", "d2"]          # each day alerted
    assert threads(days) == ["d0", "d0", "d0"]            # in one thread
    unnumbered = [(k, replace(e, title=e.title.rpartition(",")[0])) for k, e in days]
    assert threads(unnumbered) == ["d0", "d0", "d0"]   # the words alone: one story


def test_what_a_report_numbers() -> None:
    assert stories.counted("Hamas frees 2nd group of hostages on the third day of the truce") \
        == {"group#2", "day#3"}
    assert stories.counted("Day 3: phase two talks, round 4") == {"day#3", "phase#2", "round#4"}
    assert stories.counted("The first of them; day 2024; 1,000 prisoners") == set()
    # A number written in groups is one number: "day 1,027" is not day 1 (nor is "day 1,028").
    assert stories.counted("Sudan war: key events, day 1,027") == {"day#1027"}
    assert stories.counted("on day 45, 500 people fled") == {"day#45"}
    assert stories.numbered_apart(stories.counted("War in Sudan, day 1,027"),
                                  stories.counted("War in Sudan, day 1 028"))
    # Weekdays and days of a month date what a report tells.
    assert stories.counted("freed on Monday; kidnapped on April 8, 2021") \
        == {"weekday#mon", "apr#8"}
    assert stories.counted("talks on 21st March") == stories.counted("March 21 talks") \
        == {"mar#21"}
    assert stories.counted("in May 2024 talks may resume") == set()     # a year; a verb
    assert stories.counted("the March was over by Friday 3rd") == {"weekday#fri"}
    assert stories.counted("a Good Friday Agreement for Sudan, the Sunday Times and the Mail on "
                           "Sunday report; Black Friday sales") == set()
    monday, tuesday = stories.counted("freed on Monday"), stories.counted("home on Tuesday")
    assert stories.numbered_apart(monday, tuesday)
    assert not stories.numbered_apart(monday, stories.counted("freed Monday, home Tuesday"))
    second, third = stories.counted("second group freed"), stories.counted("third group freed")
    assert stories.numbered_apart(second, third)
    recap = stories.counted("after the second group, a third group was freed")
    assert not stories.numbered_apart(second, recap)      # a report of both rounds
    assert not stories.numbered_apart(second, stories.counted("third day of talks"))
    assert not stories.numbered_apart(second, frozenset())


def test_word_folding() -> None:
    assert stories.terms("Four hostages freed") == stories.terms("4 hostage freed")
    assert stories.terms("Türkiye’s talks") == stories.terms("turkiye talk")
    assert "the" not in stories.terms("The talks") and "talk" in stories.terms("The talks")


def test_a_copy_of_a_known_page_joins_without_comparing() -> None:
    link = "https://wire.example/sudan-truce"
    items = [("a", entry(1, *TRUCE[0], T0, link)),
             ("b", entry(2, "Live: Sudan latest", "", T0 + timedelta(days=1), link))]
    assert threads(items) == ["a", "a"]


def test_member_round_trip_and_bounds() -> None:
    member = stories.Scorer(stories.fingerprint(entry(1, *TRUCE[0], T0)),
                            stories.DocFreq()).member
    back = stories.Member.loads(member.dumps())
    assert back.published == member.published and back.counted == frozenset()
    assert len(json.loads(member.dumps())) == 3       # numbering nothing: nothing more stored
    assert back.weights == pytest.approx(member.weights, abs=1e-4)
    assert sum(x * x for x in back.weights.values()) == pytest.approx(1.0, abs=1e-3)
    numbered = stories.Scorer(stories.fingerprint(entry(2, *ROUNDS[1], T0)),
                              stories.DocFreq()).member
    assert stories.Member.loads(numbered.dumps()).counted == {"group#2"}
    # A story is compared through its first copies only: a long-running story cannot drift.
    many = [(str(n), entry(n, TRUCE[0][0], TRUCE[0][1], T0 + timedelta(minutes=n)))
            for n in range(stories.MAX_MEMBERS + 5)]
    assert set(threads(many)) == {"0"}


# -- the same rule in Redis -----------------------------------------------------------------

def processor(store: Store) -> pipeline.Processor:
    """The processing stage on a real store, with the shipped topics' words and no model."""
    config = load_config(CONFIG)
    classifier = make_classifier(config, False)
    return pipeline.Processor(store, config, lambda: classifier)


def partition(ids: list[str]) -> list[int]:
    first: dict[str, int] = {}
    return [first.setdefault(i, len(first)) for i in ids]


def test_the_worker_decides_as_the_offline_command(store: Store) -> None:
    items = day_of_news()
    items += [(f"x{n}", entry(30 + n, t, s, T0 + timedelta(days=4, hours=n)))
              for n, (t, s) in enumerate(TRUCE)]                # the same event told again later
    items += [(f"r{n}", entry(40 + n, t, s, T0 + timedelta(days=n, hours=1)))
              for n, (t, s) in enumerate(ROUNDS)]               # alike, but numbered apart
    items += [(f"h{k}", e) for k, e in homecoming(T0 + timedelta(days=2), first=50)]
    proc = processor(store)
    placed = [pipeline.assign_story(proc, store.entries.key(e), e) for _, e in items]
    offline = stories.cluster(items, vocabulary=stories.Vocabulary(*proc.classifier().vocabulary))
    assert partition([a.story for a in placed]) == partition([a.story for a in offline])
    assert partition([a.thread for a in placed]) == partition([a.thread for a in offline])
    assert [a.outcome for a in placed] == [a.outcome for a in offline]
    live = [a.thread for a in placed]
    assert live[0] == live[1] == live[2] and len({live[0], live[3], live[4]}) == 3
    assert live[0] not in live[5:]          # four days on: outside the window, a new story
    story = [a.story for a in placed]
    rounds, home = story[-6:-4], story[-4:]
    assert rounds[0] != rounds[1]
    assert {home[2], home[3]}.isdisjoint({home[0], home[1]})     # dated apart
    copies = store.stories.entries(story[0])
    assert TRUCE[0][0] in {e.title for e in copies.values()}


def test_concurrent_copies_make_one_story(store: Store) -> None:
    proc = processor(store)
    items = [entry(n, t, s, T0 + timedelta(minutes=n)) for n, (t, s) in enumerate(TRUCE)] * 3
    got: list[tuple[Entry, stories.Assignment]] = []
    barrier = threading.Barrier(len(items))

    def assign(e: Entry) -> None:
        barrier.wait()
        got.append((e, pipeline.assign_story(proc, store.entries.key(e), e)))

    threads = [threading.Thread(target=assign, args=(e,)) for e in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(items) and len({a.thread for _, a in got}) == 1  # one thread
    # Each page is one story whoever decided first (two pages may share one when a rewrite is
    # sure enough to be folded: which, depends on the order the race gave).
    for link in {e.link for e in items}:
        assert len({a.story for e, a in got if e.link == link}) == 1, link


def test_a_decision_on_stale_reads_is_not_recorded(store: Store) -> None:
    # Two workers at once: both read before either writes. The one that commits second read
    # an index the first has changed since, so it writes nothing and decides again.
    proc = processor(store)
    first, second = (entry(n, t, s, T0 + timedelta(minutes=n)) for n, (t, s) in
                     enumerate(TRUCE[:2]))
    fp = stories.fingerprint(second, None, stories.Vocabulary(*proc.classifier().vocabulary))
    scorer = stories.Scorer(fp, stories.DocFreq(1, dict.fromkeys(fp.words, 1)))
    with store.stories.claim(second.link, scorer.lookup_words()) as claim:
        assert claim.read(stories.candidates) == (None, [])       # nothing yet
        # the other worker
        story = pipeline.assign_story(proc, store.entries.key(first), first)
        assert not claim.commit("s-stale", second, entry_key=store.entries.key(second),
                                words=sorted(fp.words), signature=scorer.member.dumps(),
                                index=scorer.lookup_words())
    assert not store.r.exists(store.k("story", "s-stale"))
    again = pipeline.assign_story(proc, store.entries.key(second), second)
    assert again.thread == story.story and again.related_to == story.story   # decided again
    assert len(store.stories.entries(story.story)) == 1


def test_index_memory_is_bounded(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.store.stories.STORIES_PER_WORD", 5)
    proc = processor(store)
    for n in range(12):      # twelve different stories that all use "jeddah"
        e = entry(n, f"Jeddah event {n}: item{n} word{n} other{n}", "", T0)
        pipeline.assign_story(proc, store.entries.key(e), e)
    assert store.r.zcard(store.k("stok", "jeddah")) <= 6
    for n in range(12):      # and one story with twelve copies keeps eight fingerprints
        e = entry(100 + n, *TRUCE[0], T0 + timedelta(minutes=n))
        story = pipeline.assign_story(proc, store.entries.key(e), e).story
    assert store.r.llen(store.k("storysig", story)) == stories.MAX_MEMBERS
    for key in store.r.scan_iter(store.k("*")):
        assert store.r.ttl(key) > 0, key        # everything leaves with the window


def model_or_skip() -> Any:
    pytest.importorskip("onnxruntime", reason="needs newswatch[semantic]")
    from worker.classify.semantic import Embedder, SemanticUnavailable
    try:
        return Embedder()
    except SemanticUnavailable as e:
        pytest.skip(str(e))


def test_semantic_evidence_brings_paraphrases_together() -> None:
    embed = stories.embedder_of(model_or_skip())
    para = [("a", entry(1, "Envoys shuttle between Khartoum's rival generals to halt the war",
                        "Saudi and American diplomats pressed the army and RSF to stop the "
                        "fighting in Sudan.", T0)),
            ("b", entry(2, "Mediators press Sudan's warring generals to stop fighting",
                        "Diplomats from Riyadh and Washington went back and forth between the "
                        "army and the paramilitary RSF.", T0 + timedelta(hours=3))),
            ("c", entry(3, *UNRELATED, T0 + timedelta(hours=1)))]
    assert threads(para, embed=embed) == ["a", "a", "c"]
    # Its vectors are kept as int8: a cosine moves by about 0.01 at most.
    texts = [TRUCE[0][0], TRUCE[1][0], UNRELATED[0]]
    exact = model_or_skip().embed(texts)
    small = embed(texts)
    assert len(small[0]) == 384
    for i, j in ((0, 1), (0, 2)):
        assert stories.semantic_cosine(small[i], small[j]) == pytest.approx(
            float(exact[i] @ exact[j]), abs=0.01)


def test_the_model_does_not_join_what_is_numbered_apart() -> None:
    # To the model two days' handovers read alike (cosine ~0.9); their numbers do not.
    embed = stories.embedder_of(model_or_skip())
    items = [(str(n), entry(n, t, s, T0 + timedelta(days=n))) for n, (t, s) in enumerate(ROUNDS)]
    a, b = embed([stories.embedding_text(e) for _, e in items])
    assert stories.semantic_cosine(a, b) > 0.85
    assert story_ids(items, embed=embed) == ["0", "1"]
    # Nor a release and the homecoming a day later, dated apart ("on Monday", "on Tuesday").
    got = story_ids(homecoming(), embed=embed)
    assert {got[2], got[3]}.isdisjoint({got[0], got[1]})


SUDAN_PARAPHRASES = [
    ("Envoys shuttle between Khartoum's rival generals to halt the war",
     "Saudi and American diplomats pressed the army and RSF to stop the fighting in Sudan."),
    ("Mediators press Sudan's warring generals to stop fighting",
     "Diplomats from Riyadh and Washington went back and forth between the army and the "
     "paramilitary RSF."),
]


def test_the_model_speaks_for_the_same_story_only_within_a_day_or_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two paraphrases are one story the same day; two days apart they are two days' news
    of one process: the model's evidence has faded (were it to last, they would join)."""
    embed = stories.embedder_of(model_or_skip())

    def apart(hours: float) -> list[tuple[str, Entry]]:
        return [(str(n), entry(n, t, s, T0 + timedelta(hours=hours * n)))
                for n, (t, s) in enumerate(SUDAN_PARAPHRASES)]

    assert threads(apart(3), embed=embed) == ["0", "0"]
    assert threads(apart(48), embed=embed) == ["0", "1"]
    monkeypatch.setattr("worker.stories.decide.SEMANTIC_DAYS", 1e9)   # were it to last
    assert threads(apart(48), embed=embed) == ["0", "0"]


def test_the_model_says_nothing_for_an_undated_report_offline() -> None:
    """An undated report could be of any day: the model cannot tell this week's talks from
    last year's, so offline its resemblance does not thread it (in dev2 an undated report of
    an attack on soldiers was threaded under another attack in that country four years
    before). Dated, the same two paraphrases are one thread: the model carries them."""
    embed = stories.embedder_of(model_or_skip())
    (t0, s0), (t1, s1) = (
        ("Gunmen storm army post in northern Mali, killing nine troops",
         "The attack on the outpost near Gao began before dawn, officials said."),
        ("Nine soldiers dead after militants raid Malian base",
         "Insurgents overran the camp close to Gao early in the morning, the defence ministry "
         "said."))
    dated = [("0", entry(0, t0, s0, T0)), ("1", entry(1, t1, s1, T0 + timedelta(hours=3)))]
    undated = [dated[0], ("1", entry(1, t1, s1, None))]
    assert threads(dated, embed=embed) == ["0", "0"]
    assert threads(undated, embed=embed) == ["0", "1"]


def test_the_worker_uses_the_model_when_semantic_scoring_is_on(store: Store) -> None:
    model = model_or_skip()
    config = load_config(CONFIG)
    classifier = Classifier(config.topics, model)
    proc = pipeline.Processor(store, config, lambda: classifier)
    items = [entry(n, t, s, T0 + timedelta(hours=n)) for n, (t, s) in enumerate(TRUCE)]
    items.append(entry(7, *SAME_TOPIC_OTHER_EVENT, T0 + timedelta(hours=1)))
    classifier.classify_many([(e.title, e.summary) for e in items])    # as process_entries
    computed = model.computed
    placed = [pipeline.assign_story(proc, store.entries.key(e), e) for e in items]
    assert model.computed == computed     # the vectors classification made are used again
    got = [a.thread for a in placed]
    assert got[0] == got[1] == got[2] != got[3]
    members = [stories.Member.loads(raw) for story in dict.fromkeys(a.story for a in placed[:3])
               for raw in store.r.lrange(store.k("storysig", story), 0, -1)]
    assert len(members) == 3 and all(m.vector is not None and len(m.vector) == 384
                                     for m in members)
    offline = threads([(str(n), e) for n, e in enumerate(items)],
                      embed=stories.embedder_of(proc.classifier().embedder),
                      vocabulary=stories.Vocabulary(*proc.classifier().vocabulary))
    assert partition(got) == partition(offline)


def test_a_related_report_is_alerted_in_the_thread_of_the_first(store: Store) -> None:
    """Through the worker's fan-out on Redis: the first report starts a thread; a rewrite
    newswatch is not sure of is alerted too (never hidden), naming the first story and
    replying to its alert; a copy of the same page is folded, no alert."""
    from worker.models import Match

    proc = processor(store)
    match = [Match("ceasefire-talks", "Ceasefire talks", 1.0)]
    first, second = (entry(n, t, s, T0 + timedelta(hours=n)) for n, (t, s) in
                     enumerate(TRUCE[:2]))
    [a1] = pipeline.fan_out(proc, store.entries.key(first), first, match)
    [a2] = pipeline.fan_out(proc, store.entries.key(second), second, match)
    one, two = (store.records.load_alert(a) for a in (a1, a2))
    assert one is not None and two is not None
    assert one.alert.thread is None and one.alert.reply_to is None
    assert two.alert.thread == one.alert.story_id and two.alert.reply_to == a1
    assert two.alert.related is not None and two.alert.related.title == TRUCE[0][0]
    mirror = replace(first, feed_id="mirror")            # the same page from another feed
    assert pipeline.fan_out(proc, store.entries.key(mirror), mirror, match) == []


def test_a_story_decision_takes_few_round_trips(store: Store,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Each round trip to Redis waits for a core where a busy worker has few to spare: a
    decision reads what it needs (the candidates' copies and threads) together."""
    from redis.connection import AbstractConnection

    sent: list[int] = []
    send = AbstractConnection.send_packed_command

    def counted(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
        sent.append(1)
        send(self, *args, **kwargs)

    proc = processor(store)
    first, second, third = (entry(n, t, s, T0 + timedelta(hours=n)) for n, (t, s) in
                            enumerate(TRUCE))
    for e in (first, second):
        started = pipeline.assign_story(proc, store.entries.key(e), e)
    assert started.thread != started.story          # the second is threaded under the first
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)

    def trips(e: Entry) -> tuple[int, stories.Assignment]:
        sent.clear()
        placed = pipeline.assign_story(proc, store.entries.key(e), e)
        return len(sent), placed

    # the words' counts and the URL; the hold; the stories the words find; their copies and
    # threads; the copy recorded
    n, placed = trips(third)
    assert n == 5 and placed.thread == started.thread != placed.story
    # a copy of a page seen: the URL's story, then the copy recorded (answering its thread)
    n, placed = trips(replace(second, feed_id="mirror"))
    assert n == 2 and (placed.story, placed.thread) == (started.story, started.thread)
