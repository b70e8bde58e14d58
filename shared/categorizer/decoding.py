"""Decoding one completion token's top_logprobs into a ranking (docs/design.md invariant 3)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from categorizer.errors import NoValidLabelError
from categorizer.models import Prediction
from categorizer.taxonomy import Taxonomy


@dataclass(frozen=True)
class Decoded:
    predictions: list[Prediction]  # best first, probabilities renormalised over valid labels
    coverage: float  # raw probability mass that fell on valid labels


def decode_top_logprobs(top_logprobs: Iterable[tuple[str, float]], taxonomy: Taxonomy) -> Decoded:
    """Keep tokens that are labels of `taxonomy`, renormalise, and report the coverage.

    Tokens such as " 6", "1000", " " or "abc" are not labels (labels carry no space and
    1000 is two tokens) and only lower the coverage.
    """
    raw: dict[str, float] = {}
    seen: list[str] = []
    for token, logprob in top_logprobs:
        seen.append(token)
        if token in taxonomy.by_label and token not in raw:
            raw[token] = math.exp(logprob)
    coverage = sum(raw.values())
    if not raw or coverage <= 0.0:
        raise NoValidLabelError(seen)
    ranked = sorted(raw.items(), key=lambda item: item[1], reverse=True)
    predictions = [
        Prediction(
            label=label,
            category_id=taxonomy.by_label[label].id,
            name=taxonomy.by_label[label].name,
            probability=probability / coverage,
        )
        for label, probability in ranked
    ]
    return Decoded(predictions, min(coverage, 1.0))
