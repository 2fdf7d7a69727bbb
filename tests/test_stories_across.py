"""Reports in other languages: threaded by how much more alike they are than news usually is
(`worker.stories.background`), never folded, and never when undated.

The reports are written for these tests (invented events, in the style of wire copy)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT
from worker import stories
from worker.models import Entry
from worker.stories import background

T0 = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
TRUCE_OFFER = [     # one event in three languages, within five hours
    ("en", "Hamas accepts Egyptian proposal for a 50-day Gaza truce",
     "The group said it agreed to a plan by Cairo's mediators under which five hostages would "
     "be freed in the first week.", 0),
    ("fr", "Le Hamas accepte la proposition égyptienne d'une trêve de 50 jours à Gaza",
     "Le mouvement dit avoir accepté le plan des médiateurs du Caire, qui prévoit la libération "
     "de cinq otages la première semaine.", 3),
    ("ar", "حماس توافق على مقترح مصري لهدنة مدتها 50 يوما في غزة",
     "قالت الحركة إنها وافقت على خطة الوسطاء في القاهرة التي تنص على إطلاق سراح خمسة رهائن في "
     "الأسبوع الأول.", 5),
]
OTHER_EVENTS = [    # the same day, the same war and another one, in other languages
    ("es", "Un bombardeo israelí alcanza un hospital en el norte de Gaza",
     "Los médicos dijeron que al menos doce personas murieron cuando el edificio fue alcanzado "
     "durante la noche.", 4),
    ("de", "Sudans Armee und RSF vereinbaren Waffenruhe in Dschidda",
     "Saudi-arabische und amerikanische Vermittler sagten, beide Seiten hätten eine siebentägige "
     "Feuerpause unterzeichnet.", 2),
]


def reports(rows: list[tuple[str, str, str, int]]) -> list[tuple[str, Entry]]:
    return [(str(n), Entry(f"feed{n}", f"g{n}", title, summary, f"https://outlet{n}.example/{n}",
                           T0 + timedelta(hours=hours), f"Outlet {n}", lang))
            for n, (lang, title, summary, hours) in enumerate(rows)]


@pytest.fixture(scope="module")
def embed() -> Any:
    pytest.importorskip("onnxruntime", reason="needs newswatch[semantic]")
    from worker.classify.semantic import Embedder, SemanticUnavailable
    try:
        return stories.embedder_of(Embedder())
    except SemanticUnavailable as e:
        pytest.skip(str(e))


def test_one_event_in_three_languages_is_one_thread_and_other_news_is_not(embed: Any) -> None:
    placed = stories.cluster(reports(TRUCE_OFFER + OTHER_EVENTS), embed=embed)
    assert [a.thread for a in placed] == ["0", "0", "0", "3", "4"]
    # Threaded, never folded: the model alone cannot be sure two reports are one event.
    assert [a.outcome for a in placed[1:3]] == [stories.Outcome.RELATED] * 2
    assert placed[1].related_to == "0" and placed[2].related_to in {"0", "1"}


def test_undated_reports_in_other_languages_stay_apart(embed: Any) -> None:
    """With no date, this week's offer and last year's read alike to the model."""
    undated = [(key, replace(e, published=None)) for key, e in reports(TRUCE_OFFER)]
    assert [a.thread for a in stories.cluster(undated, embed=embed)] == ["0", "1", "2"]


def test_the_shipped_background_is_what_the_items_we_wrote_give(embed: Any) -> None:
    source = ROOT / background.SOURCE
    raw = source.read_bytes()
    header, rows = background.read(background.BANK.read_bytes())
    from worker.classify.semantic import MODEL_SHA256
    assert header["source_sha256"] == hashlib.sha256(raw).hexdigest(), \
        f"{source} changed since the background was built: python scripts/background.py"
    assert header["model"] == MODEL_SHA256
    items = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
    assert rows.shape == (len(items), 384)
    sample = range(0, len(items), 29)
    texts = [f"{items[i]['title']}. {items[i]['summary']}".strip(" .") for i in sample]
    fresh = background.read(background.build(texts, embed, model="", source_sha256=""))[1]
    assert np.allclose(fresh, rows[list(sample)], atol=0.02)


@pytest.fixture
def tiny_bank(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A background of 40 reports: 30 crowded around one direction, 10 around another."""
    rng = np.random.default_rng(7)
    crowd, sparse = np.eye(8)[0], np.eye(8)[1]
    rows = np.vstack([crowd + 0.1 * rng.standard_normal((30, 8)),
                      sparse + 0.8 * rng.standard_normal((10, 8))])
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    monkeypatch.setattr(background, "bank", lambda: rows)
    monkeypatch.setattr(background, "SHARE", 1 / 8)          # 5 of the 40
    background.usual.cache_clear()
    yield
    background.usual.cache_clear()


def int8(v: np.ndarray[Any, Any]) -> bytes:
    return bytes(np.clip(np.rint(v / np.linalg.norm(v) * 127), -127, 127).astype(np.int8))


def test_lift_discounts_how_alike_news_usually_is(tiny_bank: None) -> None:
    """Two reports in the crowded corner are more alike by cosine than two in the sparse one,
    and less by lift: in the crowd everything is that alike."""
    a, b = int8(np.eye(8)[0] + 0.3 * np.eye(8)[2]), int8(np.eye(8)[0] - 0.3 * np.eye(8)[2])
    c, d = int8(np.eye(8)[1] + 0.5 * np.eye(8)[3]), int8(np.eye(8)[1] - 0.5 * np.eye(8)[3])
    assert stories.semantic_cosine(a, b) > stories.semantic_cosine(c, d)
    assert background.usual(a) > background.usual(c)
    assert background.lift(a, b) < background.lift(c, d)
    assert background.lift(a, b) == pytest.approx(
        stories.semantic_cosine(a, b) - (background.usual(a) + background.usual(b)) / 2)


def test_a_damaged_background_is_named(tmp_path: Path) -> None:
    good = background.build(["x", "y"], lambda texts: [bytes([1, 2, 3, 4])] * len(texts),
                            model="m", source_sha256="s")
    header, rows = background.read(good)
    assert header["count"] == 2 and rows.shape == (2, 4)
    for bad, said in ((good[:-1], "7 bytes of vectors, the header says 2 of 4"),
                      (b"\x00\x01", "not a background file")):
        with pytest.raises(background.BackgroundError, match=said) as e:
            background.read(bad, tmp_path / "background.i8")
        assert "background.i8" in str(e.value)


def test_lifts_in_one_product_are_each_pairs_lift() -> None:
    """A report is compared with the recent stories' sketches in one product: the same
    figures as one by one, and a sketch of another dimension (another model's) never near."""
    import math

    rng = np.random.default_rng(7)
    dims = background.bank().shape[1]
    a, *others = (rng.integers(-127, 128, dims, dtype=np.int8).tobytes() for _ in range(6))
    other_model = rng.integers(-127, 128, dims // 2, dtype=np.int8).tobytes()
    got = background.lifts(a, [*others, other_model])
    assert got[:-1] == pytest.approx([background.lift(a, b) for b in others], abs=1e-6)
    assert got[-1] == -math.inf and background.lifts(a, []) == []
