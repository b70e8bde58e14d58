"""A small text classifier from scikit-learn parts: what the offline OpenAI server "fine-tunes".

Features are the character 1–4-grams of the NFKC-normalised, lower-cased text (the user
message: title line and body), hashed into at most 2^19 columns (`FeatureHasher`) and
weighted by `TfidfTransformer` (sublinear tf, idf, L2 norm). The classifier is
`SGDClassifier` with the log loss (one-vs-rest logistic regression, constant step size),
trained one epoch per `partial_fit` call so that each epoch is reported and a cancel stops
training between epochs. A separate feature block for the title line scored no better on
livedoor, so there is one block.

A softmax over the one-vs-rest margins gives a distribution, but not a calibrated one (on
livedoor it is over-confident); `fit_calibrated` adds temperature scaling (Guo et al., 2017):
one scalar T, fitted on held-out texts, divides the logits. It rescales the probabilities
only: the ranking of the labels, and so top-k accuracy, is unchanged.
"""

from __future__ import annotations

import json
import math
import operator
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.feature_extraction import FeatureHasher
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import SGDClassifier

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
# A CSR matrix, one row per text (scipy ships no type information).
Features = Any

MAX_NGRAM = 4
# 2^17–2^20 columns score alike on livedoor; 2^19 keeps a 9-label model at 19 MB.
MAX_HASH_BITS = 19
# Weight-matrix cap (entries): with many labels hash into fewer columns, so a 700-label
# taxonomy stays at about 100 MB (float32).
MAX_WEIGHTS = 24_000_000
# L2 penalty: light; 1e-6 to 1e-5 scored up to 1.3 points lower on livedoor.
ALPHA = 1e-7
# Layout of a saved model (model.json + weights.npz); load refuses any other.
FORMAT = "sklearn-sgd-1"

# Share of the training texts held out to fit the temperature when there is no validation set.
CALIBRATION_FRACTION = 0.1
# Temperature search range: beyond it the probabilities are ~one-hot or ~uniform anyway.
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 1e3

# Called after each epoch with (epoch, mean training loss); raising stops training (cancel).
EpochCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 6
    # SGD's constant step size (eta0) on unit-norm tf-idf rows: in 6 epochs on livedoor 30–50
    # scored best, 1–10 one to two points lower.
    learning_rate: float = 50.0
    seed: int = 0


def _ngram_counts(text: str) -> Counter[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    grams = list(text)
    counts = Counter(grams)
    for n in range(2, MAX_NGRAM + 1):
        # Each (n-1)-gram extended by the character after it: the n-grams, in C loops.
        grams = list(map(operator.add, grams, text[n - 1 :]))
        counts.update(grams)
    return counts


def featurize(texts: Sequence[str], n_features: int) -> Features:
    """Hashed character n-gram counts, one CSR row per text.

    Counting per text before hashing is a third faster than HashingVectorizer with a
    callable analyzer, which hashes every occurrence separately.
    """
    if not texts:
        return sp.csr_matrix((0, n_features), dtype=np.float32)
    hasher = FeatureHasher(n_features, input_type="dict", alternate_sign=False, dtype=np.float32)
    return hasher.transform(_ngram_counts(text) for text in texts)


def n_features_for(n_labels: int) -> int:
    """Hashed columns: 2^MAX_HASH_BITS, fewer when the weights would pass MAX_WEIGHTS."""
    return 1 << min(MAX_HASH_BITS, int(math.log2(max(MAX_WEIGHTS // n_labels, 2))))


@dataclass
class TextModel:
    labels: list[str]
    tfidf: TfidfTransformer
    classifier: SGDClassifier | None  # None for a single label: there is nothing to learn
    temperature: float = 1.0  # logits / temperature before the softmax (fit_calibrated)

    @property
    def n_features(self) -> int:
        return len(self.tfidf.idf_)

    def _logits(self, counts: Features) -> FloatArray:
        if self.classifier is None:
            return np.zeros((counts.shape[0], 1), dtype=np.float32)
        return _scores(self.classifier, self.tfidf.transform(counts))

    def decision_function(self, texts: Sequence[str]) -> FloatArray:
        return self._logits(featurize(texts, self.n_features))

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        proba: FloatArray = softmax(self.decision_function(texts) / self.temperature, axis=1).astype(np.float32)
        return proba

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"idf": self.tfidf.idf_}
        if self.classifier is not None:
            arrays |= {"coef": self.classifier.coef_, "intercept": self.classifier.intercept_}
        np.savez_compressed(directory / "weights.npz", **arrays)
        meta = {"format": FORMAT, "labels": self.labels, "temperature": self.temperature}
        (directory / "model.json").write_text(json.dumps(meta, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> TextModel:
        """The fitted estimators rebuilt from plain arrays (no pickle: np.load refuses objects)."""
        meta = json.loads((directory / "model.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"model in {directory} was trained with other features")
        with np.load(directory / "weights.npz") as arrays:
            tfidf = _tfidf()
            tfidf.idf_ = arrays["idf"]
            tfidf.n_features_in_ = len(tfidf.idf_)
            classifier = None
            if "coef" in arrays:
                classifier = _classifier(TrainConfig())
                classifier.coef_ = np.asfortranarray(arrays["coef"])
                classifier.intercept_ = arrays["intercept"]
                classifier.classes_ = np.arange(len(meta["labels"]))
                classifier.n_features_in_ = tfidf.n_features_in_
        return cls(list(meta["labels"]), tfidf, classifier, float(meta["temperature"]))


def _tfidf() -> TfidfTransformer:
    return TfidfTransformer(sublinear_tf=True)


def _classifier(config: TrainConfig) -> SGDClassifier:
    # A RandomState (not an int) so that each partial_fit call shuffles in a new order.
    random_state = np.random.RandomState(config.seed)
    return SGDClassifier(
        loss="log_loss", alpha=ALPHA, learning_rate="constant", eta0=config.learning_rate, random_state=random_state
    )


def _scores(classifier: SGDClassifier, x: Features) -> FloatArray:
    scores: FloatArray = classifier.decision_function(x)
    # Two labels give one margin m: softmax([0, m]) is the logistic model's probability.
    return scores if scores.ndim == 2 else np.column_stack([np.zeros_like(scores), scores])


def _mean_nll(logits: FloatArray, targets: IntArray) -> float:
    return float(-log_softmax(logits.astype(np.float64), axis=1)[np.arange(len(targets)), targets].mean())


def _fit_counts(
    counts: Features, labels: Sequence[str], config: TrainConfig, on_epoch: EpochCallback | None
) -> TextModel:
    if not counts.nnz:
        raise ValueError("the training texts are all empty")
    label_names = sorted(set(labels))
    tfidf = _tfidf()
    x = tfidf.fit_transform(counts)
    if len(label_names) == 1:
        return TextModel(label_names, tfidf, None)
    index = {name: i for i, name in enumerate(label_names)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    classes = np.arange(len(label_names))
    classifier = _classifier(config)
    for epoch in range(1, config.epochs + 1):
        classifier.partial_fit(x, y, classes=classes)
        if on_epoch is not None:
            on_epoch(epoch, _mean_nll(_scores(classifier, x), y))
    # Column-major: scipy wants the transposed weights contiguous and copies a row-major
    # matrix on every call (~10 ms per article).
    classifier.coef_ = np.asfortranarray(classifier.coef_)
    return TextModel(label_names, tfidf, classifier)


def _check(texts: Sequence[str], labels: Sequence[str]) -> None:
    if len(texts) != len(labels) or not texts:
        raise ValueError("need as many labels as texts, and at least one")


def fit(
    texts: Sequence[str],
    labels: Sequence[str],
    config: TrainConfig = TrainConfig(),
    on_epoch: EpochCallback | None = None,
) -> TextModel:
    """Logistic regression on tf-idf features; `on_epoch(epoch, mean_loss)` may raise to stop."""
    _check(texts, labels)
    return _fit_counts(featurize(texts, n_features_for(len(set(labels)))), labels, config, on_epoch)


def _smoothed_nll(logits: npt.NDArray[np.float64], targets: IntArray, temperature: float) -> float:
    """Mean cross-entropy of softmax(logits / T) against Laplace-smoothed one-hot targets.

    A calibration set the model labels perfectly would drive plain NLL (which is what
    CalibratedClassifierCV(method="temperature") minimises) to T → 0, every answer certain;
    the smoothing (weight 1/(n+2) on the uniform distribution, as in the rule of succession)
    keeps T finite there and barely moves it otherwise.
    """
    log_proba = log_softmax(logits / temperature, axis=1)
    alpha = 1.0 / (len(targets) + 2)
    picked = log_proba[np.arange(len(targets)), targets]
    return float(-((1.0 - alpha) * picked + alpha * log_proba.mean(axis=1)).mean())


def fit_temperature(logits: FloatArray, targets: IntArray) -> float:
    """The temperature minimising `_smoothed_nll`, searched over log T.

    The loss is convex in 1/T (log-sum-exp minus a linear term), so unimodal in log T.
    """
    if not len(targets):
        return 1.0
    wide = logits.astype(np.float64)
    result = minimize_scalar(
        lambda log_t: _smoothed_nll(wide, targets, math.exp(log_t)),
        bounds=(math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return math.exp(float(result.x))


def _calibrate(model: TextModel, counts: Features, labels: Sequence[str]) -> float:
    index = {name: i for i, name in enumerate(model.labels)}
    known = np.array([label in index for label in labels], dtype=bool)
    targets = np.array([index[label] for label in labels if label in index], dtype=np.int64)
    model.temperature = fit_temperature(model._logits(counts[known]), targets)
    return model.temperature


def calibrate(model: TextModel, texts: Sequence[str], labels: Sequence[str]) -> float:
    """Set (and return) the model's temperature from labelled held-out texts.

    Texts whose label the model does not know cannot be scored and are left out.
    """
    return _calibrate(model, featurize(texts, model.n_features), labels)


def fit_calibrated(
    texts: Sequence[str],
    labels: Sequence[str],
    config: TrainConfig = TrainConfig(),
    on_epoch: EpochCallback | None = None,
    validation: tuple[Sequence[str], Sequence[str]] | None = None,
) -> TextModel:
    """`fit` on every text, then its temperature from `validation` (texts, labels).

    Without a validation set a seeded `CALIBRATION_FRACTION` of the texts is held out, a
    second model (its own idf and weights, from the same hashed counts) is trained on the
    rest and its temperature fitted on the held-out texts; the returned model is the one
    trained on every text, with that temperature. Keeping the smaller model instead would
    change its predictions (less data); its temperature suits the full model closely, both
    being trained with the same settings. `on_epoch` reports the full model's epochs only
    (the held-out model runs after it, silently).
    """
    _check(texts, labels)
    counts = featurize(texts, n_features_for(len(set(labels))))
    model = _fit_counts(counts, labels, config, on_epoch)
    if validation is not None:
        calibrate(model, *validation)
        return model
    n_held_out = round(len(texts) * CALIBRATION_FRACTION)
    if n_held_out == 0 or n_held_out == len(texts):
        return model
    order = np.random.default_rng(config.seed).permutation(len(texts))
    held_out, rest = order[:n_held_out], order[n_held_out:]
    probe = _fit_counts(counts[rest], [labels[i] for i in rest], config, None)
    model.temperature = _calibrate(probe, counts[held_out], [labels[i] for i in held_out])
    return model
