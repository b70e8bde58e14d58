"""The classifier behind the offline fine-tune (local.textmodel) on synthetic data."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from local import textmodel
from local.textmodel import TextModel, TrainConfig, calibrate, fit, fit_calibrated, n_features_for

VOCAB = {
    "sport": ["goal", "match", "team", "coach", "league", "score", "striker", "referee"],
    "film": ["actor", "movie", "director", "cinema", "scene", "premiere", "studio", "script"],
    "tech": ["phone", "app", "chip", "laptop", "battery", "software", "update", "screen"],
}
FILLER = ["the", "a", "of", "and", "to", "in", "on", "with", "today", "new"]
# Steps this small for one epoch leave the model far short of the optimum: under-confident.
TIMID = TrainConfig(epochs=1, learning_rate=0.1)
# Large steps and no real penalty on noisy labels: over-confident, yet no probability underflows
# float32 (the default step size would, making ties of exact 0s and 1s).
BOLD = TrainConfig(epochs=3, learning_rate=3.0)


def synthetic(
    n: int, seed: int, noise: float = 0.0, topics: tuple[str, ...] = tuple(sorted(VOCAB))
) -> tuple[list[str], list[str]]:
    """Texts with 3 topic words of their label; a `noise` share of the labels are random instead."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.choice(topics)
        words = rng.sample(VOCAB[label], 3) + rng.sample(FILLER, 5)
        rng.shuffle(words)
        texts.append(f"{words[0]} {words[1]}\n" + " ".join(words[2:]))
        labels.append(rng.choice(topics) if rng.random() < noise else label)
    return texts, labels


def accuracy(model: TextModel, texts: list[str], labels: list[str]) -> float:
    predicted = [model.labels[i] for i in model.predict_proba(texts).argmax(axis=1)]
    return float(np.mean([p == t for p, t in zip(predicted, labels, strict=True)]))


def nll(model: TextModel, texts: list[str], labels: list[str]) -> float:
    proba = model.predict_proba(texts)
    picked = proba[np.arange(len(texts)), [model.labels.index(label) for label in labels]]
    return float(-np.log(picked).mean())


def test_learns_separable_topics_and_ranks_the_truth_first() -> None:
    # GIVEN texts whose topic words identify the label
    train_x, train_y = synthetic(300, seed=1)
    test_x, test_y = synthetic(100, seed=2)
    # WHEN the model is trained
    model = fit(train_x, train_y, TrainConfig(epochs=5))
    # THEN it labels unseen texts correctly and its probabilities are a distribution
    assert accuracy(model, test_x, test_y) >= 0.95
    proba = model.predict_proba(test_x)
    assert proba.shape == (100, 3)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_two_labels_give_two_probabilities_from_the_one_margin() -> None:
    # GIVEN two topics (the classifier then has one margin per text, not one per label)
    train_x, train_y = synthetic(200, seed=12, topics=("film", "sport"))
    test_x, test_y = synthetic(50, seed=13, topics=("film", "sport"))
    # WHEN the model is trained
    model = fit(train_x, train_y)
    # THEN each text gets a probability per label, the truth first
    assert model.labels == ["film", "sport"]
    assert model.predict_proba(test_x).shape == (50, 2)
    assert accuracy(model, test_x, test_y) >= 0.95


def test_a_single_label_is_always_the_answer() -> None:
    # GIVEN training texts that all carry the same label
    texts, _ = synthetic(20, seed=14)
    # WHEN the model is trained, saved and loaded
    model = fit(texts, ["sport"] * len(texts), TrainConfig(epochs=2))
    # THEN every text, seen or not, gets that label with certainty
    assert model.labels == ["sport"]
    assert np.array_equal(model.predict_proba(["anything at all", texts[0]]), np.ones((2, 1), dtype=np.float32))


def test_save_and_load_give_the_same_probabilities(tmp_path: Path) -> None:
    # GIVEN a trained model with a temperature
    texts, labels = synthetic(60, seed=3)
    model = fit(texts, labels, TrainConfig(epochs=3))
    model.temperature = 0.5
    # WHEN it is saved and loaded again
    model.save(tmp_path / "m")
    loaded = TextModel.load(tmp_path / "m")
    # THEN the loaded model answers exactly as the saved one
    assert loaded.labels == model.labels
    assert loaded.temperature == 0.5
    assert np.array_equal(loaded.predict_proba(texts[:5]), model.predict_proba(texts[:5]))


def test_load_refuses_a_model_saved_in_another_layout(tmp_path: Path) -> None:
    # GIVEN a saved model whose metadata names another feature layout (the numpy model's)
    model = fit(*synthetic(30, seed=3), TrainConfig(epochs=1))
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    del meta["format"]
    (tmp_path / "m" / "model.json").write_text(json.dumps({**meta, "hash_bits": 22}))
    # WHEN it is loaded THEN it is refused rather than served with the wrong features
    with pytest.raises(ValueError, match="other features"):
        TextModel.load(tmp_path / "m")


def test_epochs_drive_the_callback_and_a_raise_stops_training() -> None:
    # GIVEN a callback that records epochs and raises after the second one (a cancel)
    texts, labels = synthetic(40, seed=4)
    seen: list[tuple[int, float]] = []

    def on_epoch(epoch: int, loss: float) -> None:
        seen.append((epoch, loss))
        if epoch == 2:
            raise KeyboardInterrupt

    # WHEN training runs for four epochs THEN it stops after the second, having reported a loss per epoch
    with pytest.raises(KeyboardInterrupt):
        fit(texts, labels, TrainConfig(epochs=4, learning_rate=0.1), on_epoch)
    assert [epoch for epoch, _ in seen] == [1, 2]
    # Small steps: the training loss starts near log(3) (uniform) and falls.
    assert np.log(3) > seen[0][1] > seen[1][1] > 0


def test_same_seed_same_model_another_seed_another_model() -> None:
    # GIVEN one training set; WHEN it is trained twice with seed 9 and once with seed 10
    texts, labels = synthetic(50, seed=5)
    a = fit(texts, labels, TrainConfig(epochs=2, seed=9)).decision_function(texts[:3])
    b = fit(texts, labels, TrainConfig(epochs=2, seed=9)).decision_function(texts[:3])
    c = fit(texts, labels, TrainConfig(epochs=2, seed=10)).decision_function(texts[:3])
    # THEN the same seed gives the same model and another seed another example order
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_the_learning_rate_reaches_the_classifier() -> None:
    # GIVEN one training set; WHEN it is trained with a small and a large step size
    texts, labels = synthetic(100, seed=15)
    small = fit(texts, labels, TrainConfig(epochs=1, learning_rate=0.1)).decision_function(texts)
    large = fit(texts, labels, TrainConfig(epochs=1, learning_rate=10.0)).decision_function(texts)
    # THEN the larger steps give larger margins (the job's learning_rate_multiplier scales the step)
    assert np.abs(large).mean() > 5 * np.abs(small).mean()


def test_many_labels_hash_into_fewer_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the weight cap: a 704-label taxonomy (IAB 3.1) gets 2^15 columns, 9 labels the most
    assert n_features_for(704) == 2**15 and textmodel.MAX_WEIGHTS >= 704 * 2**15
    assert n_features_for(9) == 2**textmodel.MAX_HASH_BITS
    # WHEN the cap is so low that 3 labels get 2^10 columns
    monkeypatch.setattr(textmodel, "MAX_WEIGHTS", 3 * 2**10 + 5)
    train_x, train_y = synthetic(300, seed=16)
    model = fit(train_x, train_y, TrainConfig(epochs=5))
    # THEN the model is that small and still learns the topics
    assert model.n_features == 2**10
    assert accuracy(model, *synthetic(100, seed=17)) >= 0.95


def test_rejects_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError, match="as many labels"):
        fit(["a"], ["x", "y"])
    with pytest.raises(ValueError, match="empty"):
        fit(["", ""], ["x", "y"])


def under_confident() -> TextModel:
    # ~0.6 top-1 probability where ~90 % are right.
    return fit(*synthetic(300, seed=6, noise=0.1), TIMID)


def over_confident() -> TextModel:
    # A fifth of the labels are noise, which BOLD learns too: confidently wrong answers.
    return fit(*synthetic(300, seed=6, noise=0.2), BOLD)


@pytest.mark.parametrize(("make_model", "noise", "direction"), [(under_confident, 0.1, -1), (over_confident, 0.2, 1)])
def test_calibration_lowers_held_out_nll_and_keeps_the_ranking(
    make_model: Callable[[], TextModel], noise: float, direction: int
) -> None:
    # GIVEN an under- or over-confident model, a calibration set and a separate test set
    model = make_model()
    calibration_x, calibration_y = synthetic(200, seed=7, noise=noise)
    test_x, test_y = synthetic(300, seed=8, noise=noise)
    before_nll, before_proba = nll(model, test_x, test_y), model.predict_proba(test_x)
    # WHEN its temperature is fitted on the calibration set
    temperature = calibrate(model, calibration_x, calibration_y)
    # THEN the temperature moves the right way, the test NLL does not rise and no ranking changes
    assert np.sign(temperature - 1.0) == direction
    assert nll(model, test_x, test_y) <= before_nll
    after_proba = model.predict_proba(test_x)
    assert np.array_equal(np.argsort(-after_proba, axis=1), np.argsort(-before_proba, axis=1))


def test_calibration_ignores_texts_with_labels_the_model_does_not_know() -> None:
    # GIVEN a model and a calibration set, once as is and once with texts of an unknown label added
    model = under_confident()
    calibration_x, calibration_y = synthetic(100, seed=18, noise=0.1)
    expected = calibrate(model, calibration_x, calibration_y)
    # WHEN it is calibrated on the set with the extra texts
    temperature = calibrate(model, [*calibration_x, "weather rain", "weather sun"], [*calibration_y, "x", "x"])
    # THEN they make no difference
    assert temperature == expected


def test_without_validation_the_full_model_gets_a_held_out_temperature() -> None:
    # GIVEN noisy training texts and no validation set
    texts, labels = synthetic(300, seed=9, noise=0.2)
    # WHEN the model is fitted and calibrated
    model = fit_calibrated(texts, labels, BOLD)
    # THEN it is the model trained on every text (same logits), with a temperature from the
    # held-out tenth that softens it, and that temperature lowers the NLL on unseen texts
    assert np.array_equal(model.decision_function(texts), fit(texts, labels, BOLD).decision_function(texts))
    assert model.temperature > 1.0
    test_x, test_y = synthetic(300, seed=19, noise=0.2)
    calibrated_nll = nll(model, test_x, test_y)
    model.temperature = 1.0
    assert calibrated_nll < nll(model, test_x, test_y)


def test_with_validation_the_temperature_comes_from_it() -> None:
    # GIVEN training texts and a validation set
    texts, labels = synthetic(200, seed=20)
    validation = synthetic(100, seed=21, noise=0.1)
    # WHEN the model is fitted with the validation set
    model = fit_calibrated(texts, labels, TIMID, validation=validation)
    # THEN its temperature is the one fitted on the validation set
    assert model.temperature == calibrate(fit(texts, labels, TIMID), *validation)


def test_a_perfectly_labelled_calibration_set_keeps_the_temperature_finite() -> None:
    # GIVEN an under-confident model that labels every calibration text correctly
    model = fit(*synthetic(300, seed=10), TIMID)
    calibration_x, calibration_y = synthetic(50, seed=11)
    assert model.predict_proba(calibration_x).max(axis=1).mean() < 0.7
    assert accuracy(model, calibration_x, calibration_y) == 1.0
    # WHEN it is calibrated
    calibrate(model, calibration_x, calibration_y)
    # THEN its answers are confident but not certain (plain NLL would push T to its lower bound)
    top1 = model.predict_proba(calibration_x).max(axis=1)
    assert 0.9 < top1.mean() < 0.999
