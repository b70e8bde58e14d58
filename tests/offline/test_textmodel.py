"""The classifier behind the offline fine-tune (local.textmodel) on synthetic data."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from local.textmodel import TextModel, TrainConfig, fit

VOCAB = {
    "sport": ["goal", "match", "team", "coach", "league", "score", "striker", "referee"],
    "film": ["actor", "movie", "director", "cinema", "scene", "premiere", "studio", "script"],
    "tech": ["phone", "app", "chip", "laptop", "battery", "software", "update", "screen"],
}
FILLER = ["the", "a", "of", "and", "to", "in", "on", "with", "today", "new"]


def synthetic(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        label = rng.choice(sorted(VOCAB))
        words = rng.sample(VOCAB[label], 3) + rng.sample(FILLER, 5)
        rng.shuffle(words)
        texts.append(f"{words[0]} {words[1]}\n" + " ".join(words[2:]))
        labels.append(label)
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
    model.save(tmp_path / "m")
    loaded = TextModel.load(tmp_path / "m")
    assert loaded.labels == model.labels
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
