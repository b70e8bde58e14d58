"""The classifier behind the offline fine-tune (local.textmodel) on synthetic data."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from local.textmodel import TextModel, TrainConfig, calibrate, fit, fit_calibrated

VOCAB = {
    "sport": ["goal", "match", "team", "coach", "league", "score", "striker", "referee"],
    "film": ["actor", "movie", "director", "cinema", "scene", "premiere", "studio", "script"],
    "tech": ["phone", "app", "chip", "laptop", "battery", "software", "update", "screen"],
}
FILLER = ["the", "a", "of", "and", "to", "in", "on", "with", "today", "new"]


def synthetic(n: int, seed: int, noise: float = 0.0) -> tuple[list[str], list[str]]:
    """Texts with 3 topic words of their label; a `noise` share of the labels are random instead."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.choice(sorted(VOCAB))
        words = rng.sample(VOCAB[label], 3) + rng.sample(FILLER, 5)
        rng.shuffle(words)
        texts.append(f"{words[0]} {words[1]}\n" + " ".join(words[2:]))
        labels.append(rng.choice(sorted(VOCAB)) if rng.random() < noise else label)
    return texts, labels


def test_learns_separable_topics_and_ranks_the_truth_first() -> None:
    # GIVEN texts whose topic words identify the label
    train_x, train_y = synthetic(300, seed=1)
    test_x, test_y = synthetic(100, seed=2)
    # WHEN the model is trained
    model = fit(train_x, train_y, TrainConfig(epochs=5, batch_size=16))
    # THEN it labels unseen texts correctly and its probabilities are a distribution
    proba = model.predict_proba(test_x)
    predicted = [model.labels[i] for i in proba.argmax(axis=1)]
    assert np.mean([p == t for p, t in zip(predicted, test_y, strict=True)]) >= 0.95
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)


def test_save_and_load_give_the_same_probabilities(tmp_path: Path) -> None:
    texts, labels = synthetic(60, seed=3)
    model = fit(texts, labels, TrainConfig(epochs=3))
    model.temperature = 0.5
    model.save(tmp_path / "m")
    loaded = TextModel.load(tmp_path / "m")
    assert loaded.labels == model.labels
    assert loaded.temperature == 0.5
    assert np.allclose(loaded.predict_proba(texts[:5]), model.predict_proba(texts[:5]))


def test_epochs_drive_the_callback_and_a_raise_stops_training() -> None:
    texts, labels = synthetic(40, seed=4)
    seen: list[int] = []

    def on_epoch(epoch: int, loss: float) -> None:
        seen.append(epoch)
        assert loss > 0
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(texts, labels, TrainConfig(epochs=4), on_epoch)
    assert seen == [1, 2]


def test_same_seed_same_model() -> None:
    texts, labels = synthetic(50, seed=5)
    a = fit(texts, labels, TrainConfig(epochs=2, seed=9)).predict_proba(texts[:3])
    b = fit(texts, labels, TrainConfig(epochs=2, seed=9)).predict_proba(texts[:3])
    assert np.array_equal(a, b)


def test_rejects_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError, match="as many labels"):
        fit(["a"], ["x", "y"])
    with pytest.raises(ValueError, match="empty"):
        fit(["", ""], ["x", "y"])


def nll(model: TextModel, texts: list[str], labels: list[str]) -> float:
    proba = model.predict_proba(texts)
    picked = proba[np.arange(len(texts)), [model.labels.index(label) for label in labels]]
    return float(-np.log(picked).mean())


def under_confident() -> TextModel:
    # One epoch stops far short of the optimum: ~0.55 top-1 probability where ~90 % are right.
    return fit(*synthetic(300, seed=6, noise=0.1), TrainConfig(epochs=1))


def over_confident() -> TextModel:
    # Logits blown up 8× while a fifth of the labels are noise: confidently wrong answers.
    model = fit(*synthetic(300, seed=6, noise=0.2), TrainConfig(epochs=5, batch_size=16))
    model.weights *= 8
    model.bias *= 8
    return model


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


def test_without_validation_the_full_model_gets_a_held_out_temperature() -> None:
    # GIVEN training texts and no validation set
    texts, labels = synthetic(200, seed=9)
    config = TrainConfig(epochs=1)
    # WHEN the model is fitted and calibrated
    model = fit_calibrated(texts, labels, config)
    # THEN it is the model trained on every text (same logits) with a sharpening temperature
    assert np.array_equal(model.decision_function(texts), fit(texts, labels, config).decision_function(texts))
    assert model.temperature < 1.0


def test_a_perfectly_labelled_calibration_set_keeps_the_temperature_finite() -> None:
    # GIVEN an under-confident model that labels every calibration text correctly
    model = fit(*synthetic(300, seed=10), TrainConfig(epochs=1))
    calibration_x, calibration_y = synthetic(50, seed=11)
    assert model.predict_proba(calibration_x).max(axis=1).mean() < 0.7
    assert (model.predict_proba(calibration_x).argmax(axis=1) == [model.labels.index(y) for y in calibration_y]).all()
    # WHEN it is calibrated
    calibrate(model, calibration_x, calibration_y)
    # THEN its answers are confident but not certain (plain NLL would push T to its lower bound)
    top1 = model.predict_proba(calibration_x).max(axis=1)
    assert 0.9 < top1.mean() < 0.999
