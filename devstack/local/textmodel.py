"""A small text classifier, numpy only: what the offline OpenAI server "fine-tunes".

Features are hashed character 1–4-grams (sublinear tf, idf, L2 norm), with the first line
(the article title in our prompts) hashed into its own feature space because a title says
more per character than a body. The model is softmax regression trained by minibatch Adam
with lazy (row-sparse) updates, so an epoch costs time in proportion to the text, not to
the size of the weight matrix.

Training stops short of the optimum (few epochs, decaying rate), which leaves the model
under-confident on small data sets; `fit_calibrated` adds temperature scaling (Guo et al.,
2017): one scalar T, fitted on held-out texts, divides the logits. It rescales the
probabilities only: the ranking of the labels, and so top-k accuracy, is unchanged.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

HASH_BITS = 22
NGRAM_SIZES = (1, 2, 3, 4)
# Weight-matrix cap (entries): with many labels keep the most frequent features only, so a
# 700-label taxonomy stays at a few hundred MB at most.
MAX_WEIGHTS = 24_000_000
# Below this many training texts every feature is kept (tiny data sets have few repeats).
MIN_DF_ROWS = 200
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_POSITION_KEYS = tuple(
    np.uint64(k) for k in (0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5, 0x85EBCA77C2B2AE63)
)
_TITLE_SALT = np.uint64(0xFF51AFD7ED558CCD)

# Share of the training texts held out to fit the temperature when there is no validation set.
CALIBRATION_FRACTION = 0.1
# Temperature search range: beyond it the probabilities are ~one-hot or ~uniform anyway.
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 1e3

# Called after each epoch with (epoch, mean training loss); raising stops training (cancel).
EpochCallback = Callable[[int, float], None]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 0.04
    seed: int = 0


@dataclass(frozen=True)
class Csr:
    """Rows of hashed features: `indptr` (n+1), `indices` (hashed ids), `data` (raw counts)."""

    indptr: IntArray
    indices: IntArray
    data: FloatArray

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1


def _hash_ngrams(codes: npt.NDArray[np.uint64], salt: np.uint64) -> npt.NDArray[np.uint64]:
    parts = []
    for n in NGRAM_SIZES:
        if len(codes) < n:
            break
        h = np.full(len(codes) - n + 1, salt ^ np.uint64(n), dtype=np.uint64)
        for pos in range(n):
            h = (h ^ (codes[pos : len(codes) - n + 1 + pos] * _POSITION_KEYS[pos])) * _GOLDEN
        parts.append(h >> np.uint64(64 - HASH_BITS))
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)


def _codes(text: str) -> npt.NDArray[np.uint64]:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def featurize(texts: Sequence[str]) -> Csr:
    """Hashed n-gram counts per text (the title line and the rest in separate spaces)."""
    indptr = np.zeros(len(texts) + 1, dtype=np.int64)
    all_ids: list[IntArray] = []
    all_counts: list[FloatArray] = []
    for row, text in enumerate(texts):
        norm = unicodedata.normalize("NFKC", text).lower()
        title, _, body = norm.partition("\n")
        hashed = np.concatenate([_hash_ngrams(_codes(title), _TITLE_SALT), _hash_ngrams(_codes(body), np.uint64(0))])
        ids, counts = np.unique(hashed.astype(np.int64), return_counts=True)
        all_ids.append(ids)
        all_counts.append(counts.astype(np.float32))
        indptr[row + 1] = indptr[row] + len(ids)
    if not texts:
        return Csr(indptr, np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32))
    return Csr(indptr, np.concatenate(all_ids), np.concatenate(all_counts))


def _row_ids(indptr: IntArray) -> IntArray:
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    proba: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return proba


@dataclass
class TextModel:
    labels: list[str]
    vocab: IntArray  # sorted hashed ids that have weights
    idf: FloatArray  # per vocab entry
    unseen_idf: float  # idf of a feature no training text had (still counts in the norm)
    weights: FloatArray  # (len(vocab), n_labels)
    bias: FloatArray
    temperature: float = 1.0  # logits / temperature before the softmax (fit_calibrated)

    def _tfidf(self, csr: Csr) -> tuple[IntArray, FloatArray, IntArray]:
        """(vocab column or -1, L2-normalised tf-idf value, row) per nonzero."""
        pos = np.minimum(np.searchsorted(self.vocab, csr.indices), len(self.vocab) - 1)
        known = self.vocab[pos] == csr.indices
        cols = np.where(known, pos, -1)
        values = (1.0 + np.log(csr.data)) * np.where(known, self.idf[pos], self.unseen_idf)
        rows = _row_ids(csr.indptr)
        norms = np.sqrt(np.bincount(rows, weights=values * values, minlength=csr.n_rows))
        values = values / np.maximum(norms[rows], 1e-12)
        return cols, values.astype(np.float32), rows

    def _logits(self, cols: IntArray, values: FloatArray, indptr: IntArray) -> FloatArray:
        contrib = self.weights[np.maximum(cols, 0)] * np.where(cols >= 0, values, 0.0)[:, None]
        out = np.zeros((len(indptr) - 1, len(self.labels)), dtype=np.float32)
        nonempty = np.diff(indptr) > 0
        if contrib.shape[0]:
            out[nonempty] = np.add.reduceat(contrib, indptr[:-1][nonempty], axis=0)
        return out + self.bias

    def decision_function(self, texts: Sequence[str]) -> FloatArray:
        csr = featurize(texts)
        cols, values, _ = self._tfidf(csr)
        return self._logits(cols, values, csr.indptr)

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        return _softmax(self.decision_function(texts) / np.float32(self.temperature))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            directory / "weights.npz", vocab=self.vocab, idf=self.idf, weights=self.weights, bias=self.bias
        )
        meta = {
            "labels": self.labels,
            "unseen_idf": self.unseen_idf,
            "temperature": self.temperature,
            "hash_bits": HASH_BITS,
        }
        (directory / "model.json").write_text(json.dumps(meta, ensure_ascii=False))

    @classmethod
    def load(cls, directory: Path) -> TextModel:
        meta = json.loads((directory / "model.json").read_text())
        if meta["hash_bits"] != HASH_BITS:
            raise ValueError(f"model in {directory} was trained with other features")
        with np.load(directory / "weights.npz") as arrays:
            return cls(
                labels=list(meta["labels"]),
                vocab=arrays["vocab"],
                idf=arrays["idf"],
                unseen_idf=float(meta["unseen_idf"]),
                weights=arrays["weights"],
                bias=arrays["bias"],
                # Models saved before calibration existed are uncalibrated.
                temperature=float(meta.get("temperature", 1.0)),
            )


def _batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[IntArray]:
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _select_vocab(csr: Csr, n_labels: int) -> tuple[IntArray, IntArray]:
    """Hashed ids that get weights (capped by document frequency) and each one's df."""
    vocab, df = np.unique(csr.indices, return_counts=True)
    # A feature seen in one training text only lets the model memorise that text.
    if csr.n_rows >= MIN_DF_ROWS:
        vocab, df = vocab[df >= 2], df[df >= 2]
    cap = max(1, MAX_WEIGHTS // max(n_labels, 1))
    if len(vocab) > cap:
        keep = np.sort(np.argsort(-df, kind="stable")[:cap])
        vocab, df = vocab[keep], df[keep]
    return vocab, df


class _Adam:
    """Adam with lazy updates: only the weight rows (features) a batch touches are read and moved."""

    beta1, beta2, eps = 0.9, 0.999, 1e-8

    def __init__(self, shape: tuple[int, ...], learning_rate: float) -> None:
        self.learning_rate = learning_rate
        self.step = 0
        self.m_w = np.zeros(shape, dtype=np.float32)
        self.v_w = np.zeros(shape, dtype=np.float32)
        self.m_b = np.zeros(shape[1], dtype=np.float32)
        self.v_b = np.zeros(shape[1], dtype=np.float32)

    def update(self, model: TextModel, rows: IntArray, grad: FloatArray, grad_b: FloatArray, scale: float) -> None:
        self.step += 1
        b1, b2 = self.beta1, self.beta2
        lr = scale * self.learning_rate * math.sqrt(1 - b2**self.step) / (1 - b1**self.step)
        m = b1 * self.m_w[rows] + (1 - b1) * grad
        v = b2 * self.v_w[rows] + (1 - b2) * grad * grad
        self.m_w[rows], self.v_w[rows] = m, v
        model.weights[rows] -= lr * m / (np.sqrt(v) + self.eps)
        self.m_b = b1 * self.m_b + (1 - b1) * grad_b
        self.v_b = b2 * self.v_b + (1 - b2) * grad_b * grad_b
        model.bias -= lr * self.m_b / (np.sqrt(self.v_b) + self.eps)


def fit(
    texts: Sequence[str],
    labels: Sequence[str],
    config: TrainConfig = TrainConfig(),
    on_epoch: EpochCallback | None = None,
) -> TextModel:
    """Softmax regression on tf-idf features; `on_epoch(epoch, mean_loss)` may raise to stop."""
    if len(texts) != len(labels) or not texts:
        raise ValueError("need as many labels as texts, and at least one")
    label_names = sorted(set(labels))
    index = {name: i for i, name in enumerate(label_names)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    n_labels = len(label_names)

    csr = featurize(texts)
    vocab, df = _select_vocab(csr, n_labels)
    if not len(vocab):
        raise ValueError("the training texts are all empty")
    n_docs = len(texts)
    idf = (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(np.float32)
    model = TextModel(
        labels=label_names,
        vocab=vocab,
        idf=idf,
        unseen_idf=math.log(1.0 + n_docs) + 1.0,
        weights=np.zeros((len(vocab), n_labels), dtype=np.float32),
        bias=np.zeros(n_labels, dtype=np.float32),
    )
    cols, values, _ = model._tfidf(csr)

    rng = np.random.default_rng(config.seed)
    adam = _Adam(model.weights.shape, config.learning_rate)
    total_steps = config.epochs * math.ceil(n_docs / config.batch_size)
    for epoch in range(1, config.epochs + 1):
        total_loss = 0.0
        for batch in _batches(n_docs, config.batch_size, rng):
            take = np.concatenate([np.arange(csr.indptr[i], csr.indptr[i + 1]) for i in batch])
            known = cols[take] >= 0
            b_cols, b_values = cols[take][known], values[take][known]
            b_rows = np.repeat(np.arange(len(batch)), np.diff(csr.indptr)[batch])[known]
            b_indptr = np.concatenate([[0], np.cumsum(np.bincount(b_rows, minlength=len(batch)))])
            targets = y[batch]

            proba = _softmax(model._logits(b_cols, b_values, b_indptr))
            picked = proba[np.arange(len(batch)), targets]
            total_loss -= float(np.log(np.maximum(picked, 1e-12)).sum())
            delta = proba
            delta[np.arange(len(batch)), targets] -= 1.0
            delta /= len(batch)

            touched, inverse = np.unique(b_cols, return_inverse=True)
            grad = np.empty((len(touched), n_labels), dtype=np.float32)
            for k in range(n_labels):
                grad[:, k] = np.bincount(inverse, weights=b_values * delta[b_rows, k], minlength=len(touched))
            # Linear decay to zero: more epochs converge instead of overfitting harder.
            adam.update(model, touched, grad, delta.sum(axis=0), 1.0 - adam.step / total_steps)
        if on_epoch is not None:
            on_epoch(epoch, total_loss / n_docs)
    return model


def _smoothed_nll(logits: npt.NDArray[np.float64], targets: IntArray, temperature: float) -> float:
    """Mean cross-entropy of softmax(logits / T) against Laplace-smoothed one-hot targets.

    A calibration set the model labels perfectly would drive plain NLL to T → 0 (every answer
    certain); the smoothing (weight 1/(n+2) on the uniform distribution, as in the rule of
    succession) keeps T finite there and barely moves it otherwise.
    """
    scaled = logits / temperature
    log_proba = scaled - scaled.max(axis=1, keepdims=True)
    log_proba -= np.log(np.exp(log_proba).sum(axis=1, keepdims=True))
    alpha = 1.0 / (len(targets) + 2)
    picked = log_proba[np.arange(len(targets)), targets]
    return float(-((1.0 - alpha) * picked + alpha * log_proba.mean(axis=1)).mean())


def fit_temperature(logits: FloatArray, targets: IntArray) -> float:
    """The temperature minimising `_smoothed_nll`: golden-section search over log T.

    The loss is convex in 1/T (log-sum-exp minus a linear term), so unimodal in log T.
    """
    if not len(targets):
        return 1.0
    wide = logits.astype(np.float64)
    lo, hi = math.log(MIN_TEMPERATURE), math.log(MAX_TEMPERATURE)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    loss_a, loss_b = _smoothed_nll(wide, targets, math.exp(a)), _smoothed_nll(wide, targets, math.exp(b))
    while hi - lo > 1e-4:
        if loss_a <= loss_b:
            hi, b, loss_b = b, a, loss_a
            a = hi - ratio * (hi - lo)
            loss_a = _smoothed_nll(wide, targets, math.exp(a))
        else:
            lo, a, loss_a = a, b, loss_b
            b = lo + ratio * (hi - lo)
            loss_b = _smoothed_nll(wide, targets, math.exp(b))
    return math.exp((lo + hi) / 2.0)


def calibrate(model: TextModel, texts: Sequence[str], labels: Sequence[str]) -> float:
    """Set (and return) the model's temperature from labelled held-out texts.

    Texts whose label the model does not know cannot be scored and are left out.
    """
    index = {name: i for i, name in enumerate(model.labels)}
    known = [(text, index[label]) for text, label in zip(texts, labels, strict=True) if label in index]
    targets = np.array([target for _, target in known], dtype=np.int64)
    model.temperature = fit_temperature(model.decision_function([text for text, _ in known]), targets)
    return model.temperature


def fit_calibrated(
    texts: Sequence[str],
    labels: Sequence[str],
    config: TrainConfig = TrainConfig(),
    on_epoch: EpochCallback | None = None,
    validation: tuple[Sequence[str], Sequence[str]] | None = None,
) -> TextModel:
    """`fit` on every text, then its temperature from `validation` (texts, labels).

    Without a validation set a seeded `CALIBRATION_FRACTION` of the texts is held out, a
    second model is trained on the rest and its temperature fitted on the held-out texts;
    the returned model is the one trained on every text, with that temperature. Keeping the
    smaller model instead would change its predictions (less data); its temperature suits
    the full model closely, both being trained with the same settings. `on_epoch` reports the
    full model's epochs only (the held-out model runs after it, silently).
    """
    model = fit(texts, labels, config, on_epoch)
    if validation is not None:
        calibrate(model, *validation)
        return model
    n_held_out = round(len(texts) * CALIBRATION_FRACTION)
    if n_held_out == 0 or n_held_out == len(texts):
        return model
    order = np.random.default_rng(config.seed).permutation(len(texts))
    held_out, rest = order[:n_held_out], order[n_held_out:]
    probe = fit([texts[i] for i in rest], [labels[i] for i in rest], config)
    model.temperature = calibrate(probe, [texts[i] for i in held_out], [labels[i] for i in held_out])
    return model
