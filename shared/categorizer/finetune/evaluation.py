"""Evaluate: a model over an evaluation set (validation, golden) through the production classifier.

Each validation example is sent exactly as the categorize function would send it
(`OpenAIClassifier.classify`, same decoding and logit bias), so the metrics describe
production behaviour, not a re-implementation.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from categorizer.classifier import OpenAIClassifier
from categorizer.errors import NoValidLabelError
from categorizer.finetune.dataset import Example
from categorizer.finetune.models import ClassScores, Confusion, EvaluationMetrics, ReliabilityBin, SetEvaluation
from categorizer.prompt import Prompt, estimate_prompt_tokens
from categorizer.taxonomy import Taxonomy

ECE_BINS = 10


@dataclass(frozen=True)
class Scored:
    truth: str
    ranked: list[str]  # labels, best first (empty: no valid label among the top tokens)
    confidence: float  # renormalised probability of the top label
    coverage: float
    cost_usd: float


def prompt_of(example: Example) -> tuple[Prompt, str]:
    """The stored example's prompt (what build_prompt produced at export) and its label."""
    messages = example["messages"][:-1]
    return Prompt(messages, estimate_prompt_tokens(messages), truncated=False), example["messages"][-1]["content"]


async def score_examples(
    classifier: OpenAIClassifier,
    examples: Sequence[Example],
    model_id: str,
    taxonomy: Taxonomy,
    concurrency: int,
) -> list[Scored]:
    gate = asyncio.Semaphore(concurrency)

    async def score(example: Example) -> Scored:
        prompt, truth = prompt_of(example)
        async with gate:
            try:
                result = await classifier.classify(prompt, model_id, taxonomy)
            except NoValidLabelError:
                return Scored(truth, [], 0.0, 0.0, 0.0)
        predictions = result.decoded.predictions
        return Scored(
            truth,
            [p.label for p in predictions],
            predictions[0].probability,
            result.decoded.coverage,
            result.cost_usd,
        )

    return list(await asyncio.gather(*(score(e) for e in examples)))


def compute_metrics(scored: Sequence[Scored]) -> EvaluationMetrics:
    n = len(scored)
    if n == 0:
        raise ValueError("no examples to score")
    top1 = top1_correct(scored)
    top3 = [s.truth in s.ranked[:3] for s in scored]
    return EvaluationMetrics(
        n=n,
        top1=sum(top1) / n,
        top3=sum(top3) / n,
        macro_f1=macro_f1([s.truth for s in scored], [s.ranked[0] if s.ranked else None for s in scored]),
        ece=expected_calibration_error([s.confidence for s in scored], top1),
        coverage=sum(s.coverage for s in scored) / n,
        no_valid_label=sum(1 for s in scored if not s.ranked),
        eval_cost_usd=round(sum(s.cost_usd for s in scored), 6),
    )


def macro_f1(truth: Sequence[str], predicted: Sequence[str | None]) -> float:
    """Mean F1 over the classes that occur as truth or prediction (sklearn's convention)."""
    true_positive: Counter[str] = Counter()
    predicted_count: Counter[str] = Counter(p for p in predicted if p is not None)
    true_count: Counter[str] = Counter(truth)
    for t, p in zip(truth, predicted, strict=True):
        if t == p:
            true_positive[t] += 1
    classes = set(true_count) | set(predicted_count)
    scores = []
    for c in classes:
        denominator = true_count[c] + predicted_count[c]
        scores.append(2 * true_positive[c] / denominator if denominator else 0.0)
    return sum(scores) / len(scores)


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Σ over 10 equal-width confidence bins of |accuracy − mean confidence| × bin share."""
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(ECE_BINS)]
    for p, ok in zip(confidence, correct, strict=True):
        bins[min(int(p * ECE_BINS), ECE_BINS - 1)].append((p, ok))
    n = len(confidence)
    return sum(abs(sum(ok for _, ok in b) / len(b) - sum(p for p, _ in b) / len(b)) * len(b) / n for b in bins if b)


def top1_correct(scored: Sequence[Scored]) -> list[bool]:
    return [bool(s.ranked) and s.ranked[0] == s.truth for s in scored]


def per_class(scored: Sequence[Scored], taxonomy: Taxonomy) -> dict[str, ClassScores]:
    """Support, precision, recall and F1 per class that occurs as truth or prediction: where the model is weak."""
    support: Counter[str] = Counter(s.truth for s in scored)
    predicted: Counter[str] = Counter(s.ranked[0] for s in scored if s.ranked)
    hits: Counter[str] = Counter(s.truth for s in scored if s.ranked and s.ranked[0] == s.truth)
    scores: dict[str, ClassScores] = {}
    for label in sorted(set(support) | set(predicted), key=int):
        precision = hits[label] / predicted[label] if predicted[label] else 0.0
        recall = hits[label] / support[label] if support[label] else 0.0
        denominator = support[label] + predicted[label]
        category = taxonomy.by_label[label]
        scores[category.id] = ClassScores(
            label=label,
            name=category.name,
            support=support[label],
            predicted=predicted[label],
            precision=round(precision, 4),
            recall=round(recall, 4),
            f1=round(2 * hits[label] / denominator, 4) if denominator else 0.0,
        )
    return scores


def confusion(scored: Sequence[Scored], taxonomy: Taxonomy) -> Confusion:
    """Rows: true class; columns: top-1 class, then "no valid label". Classes seen as truth or prediction."""
    labels = sorted({s.truth for s in scored} | {s.ranked[0] for s in scored if s.ranked}, key=int)
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels) + 1), dtype=np.int64)
    rows = [index[s.truth] for s in scored]
    columns = [index[s.ranked[0]] if s.ranked else len(labels) for s in scored]
    np.add.at(matrix, (rows, columns), 1)
    return Confusion(classes=[taxonomy.by_label[label].id for label in labels], matrix=matrix.tolist())


def reliability(scored: Sequence[Scored]) -> list[ReliabilityBin]:
    """The 10 equal-width bins ECE sums over: the reliability diagram's bars."""
    confidence = np.array([s.confidence for s in scored], dtype=np.float64)
    correct = np.array(top1_correct(scored), dtype=np.float64)
    bins = np.minimum((confidence * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    result: list[ReliabilityBin] = []
    for b in range(ECE_BINS):
        members = bins == b
        count = int(members.sum())
        result.append(
            ReliabilityBin(
                lower=b / ECE_BINS,
                upper=(b + 1) / ECE_BINS,
                count=count,
                mean_confidence=round(float(confidence[members].mean()), 4) if count else 0.0,
                accuracy=round(float(correct[members].mean()), 4) if count else 0.0,
            )
        )
    return result


def set_evaluation(scored: Sequence[Scored], model_id: str, taxonomy: Taxonomy) -> SetEvaluation:
    return SetEvaluation(
        model_id=model_id,
        metrics=compute_metrics(scored),
        per_class=per_class(scored, taxonomy),
        confusion=confusion(scored, taxonomy),
        reliability=reliability(scored),
    )
