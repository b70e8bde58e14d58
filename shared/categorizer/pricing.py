"""Prices for cost figures, in one place (USD per 1M tokens, gpt-4o-mini).

Override any of them with an environment variable of the same name, e.g.
`PRICE_FINE_TUNED_INPUT=0.25`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_DEFAULTS = {
    "PRICE_FINE_TUNED_INPUT": 0.30,
    "PRICE_FINE_TUNED_OUTPUT": 1.20,
    "PRICE_BASE_INPUT": 0.15,
    "PRICE_BASE_OUTPUT": 0.60,
    "PRICE_TRAINING": 3.00,
    "PRICE_BATCH_DISCOUNT": 0.5,
}


@dataclass(frozen=True)
class Prices:
    fine_tuned_input: float
    fine_tuned_output: float
    base_input: float
    base_output: float
    training: float
    batch_discount: float

    @classmethod
    def from_env(cls) -> Prices:
        values = {key: float(os.environ.get(key, default)) for key, default in _DEFAULTS.items()}
        return cls(*(values[key] for key in _DEFAULTS))

    def inference_cost(
        self, model: str, prompt_tokens: int, completion_tokens: int, *, batch_api: bool = False
    ) -> float:
        fine_tuned = model.startswith("ft:")
        input_price = self.fine_tuned_input if fine_tuned else self.base_input
        output_price = self.fine_tuned_output if fine_tuned else self.base_output
        cost = (prompt_tokens * input_price + completion_tokens * output_price) / 1_000_000
        return cost * self.batch_discount if batch_api else cost

    def training_cost(self, training_tokens: int, epochs: int) -> float:
        return training_tokens * epochs * self.training / 1_000_000
