"""The OpenAI adapter: one completion token with top_logprobs (docs/design.md invariant 3)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from categorizer.decoding import Decoded, decode_top_logprobs
from categorizer.errors import PermanentError, redact
from categorizer.limiter import RateLimiter
from categorizer.pricing import Prices
from categorizer.prompt import Prompt
from categorizer.taxonomy import Taxonomy

# OpenAI answers these for the request itself: retrying the same request cannot help.
PERMANENT_STATUS = frozenset({400, 413, 422})


@dataclass(frozen=True)
class Classification:
    decoded: Decoded
    model_id: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    # Time this call queued in the instance's rate limiter before it was sent (0 for the Batch API).
    limiter_wait_ms: float


def chat_request_body(
    prompt: Prompt, model_id: str, taxonomy: Taxonomy, *, top_k: int, label_logit_bias: int
) -> dict[str, Any]:
    """The chat.completions request for one article: the live call's body and each Batch API line's.

    One completion token with its top_logprobs (docs/design.md invariant 3); logit_bias raises
    every valid label token where the taxonomy allows it.
    """
    body: dict[str, Any] = {
        "model": model_id,
        "messages": prompt.messages,
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": True,
        "top_logprobs": top_k,
    }
    logit_bias = taxonomy.logit_bias(label_logit_bias)
    if logit_bias:
        body["logit_bias"] = logit_bias
    return body


def classification_from_completion(
    completion: ChatCompletion,
    prompt: Prompt,
    model_id: str,
    taxonomy: Taxonomy,
    prices: Prices,
    *,
    latency_ms: float,
    limiter_wait_ms: float = 0.0,
    batch_api: bool = False,
) -> Classification:
    """Decode a completion (a live answer or a Batch API output line's body) into a classification."""
    choice = completion.choices[0] if completion.choices else None
    content = choice.logprobs.content if choice and choice.logprobs else None
    if not content:
        raise PermanentError("no_logprobs", f"model {model_id} returned no logprobs")
    # One completion token, so index 0 holds the whole ranking.
    top = [(entry.token, entry.logprob) for entry in content[0].top_logprobs] or [
        (content[0].token, content[0].logprob)
    ]
    decoded = decode_top_logprobs(top, taxonomy)
    usage = completion.usage
    prompt_tokens = usage.prompt_tokens if usage else prompt.prompt_tokens
    completion_tokens = usage.completion_tokens if usage else 1
    return Classification(
        decoded=decoded,
        model_id=model_id,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=prices.inference_cost(model_id, prompt_tokens, completion_tokens, batch_api=batch_api),
        latency_ms=latency_ms,
        limiter_wait_ms=limiter_wait_ms,
    )


class OpenAIClassifier:
    def __init__(
        self,
        client: Callable[[], AsyncOpenAI],
        *,
        top_k: int,
        label_logit_bias: int,
        prices: Prices,
        limiter: RateLimiter | None = None,
    ) -> None:
        self._client = client
        self.top_k = top_k
        self.label_logit_bias = label_logit_bias
        self._prices = prices
        self._limiter = limiter

    def request_body(self, prompt: Prompt, model_id: str, taxonomy: Taxonomy) -> dict[str, Any]:
        return chat_request_body(prompt, model_id, taxonomy, top_k=self.top_k, label_logit_bias=self.label_logit_bias)

    async def classify(self, prompt: Prompt, model_id: str, taxonomy: Taxonomy) -> Classification:
        waited = await self._limiter.acquire(prompt.prompt_tokens + 1) if self._limiter is not None else 0.0
        body = self.request_body(prompt, model_id, taxonomy)
        started = time.perf_counter()
        try:
            # The body goes as plain JSON: the SDK's typed transform of a 704-key logit_bias costs
            # ~2 ms of CPU per request, a quarter of the handler's (make bench-overhead).
            completion = await self._client().post("/chat/completions", cast_to=ChatCompletion, body=body)
        except openai.APIStatusError as error:
            if error.status_code in PERMANENT_STATUS:
                raise PermanentError("openai_rejected_request", redact(str(error))) from error
            raise
        latency_ms = (time.perf_counter() - started) * 1000
        return classification_from_completion(
            completion, prompt, model_id, taxonomy, self._prices, latency_ms=latency_ms, limiter_wait_ms=waited * 1000
        )
